"""The dashboard's access log, with nothing secret in it.

aiohttp's own access log writes the request line as the client sent it, so a patient's link
(``/patient/p-0001?token=…``) would put the patient's token into every log that collects
it. :class:`RedactingAccessLogger` (passed to ``web.AppRunner(access_log_class=...)``)
writes instead:

- the matched route's template with only the patient's pseudonym filled in
  (``/api/patients/p-0001/sessions/{session}``): ids of alerts and sessions, well formed or
  not, never reach the log;
- for a path no route matched, the path cut to :data:`MAX_LOGGED_PATH` characters;
- every query value replaced by ``…`` (``/patient/p-0001?token=…``), keys kept if they look
  like names;
- no headers (no cookies, no ``Referer``, no ``User-Agent``); bodies are never logged;
- the client's address: behind a proxy in ``[web] trusted_proxies``, the one its
  ``X-Forwarded-For`` gives (the proxy's in the record's ``peer_address``).

aiohttp's server logger also logs requests its parser refuses (a request line longer than
8190 bytes, too many headers), with the exception, whose message quotes the start of the
offending line: :func:`server_logger` gives the logger the dashboard's server uses instead,
where :class:`ParserErrorFilter` keeps the kind of error and drops its text.

Characters a terminal would interpret are escaped, so a request cannot forge log lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, DynamicResource, Request, StreamResponse

from monitor.web.forwarded import FORWARDED_CLIENT, FORWARDED_PEER

SERVER_LOGGER = "monitor.web.server"
MAX_LOGGED_PATH = 100
MAX_QUERY_KEYS = 10
REDACTED = "…"

_SAFE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_UNPRINTABLE = re.compile(r"[^\x21-\x7e\u00a0-\uffff]|[\ud800-\udfff]")


def _printable(text: str, limit: int) -> str:
    cut = text[:limit] + (REDACTED if len(text) > limit else "")
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()) & 0xFF:02x}", cut)


def redacted_query(query_string: str) -> str:
    """``token=abc&x=1`` → ``token=…&x=…``: names kept (if they look like names), values gone."""
    if not query_string:
        return ""
    parts = []
    for item in query_string.split("&")[:MAX_QUERY_KEYS]:
        key, sep, _ = item.partition("=")
        key = key if _SAFE_KEY.fullmatch(key) else REDACTED
        parts.append(f"{key}={REDACTED}" if sep else key)
    if query_string.count("&") >= MAX_QUERY_KEYS:
        parts.append(REDACTED)
    return "?" + "&".join(parts)


def logged_target(request: BaseRequest) -> str:
    """The request target as the access log may show it (see the module's docstring)."""
    path = None
    match_info = None
    if isinstance(request, Request):
        try:
            match_info = request.match_info
        except AssertionError:  # a request aiohttp refused before routing it
            match_info = None
    if match_info is not None and match_info.http_exception is None:
        resource = match_info.route.resource
        if isinstance(resource, DynamicResource):
            patient = match_info.get("patient")

            def fill(m: re.Match[str]) -> str:
                return patient if m.group(1) == "patient" and patient else m.group()

            path = _PLACEHOLDER.sub(fill, resource.canonical)
    if path is None:
        path = _printable(request.path, MAX_LOGGED_PATH)
    return path + redacted_query(request.query_string)


def _safely(func: Callable[[BaseRequest], str], request: BaseRequest) -> str:
    try:
        return func(request)
    except Exception:  # the access log must never break the answer
        return "?"


class RedactingAccessLogger(AbstractAccessLogger):
    """One line a request: address, method, redacted target, status, bytes, seconds."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # Behind a trusted proxy, the client's address (monitor/web/forwarded.py)
        remote = request.get(FORWARDED_CLIENT, request.remote)
        extra: dict[str, Any] = {
            "remote_address": remote,
            "peer_address": request.get(FORWARDED_PEER, request.remote),
            "method": request.method,
            "target": _safely(logged_target, request),
            "status": response.status,
            "response_bytes": response.body_length,
            "duration_s": round(time, 6),
        }
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs',
            _printable(remote or "-", 64),
            _printable(request.method, 16),
            extra["target"],
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
            extra=extra,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class ParserErrorFilter(logging.Filter):
    """Drops the text (which may quote a URL with its token) of HTTP parser errors, and logs
    them as a warning: a malformed request is the client's fault, answered with its 4xx, and
    no fault of the server's (aiohttp logs it as an error with a traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"{record.getMessage()}: {type(exc).__name__} ({exc.code})"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def server_logger() -> logging.Logger:
    """The logger for ``web.AppRunner(logger=...)``, with :class:`ParserErrorFilter` on it."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, ParserErrorFilter) for f in logger.filters):
        logger.addFilter(ParserErrorFilter())
    return logger
