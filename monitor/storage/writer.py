"""Sending line-protocol batches to InfluxDB, through either of its write APIs.

- ``v1``: ``POST /write?db=…&rp=…&precision=…`` (InfluxDB 1.x), with aiohttp.
- ``v2``: ``POST /api/v2/write?org=…&bucket=…&precision=…`` through ``influxdb-client``'s
  async client (InfluxDB 2.x and 3.x; 1.8+ with ``bucket = "db/rp"`` and
  ``token = "user:password"``).
- ``auto``: asks ``/ping`` for the ``X-Influxdb-Version`` header: 1.x gets v1, anything
  newer v2. Decided at the first write that reaches the server, so heatmon can start
  while the database is still down.

Both send the same bytes (built by :mod:`monitor.storage.lineprotocol`), gzip-compressed.
Failures are sorted as Telegraf's InfluxDB outputs sort them, into
:class:`WriteError` with ``action``:

==========================================  =========  ====================================
what happened                               action     what the sink does
==========================================  =========  ====================================
400, 422 (bad line, type conflict, …)       drop       quarantine the batch with the reason
413 (request too large)                     split      send each half separately
429, 503                                    throttle   wait (``Retry-After`` if given), retry
other 5xx, 401/403/404, timeout, refused    retry      keep it spooled; backoff, retry
==========================================  =========  ====================================

A v1 ``404 database not found`` creates the database once (``create_database = true``)
and retries at once, as Telegraf does.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from typing import Any, Literal, cast

import aiohttp

from monitor.errors import SinkError
from monitor.storage.options import InfluxOptions

log = logging.getLogger(__name__)

GZIP_LEVEL = 1
"""Fastest gzip level: line protocol still shrinks about tenfold."""
INLINE_GZIP_BYTES = 64 * 1024
"""Bodies up to this size are compressed on the event loop (~0.1 ms for 47 KB at level 1);
larger ones in a worker thread. A hand-off to a thread costs the loop more than a small
body's compression (each one can leave the loop waiting for the interpreter lock); at the
real-world rate, a write every ~13 ms of a few dozen points, this and the spool's in-memory
read and commit took heatmon's CPU per 1,000 samples from ~205 to ~170 ms (README, "Where
the alert tail comes from"; the alert tail itself did not measurably move)."""
ApiName = Literal["v1", "v2"]


class WriteError(SinkError):
    """A batch was not written; ``action`` is drop, split, throttle or retry."""

    def __init__(
        self,
        message: str,
        *,
        action: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, action=action)
        self.status = status
        self.retry_after_s = retry_after_s


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify(status: int, message: str, retry_after: str | None = None) -> WriteError:
    """Sort an HTTP failure as Telegraf does (see the module docstring)."""
    text = f"HTTP {status}: {message.strip()[:500]}"
    if status in (400, 422):
        return WriteError(text, action="drop", status=status)
    if status == 413:
        return WriteError(text, action="split", status=status)
    if status in (429, 503):
        return WriteError(
            text, action="throttle", status=status, retry_after_s=_retry_after(retry_after)
        )
    return WriteError(text, action="retry", status=status)


def api_for_version(version: str, *, has_token: bool) -> ApiName:
    """Which write API a server with this ``X-Influxdb-Version`` gets."""
    v = version.strip().lower().lstrip("v")
    if v.startswith("1."):
        return "v1"
    if v:
        return "v2"
    return "v2" if has_token else "v1"


