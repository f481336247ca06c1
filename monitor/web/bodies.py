"""Request bodies of the dashboard's API, read defensively.

Every ``POST`` body goes through :func:`read_json` (in :func:`body_middleware`, before any
handler sees it): bounded in size before it is read (``Content-Length``), while it is
read (chunked) and while it is inflated (``Content-Encoding: gzip`` or ``deflate``; others
are refused), decoded as strict UTF-8 (any other declared charset is refused, and so is a
lone surrogate escaped as ``\\ud800``), its nesting depth checked by a scan before the JSON
parser runs (deep nesting would exhaust Python's recursion), and parsed with ``NaN`` and
``Infinity`` refused. Whatever is wrong gives a :class:`BodyError`: a ``4xx`` answer whose
message says what is wrong and where, counted by kind (:class:`Rejections`, shown by
``/healthz``), the first of each kind logged; nothing of the body reaches the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from monitor.errors import InputError
from monitor.mqtt.strictjson import lone_surrogate

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
"""A login or a symptom note (500 characters, each at most 6 bytes escaped) fits easily."""
MAX_JSON_DEPTH = 16
"""Nesting (arrays and objects) a body may have; the API's bodies use 1."""
BODY: web.RequestKey[Any] = web.RequestKey("heatmon_body", object)
"""Key of the parsed body on the request (``request[BODY]``; ``None`` when empty)."""
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPES = frozenset({"application/json"})
UTF8 = frozenset({"utf-8", "utf8"})

_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)
"""A string (closed, or running to the end: never retried from inside) or a bracket."""


class BodyError(InputError):
    """A request body was refused; ``status`` is the HTTP answer, ``kind`` what is counted."""

    def __init__(self, message: str, *, status: int, kind: str, where: str) -> None:
        super().__init__(message, where=where)
        self.status = status
        self.kind = kind


def _shown(value: str, limit: int = 40) -> str:
    """A client's header value, short and quoted, for an error message."""
    return repr(value[:limit] + ("…" if len(value) > limit else ""))


