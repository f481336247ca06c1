"""The v2 write path (``/api/v2/write`` through influxdb-client's async client), against
a real server that implements it (VictoriaMetrics), with the request on the wire checked
against what InfluxDB 2.x accepts."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.model import SampleFlag
from monitor.netutil import free_port
from monitor.storage import lineprotocol as lp
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from monitor.storage.writer import api_for_version, classify
from tests.fixtures.influxdb import InfluxDatabase, VictoriaMetrics, forward_request
from tests.test_storage_sink import samples


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class RecordingProxy:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever a request arrives."""

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/api/v2/write"]

    async def wait_for_writes(self, n: int) -> list[Recorded]:
        while len(self.writes()) < n:
            self.arrived.clear()
            await self.arrived.wait()
        return self.writes()


@pytest.fixture
async def recording_proxy(victoria_metrics: VictoriaMetrics) -> AsyncIterator[RecordingProxy]:
    """Forwards every request to VictoriaMetrics and keeps a copy of it."""
    port = free_port()
    proxy = RecordingProxy(url=f"http://127.0.0.1:{port}")
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        proxy.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        proxy.arrived.set()
        return await forward_request(session, victoria_metrics.url, request, body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, auto_decompress=False)  # keep the body as sent
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield proxy
    await runner.cleanup()
    await session.close()


async def test_v2_write_sends_what_influxdb_2_accepts_and_lands(
    recording_proxy: RecordingProxy, victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    sent = samples(300)
    options = InfluxOptions(
        url=recording_proxy.url,
        api="v2",
        org="clinic",
        bucket="heatmon",
        token="s3cret-token",
        precision="ms",
        batch_size=1000,
        flush_interval_s=0.05,
        spool_fsync=False,
    )
    async with InfluxSink(options=options, data_dir=tmp_path) as sink:
        for s in sent:
            sink.submit_sample(s, SampleFlag.OK)
        assert await sink.drain(timeout_s=20)
    writes = [r for r in recording_proxy.requests if r.path.endswith("/write")]
    assert len(writes) == 1
    req = writes[0]
    assert req.method == "POST"
    assert req.path == "/api/v2/write"
    assert req.query == {"org": "clinic", "bucket": "heatmon", "precision": "ms"}
    assert req.headers["Authorization"] == "Token s3cret-token"
    assert req.headers["Content-Encoding"] == "gzip"
    assert req.headers["Content-Type"].startswith("text/plain")
    body = gzip.decompress(req.body).decode()
    assert body == "\n".join(lp.sample_line(s, SampleFlag.OK, "ms") for s in sent)
    # and the data really arrived (VictoriaMetrics names it measurement_field)
    exported = victoria_metrics.export('{__name__="vitals_value"}')
    assert len(exported) == 1
    series = exported[0]
    assert series["metric"]["patient"] == "p-001"  # type: ignore[index]
    # VictoriaMetrics keeps 12 significant digits (InfluxDB's exactness is tested elsewhere)
    assert series["values"] == pytest.approx([s.value for s in sent], rel=1e-11)
    assert series["timestamps"] == [round(s.time * 1000) for s in sent]


async def test_batches_are_cut_by_size_and_the_rest_sent_after_flush_interval(
    recording_proxy: RecordingProxy, tmp_path: Path
) -> None:
    flush_interval_s = 0.5
    options = InfluxOptions(
        url=recording_proxy.url,
        api="v2",
        org="clinic",
        bucket="heatmon",
        batch_size=100,
        flush_interval_s=flush_interval_s,
        spool_interval_s=0.02,
        spool_fsync=False,
    )
    async with InfluxSink(options=options, data_dir=tmp_path) as sink:
        submitted_at = time.monotonic()
        for s in samples(250):
            sink.submit_sample(s, SampleFlag.OK)
        async with asyncio.timeout(20):  # no drain: the time limit alone must send the rest
            writes = await recording_proxy.wait_for_writes(3)
        assert await sink.drain(timeout_s=20)
    assert recording_proxy.writes() == writes
    sizes = [gzip.decompress(r.body).count(b"\n") + 1 for r in writes]
    assert sizes == [100, 100, 50]
    # the full batches went at once; the last waited for more until flush_interval_s
    assert writes[2].at - submitted_at >= flush_interval_s
    assert writes[1].at - submitted_at < writes[2].at - submitted_at


async def test_v2_write_while_the_server_is_down_is_spooled_then_delivered(
    victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    options = InfluxOptions(
        url=dead, api="v2", org="o", bucket="b", precision="ms", flush_interval_s=0.05
    )
    sent = samples(50)
    async with InfluxSink(
        options=options.model_copy(update={"stop_timeout_s": 0}), data_dir=tmp_path
    ) as sink:
        for s in sent:
            sink.submit_sample(s, SampleFlag.OK)
        assert not await sink.drain(timeout_s=0.5)
        assert sink.stats.write_failures > 0
    live = options.model_copy(update={"url": victoria_metrics.url})
    async with InfluxSink(options=live, data_dir=tmp_path) as sink:
        assert sink.spool.pending_points == len(sent)
        assert await sink.drain(timeout_s=20)
    exported = victoria_metrics.export('{__name__="vitals_value"}')
    assert exported[0]["values"] == pytest.approx([s.value for s in sent], rel=1e-11)


async def test_auto_detects_influxdb_1x_and_uses_the_v1_api(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    options = InfluxOptions(
        url=influx_db.url, database=influx_db.name, flush_interval_s=0.05, downsample=True
    )
    async with InfluxSink(options=options, data_dir=tmp_path) as sink:
        sink.submit_sample(samples(1)[0], SampleFlag.OK)
        assert await sink.drain(timeout_s=10)
        assert sink.writer.api == "v1"
        assert sink.writer.server_version is not None
        assert sink.writer.server_version.startswith("1.")
    cqs = [s for s in influx_db.query("SHOW CONTINUOUS QUERIES") if s["name"] == influx_db.name]
    assert sorted(row[0] for row in cqs[0]["values"]) == ["thermal_1m", "vitals_1m"]


def test_version_header_picks_the_api() -> None:
    assert api_for_version("1.6.7~rc0", has_token=False) == "v1"
    assert api_for_version("1.8.10", has_token=True) == "v1"
    assert api_for_version("v2.7.4", has_token=False) == "v2"
    assert api_for_version("3.0.1", has_token=True) == "v2"
    assert api_for_version("", has_token=True) == "v2"
    assert api_for_version("", has_token=False) == "v1"


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (400, "drop"),
        (422, "drop"),
        (413, "split"),
        (429, "throttle"),
        (503, "throttle"),
        (500, "retry"),
        (502, "retry"),
        (401, "retry"),
        (404, "retry"),
    ],
)
def test_errors_are_sorted_as_telegraf_sorts_them(status: int, action: str) -> None:
    err = classify(status, "msg", "7")
    assert err.action == action
    if action == "throttle":
        assert err.retry_after_s == 7.0
