"""The dashboard behind a reverse proxy (``[web] trusted_proxies``), against the real server.

The test's own connections play both roles on loopback: from ``127.0.0.1`` (the trusted
proxy, which appends the client's address to ``X-Forwarded-For`` as nginx's
``$proxy_add_x_forwarded_for`` does) and from ``127.0.0.2`` (a client that reaches the
dashboard directly and sends the headers itself, hoping to be believed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from monitor.errors import ConfigError
from monitor.web.auth import address_key
from monitor.web.config import parse_web_config
from monitor.web.forwarded import parse_address
from tests.fixtures.web import CAROL, DAVE, WebStack, build_web_stack

PROXY = "127.0.0.1"
DIRECT = "127.0.0.2"
"""Another loopback address: a peer that is not in ``trusted_proxies``."""
ALICE_ADDR = "203.0.113.5"
BOB_ADDR = "198.51.100.7"


@pytest.fixture
async def proxied() -> AsyncIterator[WebStack]:
    stack = build_web_stack(
        patients={"p-hot": ("Hanna", "hot_day_aerobic")}, trusted_proxies=(PROXY,)
    )
    async with stack.monitor:
        yield stack


def client_from(stack: WebStack, local: str, *, https: bool = False) -> aiohttp.ClientSession:
    """A client connecting from ``local``; ``https``: it sends ``Secure`` cookies back, as a
    browser talking HTTPS to the proxy does."""
    secure = [stack.base_url] if https else None
    return aiohttp.ClientSession(
        base_url=stack.base_url,
        connector=aiohttp.TCPConnector(local_addr=(local, 0)),
        cookie_jar=aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=secure),
    )


def via_proxy(client: str, *, sent: str | None = None, proto: str = "http") -> dict[str, str]:
    """The headers a proxy adds for ``client`` (after what the client ``sent`` itself)."""
    forwarded = f"{sent}, {client}" if sent else client
    return {"X-Forwarded-For": forwarded, "X-Forwarded-Proto": proto}


async def try_login(
    http: aiohttp.ClientSession, login: str, password: str, headers: Mapping[str, str]
) -> aiohttp.ClientResponse:
    async with http.get("/api/session", headers=headers) as resp:
        token = (await resp.json())["csrf"]
    async with http.post(
        "/api/login",
        json={"login": login, "password": password},
        headers={**headers, "X-CSRF-Token": token},
    ) as resp:
        await resp.read()
        return resp


async def access_records(caplog: pytest.LogCaptureFixture, count: int) -> list[Any]:
    """The access log's records, once ``count`` are there (it is written after the answer)."""
    async with asyncio.timeout(5):
        while True:
            records = [r for r in caplog.records if r.name == "aiohttp.access"]
            if len(records) >= count:
                return records
            await asyncio.sleep(0.01)


async def test_behind_a_trusted_proxy_one_clients_lockout_does_not_lock_another(
    proxied: WebStack,
) -> None:
    async with client_from(proxied, PROXY) as alice, client_from(proxied, PROXY) as bob:
        for n in range(5):  # guesses at dave's password: Alice's address is locked
            resp = await try_login(alice, DAVE.login, f"guess {n}", via_proxy(ALICE_ADDR))
            assert resp.status == 401
        resp = await try_login(alice, CAROL.login, CAROL.password, via_proxy(ALICE_ADDR))
        assert resp.status == 429, "Alice's address should be locked"
        # Alice cannot step out of it by writing another address before hers: the proxy
        # appends the address she connected from, and only that one is read.
        spoofed = via_proxy(ALICE_ADDR, sent=BOB_ADDR)
        assert (await try_login(alice, CAROL.login, CAROL.password, spoofed)).status == 429
        # Bob comes through the same proxy from another address: not locked out.
        resp = await try_login(bob, CAROL.login, CAROL.password, via_proxy(BOB_ADDR))
        assert resp.status == 200