def json_depth(raw: bytes, *, limit: int) -> int:
    """The nesting depth of JSON text ``raw`` (strings skipped), or ``limit + 1`` as soon as it
    goes deeper than ``limit``; one linear scan (no backtracking into strings, even
    unterminated ones) that never recurses."""
    depth = deepest = 0
    for m in _TOKENS.finditer(raw):
        token = m.group()
        if token[:1] == b'"':
            continue
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return limit + 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def _read_raw(
    request: web.Request, max_bytes: int, where: str, timeout_s: float | None
) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise BodyError(
            f"body of {length} bytes is larger than {max_bytes}",
            status=413,
            kind="too_large",
            where=where,
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while size <= max_bytes:
                chunk = await request.content.read(max_bytes + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except (web.RequestPayloadError, HttpProcessingError) as err:
        raise BodyError(
            "body was cut off or malformed", status=400, kind="transfer", where=where
        ) from err
    except TimeoutError as err:
        raise BodyError(
            f"body not received within {timeout_s:g} s", status=408, kind="slow", where=where
        ) from err
    if size > max_bytes:
        raise BodyError(
            f"body is larger than {max_bytes} bytes", status=413, kind="too_large", where=where
        )
    return b"".join(chunks)


def _decoded(raw: bytes, encoding: str, max_bytes: int, where: str) -> bytes:
    """``raw`` inflated as its ``Content-Encoding`` says, never to more than ``max_bytes``.

    The server runs with aiohttp's ``auto_decompress`` off (``monitor/web/sink.py``), so
    that this is the one place a body is inflated: bounded (a "zip bomb" stops at
    ``max_bytes``), and an encoding it does not take is a counted ``415``, not an error
    deep in aiohttp's parser.
    """
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return raw
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(
            f"Content-Encoding {_shown(encoding)} is not supported; send gzip, deflate or none",
            status=415,
            kind="encoding",
            where=where,
        )
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # gzip or zlib header
    try:
        out = inflater.decompress(raw, max_bytes + 1)
    except zlib.error as err:
        raise BodyError(
            f"body is not valid {coding} data ({err})", status=400, kind="encoding", where=where
        ) from err
    if len(out) > max_bytes:
        raise BodyError(
            f"body is larger than {max_bytes} bytes once inflated",
            status=413,
            kind="too_large",
            where=where,
        )
    if not inflater.eof:
        raise BodyError(
            f"body is truncated {coding} data", status=400, kind="encoding", where=where
        )
    return out


async def read_json(
    request: web.Request,
    *,
    where: str,
    max_bytes: int = MAX_BODY_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    timeout_s: float | None = None,
) -> Any:
    """The request's JSON body (``None`` when there is none), or a :class:`BodyError`
    (``408`` when it takes longer than ``timeout_s`` to arrive)."""
    raw = await _read_raw(request, max_bytes, where, timeout_s)
    if not raw:
        return None  # whatever Content-Type a client put on no body at all
    if hdrs.CONTENT_TYPE in request.headers:
        if request.content_type not in JSON_TYPES and not request.content_type.endswith("+json"):
            raise BodyError(
                f"Content-Type {_shown(request.content_type)} is not supported; "
                "send application/json",
                status=415,
                kind="content_type",
                where=where,
            )
        charset = request.charset
        if charset is not None and charset.lower() not in UTF8:
            raise BodyError(
                f"charset {_shown(charset)} is not supported; send UTF-8",
                status=415,
                kind="charset",
                where=where,
            )
    raw = _decoded(raw, request.headers.get(hdrs.CONTENT_ENCODING, ""), max_bytes, where)
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BodyError(
            f"body is not valid UTF-8 (byte {err.start})", status=400, kind="utf8", where=where
        ) from err
    if json_depth(raw, limit=max_depth) > max_depth:
        raise BodyError(
            f"JSON is nested deeper than {max_depth} levels", status=400, kind="depth", where=where
        )
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise BodyError(
            f"body is not JSON: {err.msg} at line {err.lineno} column {err.colno}",
            status=400,
            kind="json",
            where=where,
        ) from err
    except (ValueError, RecursionError) as err:  # NaN, a number of 5,000 digits
        raise BodyError(f"body is not JSON: {err}", status=400, kind="json", where=where) from err
    if lone_surrogate(raw, doc):
        raise BodyError(
            "body holds a lone UTF-16 surrogate (\\ud800…\\udfff): not Unicode text",
            status=400,
            kind="utf8",
            where=where,
        )
    return doc


def route_name(request: web.Request) -> str:
    """``POST /api/patients/{patient}/symptoms``: where, without any id a client chose."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else "?"
    return f"{request.method} {canonical}"


class Rejections:
    """Refused requests counted by kind; the first of each kind is logged (a flood of bad
    requests does not flood the log), the rest are in the counts ``/healthz`` shows."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, kind: str, message: str) -> None:
        self._counts[kind] += 1
        if self._counts[kind] == 1:
            log.warning("refused a request (%s): %s; more are counted in /healthz", kind, message)
        else:
            log.debug("refused a request (%s): %s", kind, message)

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_middleware(
    rejections: Rejections, *, timeout_s: float | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Parses every body (``request[BODY]``, within ``timeout_s``) before the handler; a
    bad one, or a :class:`BodyError` the handler raises, is answered with its 4xx and
    ``{"error": message}``, and counted."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.method in METHODS_WITH_BODY and request.match_info.http_exception is None:
                request[BODY] = await read_json(
                    request, where=route_name(request), timeout_s=timeout_s
                )
            return await handler(request)
        except BodyError as err:
            rejections.count(err.kind, str(err))
            response = web.json_response({"error": str(err)}, status=err.status)
            if err.status in (408, 413) or err.kind == "transfer":
                response.force_close()  # the unread rest of the body is not worth reading
            return response

    return middleware


def refuse(request: web.Request, message: str, *, kind: str = "shape") -> BodyError:
    """A :class:`BodyError` (400) for a body that is JSON but not what the route takes."""
    return BodyError(message, status=400, kind=kind, where=route_name(request))
