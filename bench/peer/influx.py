"""InfluxDB in the Node-RED comparison: counting what is stored, a recording proxy for the
storage lag, and curl's bulk write as the ceiling (with influxd's own CPU per point)."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.peer.services import busy_cores, machine_ticks, proc_cpu_s
from monitor.netutil import free_port
from monitor.storage.localserver import InfluxServer

STALL_S = 15.0
"""A max-rate run ends when influxd has taken no write for this long."""
QUIET_S = 0.3
"""Writes paused this long: count the samples (the run may be complete)."""
CURL_BATCHES = 20
CURL_POINTS = 10_000


# -- InfluxDB: counting, and a recording proxy for the storage lag ------------------------


def influx_query(url: str, q: str, db: str = "") -> Any:
    params = urllib.parse.urlencode({"q": q, "db": db})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=30) as r:
        return json.loads(r.read())


def write_stats(url: str) -> tuple[int, int]:
    """influxd's own counters since it started: (write requests, points written)."""
    doc = influx_query(url, "SHOW STATS FOR 'httpd'")
    series = doc["results"][0]["series"][0]
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    return int(row["writeReq"]), int(row["pointsWrittenOK"])


def stored(url: str, db: str) -> int:
    doc = influx_query(url, "SELECT count(value) FROM vitals WHERE patient != 'probe'", db)
    series = doc["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


class Proxy:
    """Forwards everything to influxd; notes, for every ``vitals`` point written, when
    influxd answered the write that carried it: ``seen[(patient, time_ms)]``."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_port()
        self.seen: dict[tuple[str, int], float] = {}
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        # aiohttp has inflated a gzip body already: forward it plain
        drop = {"host", "content-length"}
        if not body.startswith(b"\x1f\x8b"):
            drop.add("content-encoding")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in drop}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as upstream:
            answer = await upstream.read()
            status, out_headers = upstream.status, upstream.headers
        if request.path.endswith("/write") and status == 204:
            self._note(request, body, time.time())
        keep = {
            k: v
            for k, v in out_headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        return web.Response(status=status, body=answer, headers=keep)

    def _note(self, request: web.Request, body: bytes, at: float) -> None:
        if body.startswith(b"\x1f\x8b"):
            body = gzip.decompress(body)
        scale = {"ns": 1e-6, "u": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
        factor = scale.get(request.query.get("precision", "ns"), 1e-6)
        seen = self.seen
        for line in body.split(b"\n"):
            if not line.startswith(b"vitals,"):
                continue
            head, _, rest = line.partition(b" ")
            patient = head.split(b"patient=", 1)[1].split(b",", 1)[0].decode()
            key = (patient, round(int(rest.rsplit(b" ", 1)[1]) * factor))
            seen.setdefault(key, at)


async def wait_count(
    url: str, db: str, want: int, *, limit_s: float, written_before: int
) -> tuple[int, float]:
    """Wait until ``want`` samples are stored in ``db``, or nothing more was written for
    ``STALL_S``; (samples stored, when the count was reached or writes stopped).

    influxd's own write counter (:func:`write_stats`, cheap; ``written_before`` its points
    before the run) is watched every 50 ms; the samples are counted only once it has taken
    ``want`` points of any kind (then every 0.2 s) or when writes pause for ``QUIET_S`` (once
    a pause; a count then found complete dates from the last write). A count scans every
    point (~30 ms of influxd's CPU at 120k points): polled all through a run, it took ~0.1
    core from the systems under test."""
    start = time.time()
    written, grew_at, counted_at_written = -1, start, -2
    last, last_at = -1, start
    while time.time() - start < limit_s:
        now_written = (await asyncio.to_thread(write_stats, url))[1] - written_before
        if now_written != written:
            written, grew_at = now_written, time.time()
        paused = time.time() - grew_at >= QUIET_S
        if written >= want or (paused and counted_at_written != written):
            counted_at_written = written
            n = await asyncio.to_thread(stored, url, db)
            if n != last:
                last, last_at = n, time.time()
            if n >= want:
                return n, (grew_at if paused else last_at)
        if time.time() - grew_at > STALL_S:  # lost points: the rate counts to the last write
            return max(last, await asyncio.to_thread(stored, url, db)), grew_at
        await asyncio.sleep(0.2 if written >= want else 0.05)
    return last, last_at


async def wait_count_probe(url: str, db: str) -> int:
    for _ in range(50):
        doc = await asyncio.to_thread(
            influx_query, url, "SELECT count(value) FROM vitals WHERE patient = 'probe'", db
        )
        if doc["results"][0].get("series"):
            return 1
        await asyncio.sleep(0.2)
    return 0


def curl_ceiling(influx: InfluxServer, tmp: Path, tag: str) -> dict[str, float]:
    """curl's bulk rate (points/s), influxd's CPU per 1,000 points and the cores busy."""
    db = f"ceiling_{tag}"
    influx_query(influx.url, f'CREATE DATABASE "{db}"')
    files = []
    t0 = int(time.time() * 1000) - 10_000_000
    for b in range(CURL_BATCHES):
        path = tmp / f"curl-{tag}-{b}.lp"
        lines = (
            f"vitals,device=strap,kind=heart_rate,patient=p{(b * CURL_POINTS + i) % 1000:04d},"
            f'source=mqtt value={60 + i % 50}.0,flag="ok",accepted=true '
            f"{t0 + (b * CURL_POINTS + i) // 1000 * 1000}"
            for i in range(CURL_POINTS)
        )
        path.write_text("\n".join(lines))
        files.append(path)
    cmd = ["curl", "-sS", "-o", "/dev/null", "--fail"]
    url = f"{influx.url}/write?db={db}&precision=ms"
    for n, path in enumerate(files):
        if n:
            cmd.append("--next")
        cmd += ["-o", "/dev/null", "--data-binary", f"@{path}", url]
    points = CURL_BATCHES * CURL_POINTS
    influx_cpu0, ticks0 = proc_cpu_s(influx.pid), machine_ticks()
    start = time.time()
    subprocess.run(cmd, check=True, timeout=120)
    return {
        "rate": points / (time.time() - start),
        "influxd_cpu_ms_per_1000": 1000 * 1000 * (proc_cpu_s(influx.pid) - influx_cpu0) / points,
        "busy_cores": busy_cores(ticks0, machine_ticks()),
    }
