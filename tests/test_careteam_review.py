"""Security review of the care-team API and store (against SQLite and a real PostgreSQL):
hostile paging values get a 400, not a 500; two edits of a caregiver based on the same
version cannot both succeed, and an invitation cannot be used twice, even when two
PostgreSQL transactions interleave (SQLite's ``BEGIN IMMEDIATE`` serialises them)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event

from monitor.careteam.records import Conflict, NotFound
from monitor.careteam.store import CareStore
from monitor.web.auth import hash_password
from tests.careteam_helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    NEW,
    TeamStack,
    build_team_stack,
    seed_admin,
)


class Client:
    """A browser-like client: its own cookies, the session's CSRF token on every POST."""

    def __init__(self, stack: TeamStack) -> None:
        self.http = aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.get("/api/session") as resp:
            csrf = str((await resp.json())["csrf"])
        async with self.http.post(path, json=body or {}, headers={"X-CSRF-Token": csrf}) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(path) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def team(careteam_url: str) -> AsyncIterator[TeamStack]:
    await asyncio.to_thread(seed_admin, careteam_url)
    stack = build_team_stack(careteam_url)
    async with stack.monitor:
        yield stack


async def test_audit_paging_values_out_of_range_are_400(team: TeamStack) -> None:
    admin = Client(team)
    try:
        status, body = await admin.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body
        for query in ("before=" + "9" * 30, "before=-" + "9" * 30, "before=2147483648"):
            status, body = await admin.get(f"/api/team/audit?{query}")
            assert status == 400, (query, status, body)
            assert "before" in body["error"]
        status, body = await admin.get("/api/team/audit?before=1000&limit=5")
        assert status == 200 and isinstance(body["entries"], list)
    finally:
        await admin.http.close()


def _interleave(store: CareStore, table: str, other: Any) -> None:
    """Before ``store``'s next UPDATE of ``table`` (its SELECT done), run ``other`` in a
    transaction of its own that commits first."""
    fired: list[bool] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not fired and statement.lstrip().upper().startswith(f"UPDATE {table.upper()}"):
            fired.append(True)
            other()


def test_two_edits_of_a_caregiver_based_on_one_version_do_not_both_succeed(
    careteam_url: str,
) -> None:
    if not careteam_url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE serialises the two transactions")
    with CareStore(url=careteam_url) as one, CareStore(url=careteam_url) as two:
        one.add_caregiver("bob", "caregiver", by=ADMIN, password_hash=hash_password("x" * 14))
        _interleave(
            one,
            "caregivers",
            lambda: two.update_caregiver("bob", based_on=1, by="eve", role="clinician"),
        )
        with pytest.raises(Conflict):
            one.update_caregiver("bob", based_on=1, by=ADMIN, disabled=True)
        record = one.caregiver("bob")
        assert (record.version, record.role, record.disabled) == (2, "clinician", False)
        edits = [e for e in one.audit() if e.kind == "caregiver" and e.action != "caregiver.add"]
        assert [e.actor for e in edits] == ["eve"]  # no entry for a change that did not happen


def test_an_invitation_accepted_twice_at_once_works_only_once(careteam_url: str) -> None:
    if not careteam_url.startswith("postgresql"):
        pytest.skip("SQLite's BEGIN IMMEDIATE serialises the two transactions")
    with CareStore(url=careteam_url) as one, CareStore(url=careteam_url) as two:
        _, token = one.add_caregiver("bob", "caregiver", by=ADMIN)
        assert token is not None
        first_hash = hash_password("the first passphrase")
        _interleave(one, "caregivers", lambda: two.accept_invite(token, first_hash))
        with pytest.raises(NotFound):
            one.accept_invite(token, hash_password("the second passphrase"))
        assert one.caregiver("bob").password_hash == first_hash
        accepted = [e for e in one.audit() if e.action == "caregiver.invite_accepted"]
        assert len(accepted) == 1


