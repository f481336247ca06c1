"""Retry paths of the writer (Telegraf's sorting) against a real InfluxDB 1.x behind a
faulty proxy: 500, 429 with ``Retry-After``, a timeout after the write was stored, and
413 (too large: split in halves). Every point still arrives exactly once."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.model import SampleFlag
from monitor.netutil import free_port
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from tests.fixtures.influxdb import InfluxDatabase, forward_request
from tests.test_storage_sink import count, expected_values, samples, stored_values

CLIENT_TIMEOUT_S = 0.5
SLOW_REPLY_S = 3 * CLIENT_TIMEOUT_S
"""The 'slow server' answers this late: well after the client has given up."""


@dataclass
class FaultyProxy:
    """Forwards to InfluxDB; the n-th ``/write`` gets ``faults[n]`` instead (if any)."""

    url: str
    faults: list[str]
    writes: list[tuple[str, int]] = field(default_factory=list)
    """(what was done, lines in the body) per /write request."""


@pytest.fixture
async def faulty_proxy(influx_db: InfluxDatabase) -> AsyncIterator[FaultyProxy]:
    port = free_port()
    proxy = FaultyProxy(url=f"http://127.0.0.1:{port}", faults=[])
    session = aiohttp.ClientSession(auto_decompress=False)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path != "/write":
            return await forward_request(session, influx_db.url, request, body)
        raw = gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body
        lines = raw.count(b"\n") + 1
        n = len(proxy.writes)
        fault = proxy.faults[n] if n < len(proxy.faults) else "ok"
        if fault == "413" and lines == 1:
            fault = "ok"
        proxy.writes.append((fault, lines))
        if fault == "500":
            return web.json_response({"error": "internal"}, status=500)
        if fault == "429":
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": "0"}
            )
        if fault == "413":
            return web.json_response({"error": "request too large"}, status=413)
        response = await forward_request(session, influx_db.url, request, body)
        if fault == "timeout":  # stored, but the answer comes too late
            await asyncio.sleep(SLOW_REPLY_S)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield proxy
    await runner.cleanup()
    await session.close()


async def test_5xx_429_timeouts_are_retried_and_413_split_every_point_once(
    faulty_proxy: FaultyProxy, influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    faulty_proxy.faults = ["500", "429", "timeout", "413"]
    options = InfluxOptions(
        url=faulty_proxy.url,
        api="v1",
        database=influx_db.name,
        timeout_s=CLIENT_TIMEOUT_S,
        batch_size=1000,
        flush_interval_s=0.05,
        spool_fsync=False,
    )
    sent = samples(1000)
    async with InfluxSink(options=options, data_dir=tmp_path) as sink:
        for s in sent:
            sink.submit_sample(s, SampleFlag.OK)
        assert await sink.drain(timeout_s=30)
    # the same batch, tried again after each failure, then split in halves after the 413
    assert faulty_proxy.writes[:6] == [
        ("500", 1000),
        ("429", 1000),
        ("timeout", 1000),
        ("413", 1000),
        ("ok", 500),
        ("ok", 500),
    ]
    assert sink.stats.write_failures == 3  # 413 is no failure: it is split at once
    assert sink.stats.quarantined == 0
    assert sink.stats.written == len(sent)
    # the timed-out write had been stored already; its retry overwrote, not duplicated
    assert count(influx_db) == len(sent)
    assert stored_values(influx_db) == expected_values(sent)
