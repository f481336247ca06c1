"""Hostile input to the dashboard's HTTP API, against the real server (the real service,
engine and web sink): bodies that used to give 500s, a flood of anonymous visitors, and
what reaches the logs. Each test ends by checking the service still answers valid input.

The generated (schemathesis, hypothesis) suites are in ``tests/test_web_fuzz.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import time
import zlib
from typing import Any

import aiohttp
import pytest

from monitor.web import live as web_live
from monitor.web.accesslog import logged_target, redacted_query
from monitor.web.app import OPENAPI_PATH
from monitor.web.auth import (
    MAX_SESSIONS_PER_PRINCIPAL,
    SESSION_COOKIE,
    AnonymousCsrf,
    SessionStore,
)
from monitor.web.bodies import MAX_BODY_BYTES, MAX_JSON_DEPTH, json_depth
from monitor.web.demo import DemoUser
from tests.fixtures.web import CAROL, WebStack, build_web_stack
from tests.fixtures.web import csrf as csrf_of

OPENAPI = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
POSTS = (
    "/api/login",
    "/api/logout",
    "/api/patients/p-hot/symptoms",
    "/api/patients/p-hot/alerts/p-hot:1/ack",
)
FLOOD_REQUESTS = 10_000
FLOOD_CONCURRENCY = 50


def documented(path: str, method: str) -> set[int]:
    """The status codes ``openapi.json`` gives for the route that serves ``path``."""
    for template, ops in OPENAPI["paths"].items():
        parts, given = template.split("/"), path.split("/")
        if len(parts) == len(given) and all(
            p == g or p.startswith("{") for p, g in zip(parts, given, strict=True)
        ):
            return {int(code) for code in ops[method.lower()]["responses"]}
    raise AssertionError(f"{path} is not in openapi.json")


async def log_in(http: aiohttp.ClientSession, login: str, password: str) -> str:
    """Logs ``http`` in; returns the session's CSRF token."""
    async with http.post(
        "/api/login",
        json={"login": login, "password": password},
        headers={"X-CSRF-Token": await csrf_of(http)},
    ) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["csrf"]
        return token