async def test_no_invitation_or_link_token_reaches_the_log(
    team: TeamStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin, person = Client(team), Client(team)
    try:
        status, body = await admin.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body
        status, body = await admin.post("/api/team/patients", {"id": NEW})
        assert status == 201, body
        status, body = await admin.post("/api/team/caregivers", {"login": "cat", "role": "admin"})
        assert status == 201, body
        invite = body["invite_url"].split("#", 1)[1]
        status, body = await admin.post(f"/api/team/patients/{NEW}/links", {})
        assert status == 201, body
        link = body["url"].split("token=", 1)[1]
        async with person.http.get(f"/patient/{NEW}?token={link}", allow_redirects=False) as r:
            assert r.status == 302
        status, body = await person.post(
            "/api/invite", {"token": invite, "password": "cat's long passphrase"}
        )
        assert status == 200, body
        status, body = await person.post(
            "/api/invite", {"token": invite, "password": "cat's long passphrase"}
        )
        assert status == 404
    finally:
        await admin.http.close()
        await person.http.close()
    text = "\n".join(r.getMessage() + repr(getattr(r, "__dict__", {})) for r in caplog.records)
    assert caplog.records  # the access log did run
    for secret in (invite, link, "cat's long passphrase"):
        assert secret not in text


async def _raw_post(client: Client, path: str, raw: str) -> tuple[int, Any]:
    async with client.http.get("/api/session") as resp:
        csrf = str((await resp.json())["csrf"])
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    async with client.http.post(path, data=raw.encode(), headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_hostile_strings_in_care_team_bodies_are_4xx(team: TeamStack) -> None:
    admin, stranger = Client(team), Client(team)
    try:
        status, body = await admin.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body
        # JSON escapes that are valid ASCII but no valid text: a NUL is the route's to
        # refuse; a lone surrogate is no Unicode text, refused with every body it is in.
        raw = '{"id": "p-x2", "display_name": "Ann\\u0000"}'
        status, body = await _raw_post(admin, "/api/team/patients", raw)
        assert 400 <= status < 500 and "display_name" in body["error"], (raw, status, body)
        status, body = await admin.post("/api/team/patients", {"id": NEW})
        assert status == 201, body
        raw = '{"version": 1, "profile": {"display_name": "\\u0000"}}'
        status, body = await _raw_post(admin, f"/api/team/patients/{NEW}", raw)
        assert 400 <= status < 500 and "display_name" in body["error"], (status, body)
        lone = "\\ud800"
        for client, path, raw in (
            (admin, "/api/team/patients", '{"id": "p-x1", "display_name": "Ann' + lone + '"}'),
            (admin, f"/api/team/patients/{NEW}", '{"version": 1, "profile": {"display_name": "'
             + lone + '"}}'),
            (stranger, "/api/invite", '{"token": "' + "x" * 20 + '", "password": "'
             + lone * 12 + '"}'),
            (stranger, "/api/login", '{"login": "ada", "password": "' + lone * 12 + '"}'),
        ):  # fmt: skip
            status, body = await _raw_post(client, path, raw)
            assert status == 400 and "lone UTF-16 surrogate" in body["error"], (raw, body)
        status, body = await admin.get(f"/api/team/patients/{NEW}")
        assert status == 200 and body["version"] == 1
    finally:
        await admin.http.close()
        await stranger.http.close()


async def _invite(admin: Client, stack: TeamStack, login: str, role: str) -> Client:
    status, body = await admin.post("/api/team/caregivers", {"login": login, "role": role})
    assert status == 201, body
    person = Client(stack)
    token = body["invite_url"].split("#", 1)[1]
    status, body = await person.post(
        "/api/invite", {"token": token, "password": f"{login}'s long passphrase"}
    )
    assert status == 200, body
    return person


async def test_who_may_do_what_and_csrf_on_every_care_team_post(team: TeamStack) -> None:
    """An unassigned caregiver or clinician, a patient's phone and an admin not assigned
    get neither the patient's vitals nor their changes; no POST works without CSRF."""
    other = "p-other"
    admin = Client(team)
    people: list[Client] = [admin]
    try:
        status, body = await admin.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body
        for pid in (NEW, other):
            assert (await admin.post("/api/team/patients", {"id": pid}))[0] == 201
        clara = await _invite(admin, team, "clara", "clinician")
        cody = await _invite(admin, team, "cody", "caregiver")
        people += [clara, cody]
        for login in ("clara", "cody"):
            body = {"login": login, "patient": other}
            assert (await admin.post("/api/team/assignments", body))[0] == 200
        status, link = await admin.post(f"/api/team/patients/{other}/links")
        assert status == 201
        phone = Client(team)
        people.append(phone)
        async with phone.http.get(link["url"].split(team.base_url, 1)[1]) as resp:
            assert resp.status == 200

        # Vitals of NEW: nobody here is assigned to NEW (the admin neither).
        for who in (admin, clara, cody, phone):
            assert (await who.get(f"/api/patients/{NEW}"))[0] == 403
            assert (await who.get(f"/api/patients/{NEW}/thresholds"))[0] in (403, 503)
            status, body = await who.get("/api/patients")
            assert status == 200 and NEW not in {p["patient"] for p in body["patients"]}
        # The record and its changes: only the admin reads it; nobody unassigned edits.
        for who in (clara, cody):
            assert (await who.get(f"/api/team/patients/{NEW}"))[0] == 403
            status, _ = await who.post(
                f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.4}}
            )
            assert status == 403
            assert (await who.post(f"/api/team/patients/{NEW}/links"))[0] == 403
            status, body = await who.get("/api/team/audit")
            assert status == 200 and all(e["patient"] == other for e in body["entries"])
        status, _ = await admin.post(
            f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.4}}
        )
        assert status == 403  # an admin changes thresholds only as an assigned clinician
        # The plain caregiver: no thresholds, links or caregivers even of their patient.
        status, _ = await cody.post(
            f"/api/team/patients/{other}", {"version": 1, "profile": {"threshold_rise_c": 0.4}}
        )
        assert status == 403
        assert (await cody.post(f"/api/team/patients/{other}/links"))[0] == 403
        assert (await clara.get("/api/team/caregivers"))[0] == 403
        body = {"login": "clara", "patient": NEW}
        assert (await clara.post("/api/team/assignments", body))[0] == 403
        # The patient's phone: none of the care-team API, not even for its own patient.
        for path in ("/api/team/me", "/api/team/patients", f"/api/team/patients/{other}"):
            assert (await phone.get(path))[0] == 401, path
        assert (await phone.post(f"/api/team/patients/{other}/links"))[0] == 401
        assert (await phone.post("/api/team/caregivers", {"login": "x", "role": "admin"}))[0] == 401

        # CSRF: every care-team POST of openapi.json, as the admin, without the header.
        async with admin.http.get("/api/openapi.json") as resp:
            spec = await resp.json()
        fill = {
            "{patient}": other,
            "{login}": "cody",
            "{link}": link["id"],
            "{suggestion}": "00000000-0000-0000-0000-000000000000",
            "{event_id}": "e1",
        }
        posts = [p for p, ops in spec["paths"].items() if "post" in ops]
        assert "/api/team/caregivers/{login}/reset" in posts and "/api/invite" in posts
        marker = team_of_marker(team)
        for template in posts:
            path = template
            for key, value in fill.items():
                path = path.replace(key, value)
            async with admin.http.post(path, json={"version": 1}) as resp:
                assert resp.status == 403, template
        assert team_of_marker(team) == marker  # nothing changed, nothing was logged
    finally:
        for who in people:
            await who.http.close()


