"""Who the client is when the dashboard is served through a reverse proxy
(``[web] trusted_proxies``).

Behind nginx, Caddy or a hospital's TLS terminator every connection comes from the proxy, so
the failed-login counters (per client address) and the access log would see one address
for everyone: five wrong passwords from anyone would lock every caregiver out. With
``trusted_proxies`` set, and only for a connection whose TCP peer is in that list:

- the client's address is the right-most address of ``X-Forwarded-For`` that is not itself
  a trusted proxy (each proxy appends the address it was connected from, so everything to
  the left of that one was written by the client and is never read);
- the scheme is the matching entry of ``X-Forwarded-Proto`` (``http`` or ``https``), so a
  proxy that terminated TLS makes the request ``https``: the ``Origin`` check then matches
  what the browser sends, and cookies get ``Secure``.

A connection from any other peer is taken as it is: its headers are ignored, so a client
that reaches the dashboard directly cannot choose its address by sending them.

A header from a trusted proxy that cannot be used (an entry that is not an IP address, an
empty entry, more than :data:`MAX_TRUSTED_HOPS` trusted proxies in a row, a scheme that is
neither ``http`` nor ``https``) is ignored, each header on its own: the address is then the
peer's (today's behaviour without the option, never one the client chose), the scheme the
connection's; it is counted as ``forwarded`` in ``/healthz`` and logged once, without the
header's text. It is not refused: a proxy's quirk must not blank the caregivers' live view.

Not a library's middleware on purpose: aiohttp-remotes' ``XForwardedFiltered`` does not
check the peer (anyone could send the header), and ``XForwardedStrict`` wants an exact
number of hops and answers 400 to every direct connection (a health check, say).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web

from monitor.errors import InputError
from monitor.web.bodies import Rejections

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_TRUSTED_HOPS = 16
"""Trusted proxies in a row one request may have passed; more is a loop or a broken header."""
MAX_TRUSTED_PROXIES = 64
"""Entries of ``trusted_proxies`` (each request is checked against every one)."""
SCHEMES = frozenset({"http", "https"})
FORWARDED_PEER: web.RequestKey[str] = web.RequestKey("heatmon_forwarded_peer", str)
"""On the request aiohttp logs: the proxy's address, when the client's was taken from the
header (the access log writes the client's, ``request.remote`` of the handlers' clone)."""
FORWARDED_CLIENT: web.RequestKey[str] = web.RequestKey("heatmon_forwarded_client", str)


class ForwardedError(InputError):
    """A forwarding header from a trusted proxy that cannot be used (it is then ignored)."""


def parse_network(text: str) -> IPNetwork:
    """``"10.0.0.5"`` or ``"10.0.0.0/8"`` (host bits must be zero; not ``0.0.0.0/0``)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as err:
        raise ValueError(f"not an IP address or CIDR network: {err}") from None
    if network.prefixlen == 0:
        raise ValueError(f"{text!r} trusts every address: any client could choose its own")
    return network


def parse_address(text: str) -> IPAddress | None:
    """One ``X-Forwarded-For`` entry: an address, ``a.b.c.d:port``, ``[v6]`` or
    ``[v6]:port`` (some proxies add the port); ``None`` if it is none of them. An
    IPv4-mapped IPv6 address is taken as its IPv4 address."""
    host = text.strip()
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return None
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
        if not _is_port(":" + port):
            return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(text: str) -> bool:
    digits = text[1:]
    return text.startswith(":") and 0 < len(digits) <= 5 and digits.isascii() and digits.isdigit()


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent a request, as the handlers see it."""

    address: str
    scheme: str | None
    """``None``: no usable ``X-Forwarded-Proto``; the connection's own scheme stands."""


class TrustedProxies:
    """The ``trusted_proxies`` networks, and what a request says through them."""

    __slots__ = ("_networks",)

    def __init__(self, *, networks: Iterable[str]) -> None:
        self._networks = tuple(parse_network(n) for n in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in n for n in self._networks)

    def client(
        self, peer: str | None, forwarded_for: list[str], forwarded_proto: list[str]
    ) -> tuple[Client | None, list[ForwardedError]]:
        """The client behind ``peer`` (``None``: the peer is not a trusted proxy; take the
        connection as it is), from the headers' lines in order as received, and what was
        wrong with them (a header that cannot be used is ignored)."""
        peer_address = parse_address(peer or "")
        if peer_address is None or not self.trusts(peer_address):
            return None, []
        problems: list[ForwardedError] = []
        try:
            address, hops = self._walk(forwarded_for)
        except ForwardedError as err:
            problems.append(err)
            address, hops = None, 0
        try:
            scheme = _scheme(forwarded_proto, hops)
        except ForwardedError as err:
            problems.append(err)
            scheme = None
        return Client(address=str(address or peer_address), scheme=scheme), problems

    def _walk(self, lines: list[str]) -> tuple[IPAddress | None, int]:
        """The right-most untrusted address and how many trusted proxies stand right of it
        (``None, 0``: no header)."""
        joined = ",".join(lines).strip()
        if not joined:
            return None, 0
        # Only the entries that can matter are split off: a client's long prefix costs nothing.
        entries = joined.rsplit(",", MAX_TRUSTED_HOPS + 1)
        chosen: IPAddress | None = None
        hops = 0
        for n, entry in enumerate(reversed(entries)):
            if n >= MAX_TRUSTED_HOPS:
                raise ForwardedError(
                    f"more than {MAX_TRUSTED_HOPS} trusted proxies in a row",
                    where=hdrs.X_FORWARDED_FOR,
                )
            address = parse_address(entry)
            if address is None:
                raise ForwardedError(
                    f"entry {n + 1} from the right is not an IP address",
                    where=hdrs.X_FORWARDED_FOR,
                )
            chosen, hops = address, n
            if not self.trusts(address):
                break
        # Every entry a trusted proxy: the left-most is the client.
        return chosen, hops


def _scheme(lines: list[str], hops: int) -> str | None:
    """The ``X-Forwarded-Proto`` entry of the proxy the client connected to (``hops`` from
    the right; the left-most when a proxy keeps only one entry, as many do)."""
    joined = ",".join(lines).strip()
    if not joined:
        return None
    entries = joined.rsplit(",", MAX_TRUSTED_HOPS + 1)
    scheme = entries[max(len(entries) - 1 - hops, 0)].strip().lower()
    if scheme not in SCHEMES:
        raise ForwardedError("a scheme other than http or https", where=hdrs.X_FORWARDED_PROTO)
    return scheme


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def forwarded_middleware(
    trusted: TrustedProxies, rejections: Rejections
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """The first middleware: hands the handlers a request whose ``remote`` and ``scheme``
    are the client's, if the peer is a trusted proxy (see the module's docstring)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        client, problems = trusted.client(
            request.remote,
            request.headers.getall(hdrs.X_FORWARDED_FOR, []),
            request.headers.getall(hdrs.X_FORWARDED_PROTO, []),
        )
        for problem in problems:
            rejections.count("forwarded", f"{problem} (ignored)")
        if client is None:
            return await handler(request)
        request[FORWARDED_CLIENT] = client.address
        request[FORWARDED_PEER] = request.remote or ""
        scheme = client.scheme or request.scheme
        return await handler(request.clone(remote=client.address, scheme=scheme))

    return middleware