class InfluxWriter:
    """Writes one batch at a time; an async context manager owning its HTTP sessions."""

    def __init__(self, *, options: InfluxOptions) -> None:
        self.options = options
        self._session: aiohttp.ClientSession | None = None
        self._client: Any = None  # InfluxDBClientAsync, created when v2 is chosen
        self._v2_api: Any = None
        self.api: ApiName | None = None if options.api == "auto" else options.api
        self.server_version: str | None = None
        self._database_created = False

    async def __aenter__(self) -> InfluxWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.options.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        token = self.options.token.get_secret_value()
        if token:
            headers["Authorization"] = f"Token {token}"
        return headers

    def _auth(self) -> aiohttp.BasicAuth | None:
        if self.options.username and not self.options.token.get_secret_value():
            return aiohttp.BasicAuth(
                self.options.username, self.options.password.get_secret_value()
            )
        return None

    async def detect(self) -> ApiName:
        """Ask ``/ping`` which server this is (only when ``api = "auto"``)."""
        if self.api is not None:
            return self.api
        assert self._session is not None, "writer not started"
        try:
            async with self._session.get(f"{self.options.url}/ping") as resp:
                version = resp.headers.get("X-Influxdb-Version", "")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise WriteError(f"cannot reach {self.options.url}: {err}", action="retry") from err
        self.server_version = version
        self.api = api_for_version(version, has_token=bool(self.options.token.get_secret_value()))
        log.info(
            "InfluxDB at %s reports version %r: writing through the %s API",
            self.options.url,
            version or "unknown",
            self.api,
        )
        return self.api

    async def write(self, body: bytes) -> None:
        """Send one batch of line protocol; raise :class:`WriteError` if it was not stored."""
        api = await self.detect()
        if api == "v1":
            await self._write_v1(body)
        else:
            await self._write_v2(body)

    # -- v1 ------------------------------------------------------------------------------

    async def _write_v1(self, body: bytes) -> None:
        assert self._session is not None, "writer not started"
        params = {"db": self.options.database, "precision": self.options.precision}
        if self.options.retention_policy:
            params["rp"] = self.options.retention_policy
        headers = self._headers()
        data = body
        if self.options.gzip:
            if len(body) <= INLINE_GZIP_BYTES:
                data = gzip.compress(body, GZIP_LEVEL)
            else:
                data = await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        for attempt in (1, 2):
            try:
                async with self._session.post(
                    f"{self.options.url}/write",
                    params=params,
                    data=data,
                    headers=headers,
                    auth=self._auth(),
                ) as resp:
                    if resp.status == 204:
                        return
                    text = await resp.text()
                    retry_after = resp.headers.get("Retry-After")
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                raise WriteError(
                    f"write to {self.options.url} failed: {type(err).__name__}: {err}",
                    action="retry",
                ) from err
            if (
                status == 404
                and "database not found" in text
                and attempt == 1
                and self.options.create_database
            ):
                await self._create_database()
                continue
            raise classify(status, text, retry_after)

    async def _create_database(self) -> None:
        assert self._session is not None
        q = f'CREATE DATABASE "{self.options.database}"'
        try:
            async with self._session.post(
                f"{self.options.url}/query",
                data={"q": q},
                headers={k: v for k, v in self._headers().items() if k != "Content-Type"},
                auth=self._auth(),
            ) as resp:
                text = await resp.text()
                if resp.status != 200 or '"error"' in text:
                    raise WriteError(
                        f"cannot create database {self.options.database!r}: {text[:300]}",
                        action="retry",
                        status=resp.status,
                    )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise WriteError(f"cannot create database: {err}", action="retry") from err
        log.info("created InfluxDB database %r", self.options.database)

    # -- v2 ------------------------------------------------------------------------------

    def _v2(self) -> Any:
        if self._v2_api is None:
            from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

            self._client = InfluxDBClientAsync(
                url=self.options.url,
                token=cast(str, self.options.token.get_secret_value() or None),
                org=cast(str, self.options.org or None),
                timeout=int(self.options.timeout_s * 1000),
                enable_gzip=self.options.gzip,
            )
            self._v2_api = self._client.write_api()
        return self._v2_api

    async def _write_v2(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        bucket = self.options.bucket or (
            f"{self.options.database}/{self.options.retention_policy}"
            if self.options.retention_policy
            else self.options.database
        )
        try:
            await self._v2().write(
                bucket=bucket,
                org=self.options.org or "-",
                record=body,
                write_precision=self.options.precision,
            )
        except ApiException as err:
            status = int(err.status or 0)
            message = err.body.decode() if isinstance(err.body, bytes) else str(err.body or "")
            headers: Any = err.headers
            retry_after = headers.get("Retry-After") if headers else None
            raise classify(status, message or str(err.reason), retry_after) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise WriteError(
                f"write to {self.options.url} failed: {type(err).__name__}: {err}",
                action="retry",
            ) from err