def team_of_marker(stack: TeamStack) -> int:
    team = stack.sink.state.team
    assert team is not None
    return team.store.marker()


async def test_a_refused_attempt_is_audited_whatever_its_subject(team: TeamStack) -> None:
    """A NUL (PostgreSQL refuses it) or a lone surrogate (no database takes it) in what a
    refused caregiver sent must not keep the attempt out of the audit log."""
    admin = Client(team)
    cody: Client | None = None
    try:
        status, body = await admin.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body
        cody = await _invite(admin, team, "cody", "caregiver")
        for raw in ('{"id": "p-\\u0000x"}', '{"id": "p-x\\u0007"}'):
            status, body = await _raw_post(cody, "/api/team/patients", raw)
            assert status == 403, body
        # A lone surrogate is no text at all: refused with the body, before any right is
        # looked at (counted in /healthz, like malformed JSON), so nothing to audit.
        status, body = await _raw_post(cody, "/api/team/patients", '{"id": "p-\\ud800x"}')
        assert status == 400, body
        status, body = await admin.get("/api/team/audit")
        refused = [e for e in body["entries"] if e["outcome"] == "refused"]
        assert [(e["actor"], e["action"]) for e in refused] == [("cody", "patient.add")] * 2
    finally:
        await admin.http.close()
        if cody is not None:
            await cody.http.close()


async def test_a_link_for_an_overlong_host_is_refused_before_it_is_issued(
    team: TeamStack,
) -> None:
    """The link's URL is built from the request's Host (without ``public_url``); one too
    long for a QR code is a 400, and no link is issued that nobody was shown."""
    admin = Client(team)
    try:
        status, body = await admin.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body
        assert (await admin.post("/api/team/patients", {"id": NEW}))[0] == 201
        async with admin.http.get("/api/session") as resp:
            csrf = str((await resp.json())["csrf"])
        host = "h" + "x" * 4000 + ".example"
        async with admin.http.post(
            f"/api/team/patients/{NEW}/links",
            json={},
            headers={"X-CSRF-Token": csrf, "Host": host},
        ) as resp:
            assert resp.status == 400, await resp.text()
            assert "Host" in (await resp.json())["error"]
        status, body = await admin.get(f"/api/team/patients/{NEW}")
        assert status == 200 and body["links"] == []
    finally:
        await admin.http.close()