async def test_an_untrusted_peer_cannot_choose_its_address(proxied: WebStack) -> None:
    async with client_from(proxied, DIRECT) as mallory:
        for n in range(5):
            headers = via_proxy(f"192.0.2.{n}")  # a new address every time
            resp = await try_login(mallory, DAVE.login, f"guess {n}", headers)
            assert resp.status == 401
        for n in range(5, 8):
            headers = via_proxy(f"192.0.2.{n}", proto="https")
            resp = await try_login(mallory, CAROL.login, CAROL.password, headers)
            assert resp.status == 429, "an untrusted peer's X-Forwarded-For was believed"


async def test_without_trusted_proxies_the_header_is_ignored(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    for n in range(5):
        headers = via_proxy(f"192.0.2.{n}")
        assert (await try_login(http, DAVE.login, f"guess {n}", headers)).status == 401
    resp = await try_login(http, CAROL.login, CAROL.password, via_proxy("192.0.2.99"))
    assert resp.status == 429


async def test_the_access_log_names_the_forwarded_client(
    proxied: WebStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with client_from(proxied, PROXY) as via, client_from(proxied, DIRECT) as direct:
        async with via.get("/healthz", headers=via_proxy(ALICE_ADDR, sent=BOB_ADDR)) as resp:
            assert resp.status == 200
        (record,) = await access_records(caplog, 1)
        assert record.getMessage().startswith(f'{ALICE_ADDR} "GET /healthz')
        assert (record.remote_address, record.peer_address) == (ALICE_ADDR, PROXY)
        async with direct.get("/healthz", headers=via_proxy(ALICE_ADDR)) as resp:
            assert resp.status == 200
        record = (await access_records(caplog, 2))[1]
        assert record.getMessage().startswith(f'{DIRECT} "GET /healthz')
        assert record.remote_address == DIRECT


async def test_https_at_the_proxy_passes_the_origin_check_and_makes_cookies_secure(
    proxied: WebStack,
) -> None:
    origin = proxied.base_url.replace("http://", "https://")
    via = client_from(proxied, PROXY, https=True)
    async with via, client_from(proxied, DIRECT) as direct:
        https = {**via_proxy(ALICE_ADDR, proto="https"), "Origin": origin}
        resp = await try_login(via, CAROL.login, CAROL.password, https)
        assert resp.status == 200, "the browser's https Origin was refused"
        cookie = resp.cookies["heatmon_session"]
        assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
        async with via.get("/api/session", headers=https) as me:
            assert (await me.json())["kind"] == "caregiver"
        # The same headers from a peer that is not a trusted proxy: plain http, no Secure,
        # and an https Origin is cross-origin.
        resp = await try_login(direct, CAROL.login, CAROL.password, https)
        assert resp.status == 403
        # ... and the answer says why: a TLS proxy heatmon does not trust (counted)
        said = (await resp.json())["error"]
        assert "https://" in said and "trusted_proxies" in said, said
        async with direct.get("/healthz") as health:
            assert (await health.json())["rejected"].get("origin") == 1
        # a scheme that is no web scheme is not repeated back: "another site"
        odd = {**via_proxy(ALICE_ADDR), "Origin": origin.replace("https", "x" * 500, 1)}
        resp = await try_login(direct, CAROL.login, CAROL.password, odd)
        said = (await resp.json())["error"]
        assert resp.status == 403 and "another site" in said and "xxx" not in said, said
        resp = await try_login(direct, CAROL.login, CAROL.password, via_proxy(ALICE_ADDR))
        assert resp.status == 200 and not resp.cookies["heatmon_session"]["secure"]


async def test_a_malformed_header_from_the_proxy_is_ignored_and_counted(
    proxied: WebStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = {"X-Forwarded-For": "203.0.113.5, not-an-address", "X-Forwarded-Proto": "gopher"}
    async with client_from(proxied, PROXY) as via:
        async with via.get("/healthz", headers=bad) as resp:
            assert resp.status == 200, "a proxy's quirk must not refuse the request"
        record = (await access_records(caplog, 1))[0]
        assert record.remote_address == PROXY, "taken as coming from the proxy"
        async with via.get("/healthz") as resp:
            assert (await resp.json())["rejected"] == {"forwarded": 2}
        too_many = {"X-Forwarded-For": ", ".join([ALICE_ADDR] + [PROXY] * 20)}
        async with via.get("/healthz", headers=too_many) as resp:
            assert (await resp.json())["rejected"] == {"forwarded": 3}
        # Garbage the client wrote left of its own address is never read.
        junk = via_proxy(ALICE_ADDR, sent="x" * 4000 + ", ???")
        async with via.get("/healthz", headers=junk) as resp:
            assert (await resp.json())["rejected"] == {"forwarded": 3}
    assert "not-an-address" not in caplog.text and "gopher" not in caplog.text


def test_trusted_proxies_are_validated_naming_the_key() -> None:
    config = parse_web_config({"trusted_proxies": ["10.0.0.0/8", "::1", " 192.0.2.1 "]})
    assert config.trusted_proxies == ("10.0.0.0/8", "::1/128", "192.0.2.1/32")
    assert parse_web_config({}).trusted_proxies == ()
    for bad, why in (
        ("10.0.0.0/33", "not an IP address or CIDR network"),
        ("10.0.0.1/8", "host bits set"),
        ("nginx", "not an IP address or CIDR network"),
        ("0.0.0.0/0", "trusts every address"),
        ("::/0", "trusts every address"),
    ):
        with pytest.raises(ConfigError, match=rf"web\.trusted_proxies: .*{why}.*"):
            parse_web_config({"trusted_proxies": [bad]})
    with pytest.raises(ConfigError, match=r"web\.trusted_proxies"):
        parse_web_config({"trusted_proxies": "10.0.0.1"})
    with pytest.raises(ConfigError, match=r"web\.trusted_proxies"):
        parse_web_config({"trusted_proxies": [f"10.0.0.{n}" for n in range(65)]})


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("203.0.113.5", "203.0.113.5"),
        (" 203.0.113.5:4711 ", "203.0.113.5"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("unknown", None),
        ("", None),
        ("203.0.113.5:", None),
        ("203.0.113.5:http", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("203.0.113.5:٤٤٣", None),
    ],
)
def test_forwarded_for_entries(entry: str, address: str | None) -> None:
    parsed = parse_address(entry)
    assert (str(parsed) if parsed is not None else None) == address


async def test_an_ipv6_client_cannot_escape_its_lockout_within_its_64(proxied: WebStack) -> None:
    """A failed login from each of five addresses of one /64 (a different login each time,
    so only the address counts) locks the /64: a sixth address there is refused even with
    the right password (before: each IPv6 address counted apart, 200). Another /64, and
    the next IPv4 address, are not locked."""
    async with client_from(proxied, PROXY) as mallory:
        for n in range(5):
            headers = via_proxy(f"2001:db8:1:2::{n + 1:x}")
            resp = await try_login(mallory, f"nobody{n}", "guess", headers)
            assert resp.status == 401
        fresh = via_proxy("2001:db8:1:2:ffff:1:2:3")
        resp = await try_login(mallory, CAROL.login, CAROL.password, fresh)
        assert resp.status == 429, "the attacker's /64 should be locked"
        other = via_proxy("2001:db8:1:3::1")
        assert (await try_login(mallory, CAROL.login, CAROL.password, other)).status == 200
    async with client_from(proxied, PROXY) as alice:
        for n in range(5):
            resp = await try_login(alice, f"nobody{n}", "guess", via_proxy("203.0.113.5"))
            assert resp.status == 401
        neighbour = via_proxy("203.0.113.6")
        assert (await try_login(alice, CAROL.login, CAROL.password, neighbour)).status == 200


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("203.0.113.5", "addr:203.0.113.5"),
        ("2001:db8:1:2:a:b:c:d", "addr:2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "addr:2001:db8:1:2::/64"),
        ("::ffff:203.0.113.5", "addr:203.0.113.5"),
        ("fe80::1%eth0", "addr:fe80::/64"),
        (None, "addr:unknown"),
        ("not an address", "addr:not an address"),
    ],
)
def test_lockout_keys_ipv4_by_address_and_ipv6_by_64(remote: str | None, key: str) -> None:
    assert address_key(remote) == key
