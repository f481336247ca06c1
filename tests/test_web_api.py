"""The dashboard's HTTP API against the real server: login, sessions, CSRF, rate limiting,
per-patient access, the event stream and the OpenAPI description."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from monitor.errors import ConfigError
from monitor.ratelimit import WindowLimiter
from monitor.web.app import OPENAPI_PATH, build_app
from monitor.web.auth import SessionStore, token_digest
from monitor.web.config import parse_web_config
from tests.fixtures.web import CAROL, DAVE, WebStack, csrf


async def login(http: aiohttp.ClientSession, user: str, password: str) -> aiohttp.ClientResponse:
    token = await csrf(http)
    async with http.post(
        "/api/login", json={"login": user, "password": password}, headers={"X-CSRF-Token": token}
    ) as resp:
        await resp.read()
        return resp


async def test_login_sets_a_strict_httponly_cookie_and_changes_the_session(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/api/session") as resp:
        assert "heatmon_session" not in resp.cookies, "no session for an anonymous visitor"
        anon = resp.cookies["heatmon_anon"]
        assert (await resp.json())["kind"] == "anonymous"
    assert anon["httponly"] and anon["samesite"] == "Strict"
    resp = await login(http, CAROL.login, CAROL.password)
    assert resp.status == 200
    after = resp.cookies["heatmon_session"]
    assert after["httponly"] and after["samesite"] == "Strict"
    assert after.value != anon.value
    async with http.get("/api/session") as r:
        me = await r.json()
    assert me["kind"] == "caregiver" and me["patients"] == ["p-cool", "p-hot"]


async def test_state_changing_requests_need_the_csrf_token(http: aiohttp.ClientSession) -> None:
    await csrf(http)
    async with http.post(
        "/api/login", json={"login": CAROL.login, "password": CAROL.password}
    ) as resp:
        assert resp.status == 403
    assert (await login(http, CAROL.login, CAROL.password)).status == 200
    async with http.post("/api/patients/p-hot/symptoms", json={}) as resp:
        assert resp.status == 403
    async with http.post(
        "/api/patients/p-hot/symptoms", json={}, headers={"X-CSRF-Token": "forged"}
    ) as resp:
        assert resp.status == 403
    token = await csrf(http)
    async with http.post(
        "/api/patients/p-hot/symptoms",
        json={},
        headers={"X-CSRF-Token": token, "Origin": "https://evil.example"},
    ) as resp:
        assert resp.status == 403
        assert "another site" in (await resp.json())["error"]
    async with http.post(
        "/api/patients/p-hot/symptoms", json={"note": "tingling"}, headers={"X-CSRF-Token": token}
    ) as resp:
        assert resp.status == 200


async def test_failed_logins_are_rate_limited(http: aiohttp.ClientSession) -> None:
    for _ in range(5):
        assert (await login(http, CAROL.login, "wrong password")).status == 401
    # Now even the right password is refused until the window has passed.
    resp = await login(http, CAROL.login, CAROL.password)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0


async def test_no_patient_data_without_a_session_that_may_see_it(
    http: aiohttp.ClientSession,
) -> None:
    for path in ("/api/patients", "/api/patients/p-hot", "/api/events"):
        async with http.get(path) as resp:
            assert resp.status == 401, path
    async with http.get("/caregiver", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/login"
    assert (await login(http, DAVE.login, DAVE.password)).status == 200
    async with http.get("/api/patients/p-hot") as resp:
        assert resp.status == 403
        assert "Hanna" not in await resp.text()
    async with http.get("/api/patients") as resp:
        assert [p["patient"] for p in (await resp.json())["patients"]] == ["p-other"]
    token = await csrf(http)
    async with http.post(
        "/api/patients/p-hot/alerts/x:1/ack", headers={"X-CSRF-Token": token}
    ) as resp:
        assert resp.status == 403


async def test_event_stream_sends_a_snapshot_then_live_samples_of_visible_patients_only(
    http: aiohttp.ClientSession,
) -> None:
    assert (await login(http, DAVE.login, DAVE.password)).status == 200
    seen: dict[str, list[dict[str, Any]]] = {}
    async with http.get("/api/events") as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        kind = ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                seen.setdefault(kind, []).append(json.loads(line[6:]))
                if len(seen.get("sample", [])) >= 5 and "state" in seen:
                    break
    (snapshot,) = seen["snapshot"]
    assert [p["patient"] for p in snapshot["patients"]] == ["p-other"]
    patients = {m["patient"] for k in ("sample", "state") for m in seen[k]}
    assert patients == {"p-other"}
    assert {m["kind"] for m in seen["sample"]} <= {"heart_rate_bpm", "skin_temp_c"}


async def test_patient_link_gives_a_session_for_that_patient_only(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    link = web_stack.patient_links["p-hot"]
    async with http.get(link.replace("token=", "token=x"), allow_redirects=False) as resp:
        assert resp.status == 403
    async with http.get(link, allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/patient/p-hot"
    async with http.get("/api/session") as resp:
        me = await resp.json()
    assert me["kind"] == "patient" and me["patients"] == ["p-hot"]
    async with http.get("/api/patients/p-other") as resp:
        assert resp.status == 403
    async with http.get("/api/patients/p-hot/sessions") as resp:
        assert resp.status == 403, "history is for caregivers"


async def test_pages_carry_security_headers_and_the_disclaimer(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/login") as resp:
        text = await resp.text()
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "not a medical device" in text


async def test_openapi_is_valid_and_describes_every_route(web_stack: WebStack) -> None:
    doc = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    validate(doc)
    app = build_app(web_stack.sink.state)
    routes: set[tuple[str, str]] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None or route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)
        if path.startswith("/api/") or path == "/healthz":
            routes.add((path, route.method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented


def test_web_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"web\.users\.carol\.password_hash"):
        parse_web_config({"users": {"carol": {"password_hash": "plain text", "patients": []}}})
    with pytest.raises(ConfigError, match=r"web\.patient_tokens.*SHA-256"):
        parse_web_config({"patient_tokens": {"p-1": "the-token-itself"}})
    config = parse_web_config({"patient_tokens": {"p-1": token_digest("t")}, "port": 9000})
    assert config.port == 9000


def test_sessions_expire_and_are_bounded() -> None:
    now = [1000.0]
    store = SessionStore(ttl_s=60, max_sessions=3, clock=lambda: now[0])
    first = store.new(login="a")
    assert store.get(first.id) is first
    now[0] += 61
    assert store.get(first.id) is None
    ids = [store.new(patient=f"p-{n}").id for n in range(5)]
    assert len(store) == 3 and store.get(ids[0]) is None and store.get(ids[-1]) is not None


def test_login_limiter_window_slides() -> None:
    now = [0.0]
    limiter = WindowLimiter(max_events=2, window_s=10, clock=lambda: now[0])
    limiter.note("k")
    limiter.note("k")
    assert limiter.retry_after("k") == pytest.approx(10)
    now[0] = 10.5
    assert limiter.retry_after("k") == 0


def test_a_flood_of_failures_under_other_names_does_not_lift_a_lockout() -> None:
    """The limiter keeps at most MAX_LIMITER_KEYS keys. Failed logins under 20,000 other
    names (a botnet's addresses, made-up logins) used to push the oldest keys out, carol's
    lockout first, and so lift it; now the keys under their limit go first."""
    from monitor.ratelimit import MAX_LIMITER_KEYS

    now = [0.0]
    limiter = WindowLimiter(max_events=3, window_s=300, clock=lambda: now[0])
    for _ in range(3):
        limiter.note("login:carol")
    for n in range(2 * MAX_LIMITER_KEYS):
        now[0] += 0.001
        limiter.note(f"login:x{n}", f"addr:10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert limiter.retry_after("login:carol") > 250, "carol's lockout was lifted"
    assert limiter.retry_after("login:x0") == 0  # the flood's own keys went first