def test_an_invitation_expires_after_a_week_and_a_reset_voids_the_old_one(
    careteam_url: str,
) -> None:
    now = [1_000_000.0]
    with CareStore(url=careteam_url, clock=lambda: now[0]) as store:
        _, old = store.add_caregiver("bob", "caregiver", by=ADMIN)
        _, late = store.add_caregiver("liz", "caregiver", by=ADMIN)
        assert old is not None and late is not None
        _, new = store.update_caregiver("bob", based_on=1, by=ADMIN, reset=True)
        assert new is not None
        with pytest.raises(NotFound):
            store.accept_invite(old, "hash")  # replaced by the reset
        now[0] += 7 * 86_400.0 + 1
        with pytest.raises(NotFound):
            store.accept_invite(late, "hash")  # a week and a second later
        assert store.caregiver("liz").password_hash is None


async def test_the_audit_log_cannot_be_changed_through_the_api(team: TeamStack) -> None:
    admin = Client(team)
    try:
        status, body = await admin.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body
        before = team_of_marker(team)
        async with admin.http.get("/api/session") as resp:
            csrf = str((await resp.json())["csrf"])
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            async with admin.http.request(
                method, "/api/team/audit", json={"entries": []}, headers={"X-CSRF-Token": csrf}
            ) as resp:
                assert resp.status == 405, method
        status, body = await admin.get("/api/team/audit")
        assert status == 200 and body["entries"][0]["id"] == before
    finally:
        await admin.http.close()


async def test_a_wrong_invitation_token_costs_no_password_hash(
    team: TeamStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 is slow and takes 64 MiB on purpose: an anonymous client guessing tokens
    (several at once, before the limiter counts them) must not make the server hash."""
    import monitor.web.people as people

    hashed: list[int] = []

    def counting(password: str) -> str:
        hashed.append(len(password))
        return hash_password(password)

    monkeypatch.setattr(people, "hash_password", counting)
    guesser = Client(team)
    try:
        answers = await asyncio.gather(
            *(
                guesser.post("/api/invite", {"token": f"guess-{n:08d}", "password": "y" * 20})
                for n in range(4)
            )
        )
        assert [status for status, _ in answers] == [404] * 4
        assert hashed == []
    finally:
        await guesser.http.close()


async def test_concurrent_wrong_passwords_do_not_slip_past_the_limit(team: TeamStack) -> None:
    """The limiter counts an attempt before the (slow) password check: twenty guesses sent
    at once get at most ``login_max_failures`` (5) answers that say whether they were right."""
    guesser = Client(team)
    try:
        async with guesser.http.get("/api/session") as resp:
            csrf = str((await resp.json())["csrf"])

        async def guess(n: int) -> int:
            async with guesser.http.post(
                "/api/login",
                json={"login": ADMIN, "password": f"guess number {n}"},
                headers={"X-CSRF-Token": csrf},
            ) as resp:
                return resp.status

        statuses = await asyncio.gather(*(guess(n) for n in range(20)))
        assert statuses.count(401) <= 5 and set(statuses) <= {401, 429}, statuses
        assert statuses.count(429) >= 15
    finally:
        await guesser.http.close()


async def test_with_the_store_on_a_configured_patient_token_opens_nothing(
    careteam_url: str,
) -> None:
    """docs/careteam.md: with ``[careteam]`` the store alone says which patient links work;
    ``[web.patient_tokens]`` is read only by ``heatmon admin import``. Otherwise a link the
    care team revoked (or of an archived patient) kept working from the TOML file."""
    from monitor.web.auth import PatientTokens, new_patient_token

    token, digest = new_patient_token()
    await asyncio.to_thread(seed_admin, careteam_url)
    stack = build_team_stack(careteam_url)
    stack.sink.config = stack.sink.config.model_copy(update={"patient_tokens": {NEW: digest}})
    stack.sink.state.config = stack.sink.config
    # As WebSink(config=...) reads [web.patient_tokens]:
    stack.sink.state.tokens = PatientTokens(digests={NEW: digest})
    async with stack.monitor:
        phone = Client(stack)
        try:
            async with phone.http.get(
                f"/patient/{NEW}?token={token}", allow_redirects=False
            ) as resp:
                assert resp.status == 403
            assert (await phone.get(f"/api/patients/{NEW}"))[0] == 401
        finally:
            await phone.http.close()
