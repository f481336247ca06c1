"""schemathesis against the care-team routes of ``openapi.json`` with the store on (SQLite
and a real PostgreSQL) and as a logged-in admin, so generated requests reach the store:
no 5xx, only documented answers, and the admin's session still works afterwards.
(``tests/test_web_fuzz.py`` runs without a store, where these routes only answer 404.)"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

from monitor.web.app import OPENAPI_PATH
from tests.careteam_helpers import ADMIN, ADMIN_PASSWORD, NEW, build_team_stack, seed_admin
from tests.test_web_fuzz import CHECKS

EXAMPLES = int(os.environ.get("HEATMON_FUZZ_EXAMPLES", "120"))


class ServedTeam:
    """The service with the care-team store, served from a thread of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.base_url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        await asyncio.to_thread(seed_admin, self.url)
        stack = build_team_stack(self.url)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with stack.monitor:
            self.base_url = stack.base_url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServedTeam:
        self._thread.start()
        assert self._ready.wait(60), "the service did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def admin_headers(http: requests.Session, base: str) -> dict[str, str]:
    csrf = http.get(f"{base}/api/session").json()["csrf"]
    reply = http.post(
        f"{base}/api/login",
        json={"login": ADMIN, "password": ADMIN_PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert reply.status_code == 200, reply.text
    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    return {"Cookie": cookie, "X-CSRF-Token": reply.json()["csrf"]}


@pytest.mark.slow
def test_schemathesis_on_the_care_team_routes_with_the_store_on(careteam_url: str) -> None:
    import schemathesis

    schema = schemathesis.openapi.from_path(OPENAPI_PATH).include(
        path_regex=r"^/api/(team/|invite)"
    )
    with ServedTeam(careteam_url) as served:
        setup = requests.Session()
        admin = admin_headers(setup, served.base_url)
        reply = setup.post(f"{served.base_url}/api/team/patients", json={"id": NEW}, headers=admin)
        assert reply.status_code == 201, reply.text
        http = requests.Session()
        seen: set[int] = set()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            drawn=st.tuples(
                st.one_of(
                    schema.as_strategy(GenerationMode.POSITIVE),
                    schema.as_strategy(GenerationMode.NEGATIVE),
                ),
                st.booleans(),
            )
        )
        def fuzz(drawn: tuple[Case[Any], bool]) -> None:
            case, as_admin = drawn
            http.cookies.clear()
            headers = admin if as_admin else None
            response = case.call(base_url=served.base_url, session=http, headers=headers)
            seen.add(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)

        fuzz()
        assert any(200 <= s < 300 for s in seen), f"nothing got past validation: {sorted(seen)}"
        reply = setup.get(f"{served.base_url}/api/team/patients/{NEW}", headers=admin)
        assert reply.status_code == 200, reply.text