async def healthz(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/healthz") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def assert_still_answers(web_stack: WebStack, http: aiohttp.ClientSession) -> None:
    """A valid symptom report from a logged-in caregiver is taken and stored."""
    token = await csrf_of(http)
    before = len(web_stack.recorder.records)
    async with http.post(
        "/api/patients/p-hot/symptoms", json={"note": "still here"}, headers={"X-CSRF-Token": token}
    ) as resp:
        assert resp.status == 200, await resp.text()
    assert len(web_stack.recorder.records) == before + 1


JSON = {"Content-Type": "application/json"}
HOSTILE_BODIES: dict[str, tuple[bytes, dict[str, str], int]] = {
    "unknown charset": (b'{"note": "x"}', {"Content-Type": "application/json; charset=foo"}, 415),
    "latin-1 charset": (
        b'{"note": "x"}',
        {"Content-Type": "application/json; charset=latin-1"},
        415,
    ),
    "deep nesting": (b"[" * 5_000 + b"]" * 5_000, JSON, 400),
    "deep objects": (b'{"a":' * 2_000 + b"1" + b"}" * 2_000, JSON, 400),
    "non-gzip sent as gzip": (b'{"note": "x"}', {**JSON, "Content-Encoding": "gzip"}, 400),
    "truncated gzip": (
        gzip.compress(b'{"note": "x"}')[:-6],
        {**JSON, "Content-Encoding": "gzip"},
        400,
    ),
    "non-deflate sent as deflate": (b"xx", {**JSON, "Content-Encoding": "deflate"}, 400),
    "brotli": (b"\x1b\x00", {**JSON, "Content-Encoding": "br"}, 415),
    "gzip bomb": (
        gzip.compress(b" " * (4 * 1024 * 1024)),
        {**JSON, "Content-Encoding": "gzip"},
        413,
    ),
    "too large": (b" " * (MAX_BODY_BYTES + 1), JSON, 413),
    "not UTF-8": (b'{"note": "\xff\xfe"}', JSON, 400),
    "not JSON": (b"{note: x}", JSON, 400),
    # No encoder takes a lone surrogate: one in a note stopped every later InfluxDB write.
    "lone surrogate": (b'{"note": "a\\ud800b"}', JSON, 400),
    "lone low surrogate in a key": (b'{"\\udc00": "x"}', JSON, 400),
    "NaN": (b'{"note": NaN}', JSON, 400),
    "a number of 5,000 digits": (b'{"note": ' + b"9" * 5000 + b"}", JSON, 400),
    "form body": (b"note=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
}


async def test_hostile_bodies_get_a_clear_counted_4xx_on_every_post(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    """Each body of ``HOSTILE_BODIES`` to every POST, in one server (one start, not 15)."""
    token = await log_in(http, CAROL.login, CAROL.password)
    for case, (body, headers, status) in sorted(HOSTILE_BODIES.items()):
        before = sum((await healthz(http))["rejected"].values())
        for path in POSTS:
            async with http.post(
                path, data=body, headers={**headers, "X-CSRF-Token": token}
            ) as resp:
                assert resp.status == status, (case, path, await resp.text())
                assert status in documented(path, "POST"), (case, path, status)
                error = (await resp.json())["error"]
            # The message says where (the route, no id a client chose) and what.
            assert error.startswith("POST /api/"), (case, error)
            assert "p-hot:1" not in error
        after = await healthz(http)
        assert sum(after["rejected"].values()) == before + len(POSTS), case
        # The caregiver is still logged in (logout with a bad body did not log out) and
        # the service takes valid input.
        await assert_still_answers(web_stack, http)


async def test_valid_gzip_and_deflate_bodies_are_taken(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    token = await log_in(http, CAROL.login, CAROL.password)
    for encoding, data in (
        ("gzip", gzip.compress(b'{"note": "zipped"}')),
        ("deflate", zlib.compress(b'{"note": "deflated"}')),
    ):
        async with http.post(
            "/api/patients/p-hot/symptoms",
            data=data,
            headers={**JSON, "Content-Encoding": encoding, "X-CSRF-Token": token},
        ) as resp:
            assert resp.status == 200, await resp.text()
    notes = [getattr(r, "note", None) for r in web_stack.recorder.records]
    assert notes[-2:] == ["zipped", "deflated"]


async def test_escaped_text_that_is_unicode_is_taken(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    """A surrogate pair is one character, and a backslash before ``ud800`` is no escape."""
    token = await log_in(http, CAROL.login, CAROL.password)
    for raw in (rb'{"note": "hot \ud83d\ude13"}', rb'{"note": "C:\\ud800"}'):
        async with http.post(
            "/api/patients/p-hot/symptoms", data=raw, headers={**JSON, "X-CSRF-Token": token}
        ) as resp:
            assert resp.status == 200, await resp.text()
    notes = [getattr(r, "note", None) for r in web_stack.recorder.records]
    assert notes[-2:] == ["hot \U0001f613", "C:\\ud800"]


async def test_wrong_shapes_are_400_naming_the_field(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    token = await log_in(http, CAROL.login, CAROL.password)
    for path, body, words in (
        ("/api/login", {"login": 1, "password": "x"}, "two strings"),
        ("/api/login", ["carol"], "two strings"),
        ("/api/login", {"login": "carol", "password": "x" * 2000}, "password is longer"),
        ("/api/patients/p-hot/symptoms", {"note": {"a": 1}}, "note a string"),
        ("/api/patients/p-hot/symptoms", {"note": "x" * 501}, "note is longer"),
        ("/api/patients/p-hot/symptoms", "just a string", "send JSON {note}"),
    ):
        async with http.post(path, json=body, headers={"X-CSRF-Token": token}) as resp:
            assert resp.status == 400, path
            assert words in (await resp.json())["error"]
    await assert_still_answers(web_stack, http)


async def test_a_report_the_monitor_refuses_is_422_not_500() -> None:
    """A caregiver assigned (in ``[web]``) a patient the engine has no profile of."""
    zoe = DemoUser("zoe", "a fifth long passphrase", ("p-ghost",))
    stack = build_web_stack(patients={"p-hot": ("Hanna", "hot_day_aerobic")}, users=(zoe,))
    async with (
        stack.monitor,
        aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http,
    ):
        token = await log_in(http, zoe.login, zoe.password)
        async with http.post(
            "/api/patients/p-ghost/symptoms", json={"note": "x"}, headers={"X-CSRF-Token": token}
        ) as resp:
            assert resp.status == 422
            assert "unknown patient" in (await resp.json())["error"]
        assert (await healthz(http))["rejected"]["refused_by_monitor"] == 1
        async with http.get("/api/patients/p-ghost") as resp:
            assert resp.status == 200, "the service keeps answering"


@pytest.mark.slow
async def test_slow_and_silent_clients_hold_no_connection() -> None:
    """Slowloris: a connection that sends nothing, a request head sent a byte at a time and
    a body that never arrives are all let go after ``request_timeout_s`` (aiohttp's own
    default is an hour); a live stream of events is not cut."""
    stack = build_web_stack(patients={"p-hot": ("Hanna", "hot_day_aerobic")}, request_timeout_s=1.0)
    async with (
        stack.monitor,
        aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http,
    ):
        token = await log_in(http, CAROL.login, CAROL.password)
        host, port = stack.base_url.removeprefix("http://").rsplit(":", 1)

        async def answer(first: bytes, *, trickle: bytes = b"") -> bytes:
            """What the server sends until it closes (within 5 s), while a byte of
            ``trickle`` goes out every 0.2 s (a raw socket: what was sent before a write
            failed is still read)."""
            loop = asyncio.get_running_loop()
            with socket.create_connection((host, int(port))) as sock:
                sock.setblocking(False)
                await loop.sock_sendall(sock, first)
                async with asyncio.timeout(5):
                    for byte in trickle:
                        await asyncio.sleep(0.2)
                        try:
                            await loop.sock_sendall(sock, bytes([byte]))
                        except OSError:
                            break  # the server let go of the connection
                    got = b""
                    try:
                        while chunk := await loop.sock_recv(sock, 65536):
                            got += chunk
                    except ConnectionResetError:
                        pass  # closed with our unread bytes in its buffer
                    return got

        assert await answer(b"") == b"", "silent"
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        assert await answer(head, trickle=b"X-A: " + b"a" * 100) == b"", "head never ends"
        body = json.dumps({"note": "slow"}).encode()
        slow = await answer(
            b"POST /api/patients/p-hot/symptoms HTTP/1.1\r\nHost: x\r\n"
            + f"Cookie: {'; '.join(f'{c.key}={c.value}' for c in http.cookie_jar)}\r\n".encode()
            + f"X-CSRF-Token: {token}\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:3],
            trickle=b" " * 20,
        )
        assert slow.startswith(b"HTTP/1.1 408"), slow[:100]
        assert b"body not received within 1 s" in slow
        assert (await healthz(http))["rejected"]["slow"] == 1
        # A stream of events outlives the timeout: it is a response, not an idle client.
        frames = 0
        async with http.get("/api/events") as resp:
            started = time.monotonic()
            async for _ in resp.content:
                frames += 1
                if time.monotonic() - started > 2.5:
                    break
        assert time.monotonic() - started > 2.5 and frames > 1
        async with http.post(
            "/api/patients/p-hot/symptoms", json={"note": "ok"}, headers={"X-CSRF-Token": token}
        ) as resp:
            assert resp.status == 200, "the service keeps answering"


async def stream_ends_within(stream: aiohttp.ClientResponse, seconds: float) -> bool:
    """Whether the server ends ``stream`` (read past its snapshot) within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            while await stream.content.read(65536):
                pass
    except TimeoutError:
        return False
    return True


@pytest.mark.slow
async def test_a_stream_ends_with_its_session_however_the_session_is_dropped(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    """Patient data is streamed only while the session that asked for it lives: a session
    pushed out (a patient link opened in the caregiver's browser, the caregiver's own later
    logins past the per-person bound) ends its stream, as logout does."""
    await log_in(http, CAROL.login, CAROL.password)
    async with http.get("/api/events") as stream:
        assert stream.status == 200
        await stream.content.readuntil(b"\n\n")  # the snapshot
        async with http.get(web_stack.patient_links["p-hot"], allow_redirects=False) as resp:
            assert resp.status == 302  # this browser is now the patient's phone
        assert await stream_ends_within(stream, 2.0), "carol's stream outlived her session"

    async with aiohttp.ClientSession(
        base_url=web_stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as first:
        await log_in(first, CAROL.login, CAROL.password)
        async with first.get("/api/events") as stream:
            await stream.content.readuntil(b"\n\n")
            for _ in range(MAX_SESSIONS_PER_PRINCIPAL):  # carol logs in elsewhere, again
                async with aiohttp.ClientSession(
                    base_url=web_stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
                ) as other:
                    await log_in(other, CAROL.login, CAROL.password)
            async with first.get("/api/patients") as resp:
                assert resp.status == 401, "the first session was pushed out"
            assert await stream_ends_within(stream, 2.0), "a pushed-out session kept its stream"
    await assert_still_answers(web_stack, http)


async def test_a_stream_ends_once_its_session_expires_and_a_session_holds_few_streams(
    web_stack: WebStack, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live stream is no use of its session: once the session has gone unused for longer
    than ``session_ttl_s`` its stream ends (at the next heartbeat), as every other request
    of it is refused. And one session holds at most ``MAX_STREAMS_PER_SESSION`` streams: a
    page that opens streams in a loop cannot pile up backlogs."""
    monkeypatch.setattr(web_live, "HEARTBEAT_S", 0.2)
    await log_in(http, CAROL.login, CAROL.password)
    streams = [await http.get("/api/events") for _ in range(web_live.MAX_STREAMS_PER_SESSION)]
    try:
        assert [s.status for s in streams] == [200] * web_live.MAX_STREAMS_PER_SESSION
        async with http.get("/api/events") as refused:
            assert refused.status == 429
            assert "live streams" in (await refused.json())["error"]
    finally:
        for s in streams:
            s.close()
    await asyncio.sleep(0.5)  # the server sees them closed
    async with http.get("/api/events") as stream:
        assert stream.status == 200, "closed streams no longer count"
        await stream.content.readuntil(b"\n\n")  # the snapshot
        assert not await stream_ends_within(stream, 1.0), "a live session's stream goes on"
        sid = next(c.value for c in http.cookie_jar if c.key == SESSION_COOKIE)
        session = web_stack.sink.state.sessions.get(sid)
        assert session is not None
        session.last_seen -= web_stack.sink.state.config.session_ttl_s + 1  # unused since
        assert await stream_ends_within(stream, 2.0), "an expired session's stream went on"
    async with http.get("/api/patients") as resp:
        assert resp.status == 401
    await log_in(http, CAROL.login, CAROL.password)
    await assert_still_answers(web_stack, http)


async def test_malformed_history_session_id_is_400_and_never_logged(
    web_stack: WebStack, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await log_in(http, CAROL.login, CAROL.password)
    for bad in ("x" * 300, "bad'id", "new%0Aline", "sp ace"):
        async with http.get(f"/api/patients/p-hot/sessions/{bad}") as resp:
            assert resp.status == 400, bad
            assert "session id" in (await resp.json())["error"]
    assert "x" * 129 not in caplog.text and "bad'id" not in caplog.text
    assert "new\nline" not in caplog.text and "new\\nline" not in caplog.text
    # A well-formed id reaches the (here unconfigured) store: 503, as documented.
    async with http.get("/api/patients/p-hot/sessions/p-hot-1700000000") as resp:
        assert resp.status == 503


async def test_no_token_password_note_or_id_in_any_log(
    web_stack: WebStack, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    link = web_stack.patient_links["p-hot"]
    token = link.split("token=")[1]
    async with http.get(link, allow_redirects=False) as resp:
        assert resp.status == 302
    async with http.get(link.replace("token=", "token=wrong"), allow_redirects=False) as resp:
        assert resp.status == 403
    secret_note = "tingling-in-left-hand-7f3a"
    wrong_password = "not-carols-password-91c2"
    csrf = await csrf_of(http)
    async with http.post(
        "/api/patients/p-hot/symptoms", json={"note": secret_note}, headers={"X-CSRF-Token": csrf}
    ) as resp:
        assert resp.status == 200
    async with aiohttp.ClientSession(
        base_url=web_stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as other:
        async with other.post(
            "/api/login",
            json={"login": CAROL.login, "password": wrong_password},
            headers={"X-CSRF-Token": await csrf_of(other)},
        ) as resp:
            assert resp.status == 401
        await log_in(other, CAROL.login, CAROL.password)
        async with other.get("/api/patients/p-hot/sessions/secret-session-id-55") as resp:
            assert resp.status == 503
    # A request line too long for aiohttp's parser: refused there, its text not logged.
    async with http.get(f"{link}&pad={'x' * 9000}", allow_redirects=False) as resp:
        assert resp.status == 400
    refused = [r for r in caplog.records if r.name == "monitor.web.server"]
    assert refused, "the parser's refusal was not logged"
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in refused), [
        (r.levelname, r.getMessage()) for r in refused
    ]
    assert "LineTooLong (400)" in refused[-1].getMessage()
    text = "\n".join(
        [caplog.text] + [repr(getattr(r, k, "")) for r in caplog.records for k in vars(r)]
    )
    for secret in (token, secret_note, wrong_password, CAROL.password, "secret-session-id-55"):
        assert secret not in text, f"{secret!r} reached the log"
    access = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any('"GET /patient/p-hot?token=… HTTP/1.1" 302' in line for line in access), access
    assert any("/api/patients/p-hot/sessions/{session}" in line for line in access), access


@pytest.mark.slow
async def test_a_flood_of_anonymous_visitors_evicts_no_logged_in_session(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    """10,000 anonymous ``GET /api/session`` (the issue's attack) on loopback, bounded in
    time by the test's timeout: nothing is stored for them, so the caregiver's and the
    patient's sessions survive and the server still answers."""
    await log_in(http, CAROL.login, CAROL.password)
    async with aiohttp.ClientSession(
        base_url=web_stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as phone:
        async with phone.get(web_stack.patient_links["p-hot"], allow_redirects=False) as resp:
            assert resp.status == 302
        sessions = web_stack.sink.state.sessions
        assert len(sessions) == 2

        async def visitor(queue: asyncio.Queue[int], seen: set[str]) -> None:
            async with aiohttp.ClientSession(
                base_url=web_stack.base_url, cookie_jar=aiohttp.DummyCookieJar()
            ) as anon:
                while not queue.empty():
                    queue.get_nowait()
                    async with anon.get("/api/session") as r:
                        assert r.status == 200
                        seen.add((await r.json())["csrf"])

        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(FLOOD_REQUESTS):
            queue.put_nowait(n)
        seen: set[str] = set()
        started = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(visitor(queue, seen) for _ in range(FLOOD_CONCURRENCY))), 100
        )
        elapsed = time.monotonic() - started
        assert len(seen) == FLOOD_REQUESTS, "every visitor got a token of their own"
        assert len(sessions) == 2, "nothing was stored for anonymous visitors"
        async with http.get("/api/patients") as resp:
            assert resp.status == 200, "the caregiver is still logged in"
            assert {p["patient"] for p in (await resp.json())["patients"]} == {"p-cool", "p-hot"}
        async with phone.get("/api/patients/p-hot") as resp:
            assert resp.status == 200, "the patient's phone is still logged in"
        logging.getLogger(__name__).info("%d anonymous requests in %.1f s", FLOOD_REQUESTS, elapsed)
    await assert_still_answers(web_stack, http)


# -- units --------------------------------------------------------------------------------


def test_sessions_are_bounded_per_person_and_never_evicted_by_others() -> None:
    now = [0.0]
    store = SessionStore(ttl_s=100, max_sessions=50, max_per_principal=3, clock=lambda: now[0])
    carol = store.new(login="carol")
    patient = store.new(patient="p-1")
    dave = [store.new(login="dave") for _ in range(10)]
    assert store.get(carol.id) is carol and store.get(patient.id) is patient
    assert [store.get(s.id) is not None for s in dave] == [False] * 7 + [True] * 3
    assert len(store) == 5
    now[0] = 150.0  # carol and the patient were last seen at 0, dave's at 0 too
    store.new(login="erin")
    assert len(store) == 1, "expired sessions are pruned when a new one is made"
    with pytest.raises(ValueError, match="one caregiver or one patient"):
        store.new()


def test_anonymous_csrf_is_bound_to_the_nonce_and_the_key() -> None:
    csrf = AnonymousCsrf()
    nonce = csrf.new_nonce()
    token = csrf.token(nonce)
    assert csrf.check(nonce, token)
    assert not csrf.check(csrf.new_nonce(), token), "another visitor's nonce"
    assert not csrf.check(nonce, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not AnonymousCsrf().check(nonce, token), "a restarted server's key"
    assert not csrf.check(None, token) and not csrf.check(nonce, "")
    assert not csrf.check("\udcff" * 10, "\udcfe"), "never raises on lone surrogates"


def test_json_depth_scans_without_recursion() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[["}]}', limit=16) == 3
    assert json_depth(b'"\\"[[[["', limit=16) == 0
    assert json_depth(b"[" * 100_000, limit=MAX_JSON_DEPTH) == MAX_JSON_DEPTH + 1
    # Unterminated strings: one pass (a regex that retried from each quote took seconds).
    assert json_depth(b'"' + b'\\"' * 8000, limit=16) == 0
    assert json_depth(b'"\\' * 5000 + b"[[", limit=16) == 0


def test_query_values_never_reach_the_access_log() -> None:
    assert redacted_query("token=abc123") == "?token=…"
    assert redacted_query("a=1&secretvaluewithoutkey") == "?a=…&secretvaluewithoutkey"
    assert redacted_query("x%3D=1") == "?…=…"
    # aiohttp's query_string is decoded: "?a%0A=1" is "a\n=1", whose key passed re's "$"
    assert redacted_query("a\n=1&b\n") == "?…=…&…"
    assert "zzz" not in redacted_query("&".join(f"k{n}=zzz" for n in range(50)))

    class Bare:  # a request aiohttp refused before routing it
        path = "/patient/p-1\n\x1b[31mforged"
        query_string = "token=abc"

    target = logged_target(Bare())  # type: ignore[arg-type]
    assert "\n" not in target and "\x1b" not in target and "abc" not in target
