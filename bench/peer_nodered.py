"""Benchmark: heatmon side by side with the Node-RED flow a clinic's IT person would build.

Run: ``.venv/bin/python bench/peer_nodered.py [--rounds 2] [--patients 1000]`` (loopback
only; every step bounded in time; the whole run takes ~10 min on two cores).

The peer: ``mqtt in`` (QoS 1) → ``json`` → ``function`` (the gateway batch to points) →
``node-red-contrib-influxdb``'s ``influxdb batch`` node, installed from npm (node-red 4,
node-red-contrib-influxdb 0.7) into ``var/bench/nodered`` (a cache, not committed). Both
run as their own process against the same Mosquitto (``monitor/mqtt/localbroker.py``) and
the same influxd 1.x (``monitor/storage/localserver.py``), fed by the same QoS 1 publisher
(a child process, payloads encoded before the clock starts, 200 messages in flight),
heatmon as ``heatmon run`` with default settings. Rounds interleave the two.

Figures, per system and round:

- max sustained samples/s, messages of 10 s (20 samples) and of 1 s (2 samples) of a
  patient: the publisher sends flat out; rate = samples stored / (last stored − first
  published), stored counted in InfluxDB; ``lost`` = published − stored when the count
  stops growing;
- at the real-world rate (``--patients`` × 2 samples/s, each patient's second in one
  message, patients spread over the second): storage lag p50/p99 (publish → InfluxDB's
  answer to the write that carried the point, seen by a recording proxy in front of
  influxd) and, heatmon only, sample → alert p50/p99 (publish of the message closing the
  alert's 10-s window → the alert received by a subscriber, a process of its own), once
  with every patient's rise at the same second (``realtime``: 1,000 alerts in one second,
  the worst case) and once with the rises spread over ``SPREAD_S`` (``spread``);
- CPU per 1,000 samples stored (the service's process alone, flat out, 10-s messages) and
  peak RSS;
- the ceiling: ``curl`` posting 10k-point line-protocol batches to ``/write``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.model import Sample, SampleKind, parse_time
from monitor.mqtt import payloads
from monitor.mqtt.localbroker import MosquittoBroker
from monitor.netutil import free_port
from monitor.storage.localserver import InfluxServer

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "var" / "bench" / "nodered"
NODE_RED = "node-red@4.1.15"
INFLUX_NODE = "node-red-contrib-influxdb@0.7.0"
USER, PASSWORD = "bench", "bench-password"
IN_FLIGHT = 200
"""QoS 1 publishes awaiting their PUBACK at once (as bench/mqtt_throughput.py)."""
FLAT_STEPS = {"10s": 60, "1s": 20}
"""Seconds of every patient sent flat out in the max-rate runs (fewer with 1-s messages:
the same number of messages takes as long to send)."""
REALTIME_S = 100
"""Real-world run: each patient's second published at that second (sample time = publish
time, patients spread over the second); heatmon's patients have a resting heart rate and
baseline in their profile (no 2-minute rest), rest 10 s, then core temperature rises
0.02 °C/s: heatmon says ``caution`` at ~90 s."""
REST_STEPS = 10
SPREAD_S = 30
"""Kind ``spread``: the real-world run with patient n's rise starting ``n / patients ×
SPREAD_S`` s later (as people start at different times), so that the alerts come over
half a minute instead of all 1,000 in the same second (kind ``realtime``, the worst case)."""
STALL_S = 15.0
"""A max-rate run ends when the stored count has not grown for this long."""
RUN_LIMIT_S = 240.0
"""No run lasts longer."""
CURL_BATCHES = 20
CURL_POINTS = 10_000


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- the peer's installation ---------------------------------------------------------------


def install_nodered(cache: Path) -> Path:
    red = cache / "node_modules" / "node-red" / "red.js"
    if not red.exists() or not (cache / "node_modules" / "node-red-contrib-influxdb").exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text('{"name": "heatmon-bench-nodered", "private": true}')
        log(f"installing {NODE_RED} and {INFLUX_NODE} from npm into {cache}")
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                NODE_RED,
                INFLUX_NODE,
            ],
            cwd=cache,
            check=True,
            timeout=600,
        )
    return red


def nodered_flow(*, broker_port: int, prefix: str, influx_port: int, db: str) -> list[Any]:
    fn = (
        "const parts = msg.topic.split('/'); const patient = parts[parts.length - 2];\n"
        "msg.payload = msg.payload.samples.map(s => ({measurement: 'vitals',"
        " tags: {patient: patient, kind: s.kind, device: s.device || '', source: 'mqtt'},"
        " fields: {value: s.value}, timestamp: new Date(Math.round(s.time * 1000))}));\n"
        "return msg;"
    )
    return [
        {"id": "f1tab", "type": "tab", "label": "bench"},
        {
            "id": "f1broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(broker_port),
            "clientid": f"nodered-{prefix.split('/')[0]}",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
        },
        {
            "id": "f1influx",
            "type": "influxdb",
            "hostname": "127.0.0.1",
            "port": str(influx_port),
            "protocol": "http",
            "database": db,
            "name": "",
            "usetls": False,
            "influxdbVersion": "1.x",
        },
        {
            "id": "f1in",
            "type": "mqtt in",
            "z": "f1tab",
            "topic": f"{prefix}/patients/+/samples",
            "qos": "1",
            "datatype": "utf8",
            "broker": "f1broker",
            "wires": [["f1json"]],
        },
        {"id": "f1json", "type": "json", "z": "f1tab", "property": "payload", "wires": [["f1fn"]]},
        {
            "id": "f1fn",
            "type": "function",
            "z": "f1tab",
            "func": fn,
            "outputs": 1,
            "wires": [["f1out"]],
        },
        {
            "id": "f1out",
            "type": "influxdb batch",
            "z": "f1tab",
            "influxdb": "f1influx",
            "precision": "ms",
            "retentionPolicy": "",
            "wires": [],
        },
    ]


# -- the services under test ---------------------------------------------------------------


def proc_cpu_s(pid: int | None) -> float:
    """CPU time (user + system) of process ``pid`` so far, from /proc; nan if unknown."""
    if pid is None:
        return math.nan
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (/proc/stat: idle and iowait are
    not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])
    return total - values[3] - values[4], total


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores' worth of the machine busy between two :func:`machine_ticks` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * busy / max(1, total)


class Service:
    """One system under test as a process: its CPU time and peak RSS from /proc."""

    def __init__(self, name: str, cmd: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=self._log)

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def start_heatmon(
    work: Path,
    *,
    broker: MosquittoBroker,
    influx_url: str,
    prefix: str,
    db: str,
    ids: list[str],
    code: Path | None = None,
    window_phase: str = "clock",
) -> Service:
    """``heatmon run``; with ``code``, the ``monitor`` package from that folder instead (an
    earlier version, ``--base``, run in the same rounds)."""
    work.mkdir(parents=True, exist_ok=True)
    patients = "".join(
        f'[[patients]]\nid = "{p}"\nresting_hr_bpm = 70\nbaseline_core_c = 37.0\n' for p in ids
    )
    (work / "heatmon.toml").write_text(
        f'[monitor]\ninstance = "bench-{db}"\nlog_level = "WARNING"\ndata_dir = "{work}"\n\n'
        + (f'[engine]\nwindow_phase = "{window_phase}"\n\n' if window_phase != "clock" else "")
        + f"{patients}\n"
        f'[sinks.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "{USER}"\n'
        f'topic_prefix = "{prefix}"\nclient_id = "heatmon-{db}"\n\n'
        f'[sinks.influxdb]\nurl = "{influx_url}"\ndatabase = "{db}"\n'
    )
    env = {**os.environ, "HEATMON_MQTT_PASSWORD": PASSWORD}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    exe = str(Path(sys.executable).with_name("heatmon"))
    return Service(
        "heatmon", [exe, "run", "--config", str(work / "heatmon.toml")], cwd=work, env=env
    )


def start_spy(out: Path, pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` until it exits (``--profile``)."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "-r", "250", "--idle", "-f", "speedscope", "-o", str(out)]
    cmd += ["--pid", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_nodered(
    work: Path, red: Path, *, broker: MosquittoBroker, influx_port: int, prefix: str, db: str
) -> Service:
    work.mkdir(parents=True, exist_ok=True)
    (work / "flows.json").write_text(
        json.dumps(
            nodered_flow(broker_port=broker.port, prefix=prefix, influx_port=influx_port, db=db)
        )
    )
    (work / "flows_cred.json").write_text(
        json.dumps({"f1broker": {"user": USER, "password": PASSWORD}, "f1influx": {}})
    )
    (work / "settings.js").write_text(
        "module.exports = { credentialSecret: false, uiHost: '127.0.0.1',"
        " logging: { console: { level: 'warn' } }, editorTheme: { tours: false } };\n"
    )
    port = free_port()
    cmd = ["node", str(red), "--userDir", str(work), "--settings", str(work / "settings.js")]
    cmd += ["--port", str(port), "flows.json"]
    return Service("nodered", cmd, cwd=work, env=dict(os.environ))


# -- InfluxDB: counting, and a recording proxy for the storage lag ------------------------


def influx_query(url: str, q: str, db: str = "") -> Any:
    params = urllib.parse.urlencode({"q": q, "db": db})
    with urllib.request.urlopen(f"{url}/query?{params}", timeout=30) as r:
        return json.loads(r.read())


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


# -- the publisher (a child process) -------------------------------------------------------


def batch_body(patient: str, t0: float, start: int, stop: int, *, rest: int = REST_STEPS) -> bytes:
    items = []
    for i in range(start, stop):
        core = 37.0 if i < rest else 37.0 + min(0.9, (i - rest) * 0.02)
        hr = 70.0 if i < rest else 150.0
        t = round(t0 + i, 3)
        items.append(payloads.sample_dict(Sample(patient, SampleKind.HEART_RATE, hr, t, "strap")))
        items.append(payloads.sample_dict(Sample(patient, SampleKind.CORE_TEMP, core, t, "pill")))
    return payloads.encode_batch(items)


async def publisher(port: int, spec: dict[str, Any], pipe: Connection) -> None:
    prefix, ids, t0 = spec["prefix"], spec["ids"], spec["t0"]
    published: dict[str, float] = {}
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    def messages(first: int, stop: int, per: int) -> list[tuple[str, int, bytes]]:
        return [
            (p, block, batch_body(p, t0, block, min(block + per, stop)))
            for block in range(first, stop, per)
            for p in ids
        ]

    realtime = spec["realtime"]
    measured = [] if realtime else messages(0, spec["steps"], spec["per"])
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        username=USER,
        password=PASSWORD,
        identifier="gw",
        max_inflight_messages=IN_FLIGHT,
    ) as gw:
        gw.pending_calls_threshold = 2 * IN_FLIGHT

        async def publish(topic: str, body: bytes) -> None:
            try:
                await gw.publish(topic, body, qos=1)
            finally:
                in_flight.release()

        tasks: set[asyncio.Task[None]] = set()

        async def put(p: str, body: bytes) -> None:
            await in_flight.acquire()
            task = asyncio.create_task(publish(f"{prefix}/patients/{p}/samples", body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def send_flat() -> None:
            for p, _, body in measured:
                await put(p, body)
            await asyncio.gather(*tasks)

        async def send_realtime(t_base: float) -> None:
            # message (patient n, second i) at t_base + i + n / patients, carrying that time
            n_ids = len(ids)
            for i in range(spec["steps"]):
                for n, p in enumerate(ids):
                    at = round(t_base + i + n / n_ids, 3)
                    ahead = at - time.time()
                    if ahead > 0.002:
                        await asyncio.sleep(ahead)
                    rest = REST_STEPS + int(n * spec["spread_s"] / n_ids)
                    body = batch_body(p, at - i, i, i + 1, rest=rest)
                    published[f"{p} {round(at * 1000)}"] = time.time()
                    await put(p, body)
            await asyncio.gather(*tasks)

        pipe.send("ready")
        pipe.recv()
        probe = batch_body("probe", time.time() - 100, 0, 1)
        while True:  # until the service stored it: then it is subscribed
            await gw.publish(f"{prefix}/patients/probe/samples", probe, qos=1)
            pipe.send("probed")
            if pipe.recv() == "go":
                break
        first = time.time()
        t_base = float(int(first) + 1)
        await (send_realtime(t_base) if realtime else send_flat())
        pipe.send({"first": first, "last": time.time(), "t_base": t_base})
        pipe.recv()  # the parent says when it has counted
    pipe.send({"published": published})


async def receiver(port: int, prefix: str, pipe: Connection) -> None:
    """The alerts' subscriber, a process of its own (a caregiver's app): its clock reading at
    each alert is not delayed by the publisher's work."""
    alerts: list[tuple[str, float, float]] = []
    async with aiomqtt.Client(
        "127.0.0.1", port, username=USER, password=PASSWORD, identifier="app"
    ) as app:
        await app.subscribe(f"{prefix}/patients/+/alerts", qos=1)

        async def receive() -> None:
            async for m in app.messages:
                at = time.time()
                doc = json.loads(bytes(m.payload))
                if doc.get("kind") == "level":
                    alerts.append((doc["patient"], parse_time(doc["time"]), at))

        task = asyncio.create_task(receive())
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)  # the run is over
        task.cancel()
    pipe.send(alerts)


def receiver_main(port: int, prefix: str, pipe: Connection) -> None:  # pragma: no cover
    asyncio.run(receiver(port, prefix, pipe))


def publisher_main(port: int, spec: dict[str, Any], pipe: Connection) -> None:  # pragma: no cover
    asyncio.run(publisher(port, spec, pipe))


# -- one run ----------------------------------------------------------------------------------


async def wait_count(url: str, db: str, want: int, *, limit_s: float) -> tuple[int, float]:
    """Poll the stored count until ``want`` or no growth for STALL_S; (count, when reached)."""
    start = time.time()
    last, last_at = -1, time.time()
    while time.time() - start < limit_s:
        n = await asyncio.to_thread(stored, url, db)
        if n != last:
            last, last_at = n, time.time()
        if n >= want or time.time() - last_at > STALL_S:
            break
        await asyncio.sleep(0.2)
    return last, last_at


async def run(
    system: str,
    kind: str,
    args: argparse.Namespace,
    *,
    broker: MosquittoBroker,
    influx: InfluxServer,
    red: Path,
    tmp: Path,
    tag: str,
) -> dict[str, Any]:
    ids = [f"p{i:04d}" for i in range(args.patients)]
    db = f"{system}_{kind}_{tag}"
    prefix = f"{db}/heatmon/v1"
    now = time.time()
    influx_query(influx.url, f'CREATE DATABASE "{db}"')
    realtime = kind in ("realtime", "spread")
    proxy = Proxy(influx.url) if realtime else None
    if proxy is not None:
        await proxy.start()
    url = f"http://127.0.0.1:{proxy.port}" if proxy is not None else influx.url
    steps = REALTIME_S if realtime else (args.flat_s or FLAT_STEPS[kind])
    spec: dict[str, Any] = {"steps": steps, "per": 10 if kind == "10s" else 1}
    spec.update(prefix=prefix, ids=ids, realtime=realtime)
    spec["spread_s"] = SPREAD_S if kind == "spread" else 0
    # max-rate runs: a minute of every patient, just past (sample times trail the clock)
    spec["t0"] = float(int(now)) - steps - 5
    work = tmp / db
    if system in ("heatmon", "base"):
        service = start_heatmon(
            work,
            broker=broker,
            influx_url=url,
            prefix=prefix,
            db=db,
            ids=[*ids, "probe"],
            code=args.base if system == "base" else None,
            window_phase=args.window_phase,
        )
    else:
        port = proxy.port if proxy is not None else influx.port
        service = start_nodered(work, red, broker=broker, influx_port=port, prefix=prefix, db=db)
    spy = None
    if args.profile is not None and system == "heatmon":
        args.profile.mkdir(parents=True, exist_ok=True)
        spy = start_spy(args.profile / f"{db}.speedscope.json", service.proc.pid)
    parent, child = mp.Pipe()
    pub = mp.get_context("spawn").Process(target=publisher_main, args=(broker.port, spec, child))
    alerts_end, alerts_child = mp.Pipe()
    rec = mp.get_context("spawn").Process(
        target=receiver_main, args=(broker.port, prefix, alerts_child)
    )
    try:
        await asyncio.sleep(3.0)  # the service connects and subscribes
        if spec["realtime"]:
            rec.start()
            await asyncio.to_thread(alerts_end.recv)
        pub.start()
        await asyncio.to_thread(parent.recv)
        parent.send("probe")
        for _ in range(8):  # a probe message, stored, says the service is subscribed
            await asyncio.to_thread(parent.recv)
            if (await wait_count_probe(influx.url, db)) > 0:
                break
            parent.send("again")
        else:
            tail = service.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{system} did not store the probe; its log ends:\n{tail}")
        measured = len(ids) * spec["steps"] * 2
        cpu0, influx_cpu0, ticks0 = service.cpu_s(), proc_cpu_s(influx.pid), machine_ticks()
        parent.send("go")
        sent = await asyncio.to_thread(parent.recv)
        count, done_at = await wait_count(influx.url, db, measured, limit_s=RUN_LIMIT_S)
        cpu = service.cpu_s() - cpu0
        influx_cpu = proc_cpu_s(influx.pid) - influx_cpu0
        machine = busy_cores(ticks0, machine_ticks())
        rss = service.peak_rss_mb()
        parent.send("counted")
        extra = await asyncio.to_thread(parent.recv)
        if spec["realtime"]:
            alerts_end.send("stop")
            extra["alerts"] = await asyncio.to_thread(alerts_end.recv)
    finally:
        for child_proc in (pub, rec):
            if child_proc.is_alive():
                child_proc.join(timeout=10)
                if child_proc.is_alive():
                    child_proc.kill()
        service.stop()
        logs = args.out.parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copy(service.log_path, logs / f"{db}.log")
        if spy is not None:
            spy.wait(timeout=60)
        if proxy is not None:
            await proxy.stop()
    got = count
    out: dict[str, Any] = {
        "system": system,
        "kind": kind,
        "samples": measured,
        "stored": got,
        "lost": measured - got,
        "rate": got / max(1e-9, done_at - sent["first"]),
        "cpu_ms_per_1000": 1000 * 1000 * cpu / max(1, got),
        "influxd_cpu_ms_per_1000": 1000 * 1000 * influx_cpu / max(1, got),
        "busy_cores": machine,
        "peak_rss_mb": rss,
    }
    if proxy is not None:
        published = extra["published"]
        lags = [
            at - published[key]
            for (patient, t_ms), at in proxy.seen.items()
            if (key := f"{patient} {t_ms}") in published
        ]
        out["lag_ms"] = quantiles(lags)
        out["alert_ms"] = alert_latencies(extra["alerts"], published, ids, sent["t_base"])
        if args.raw:
            out["alert_raw"] = alert_latencies(
                extra["alerts"], published, ids, sent["t_base"], raw=True
            )
    log(f"{system} {kind}: {json.dumps(out)}")
    return out


async def wait_count_probe(url: str, db: str) -> int:
    for _ in range(50):
        doc = await asyncio.to_thread(
            influx_query, url, "SELECT count(value) FROM vitals WHERE patient = 'probe'", db
        )
        if doc["results"][0].get("series"):
            return 1
        await asyncio.sleep(0.2)
    return 0


def alert_latencies(
    alerts: list[tuple[str, float, float]],
    published: dict[str, float],
    ids: list[str],
    t_base: float,
    *,
    raw: bool = False,
) -> Any:
    """Sample → alert: from publishing the first message at or after the end of the
    alert's 10-s window (the sample that closes it) to receiving the alert. heatmon's
    1-s ticker may close the window before that message arrives: the figure is then
    negative, and counted as it is."""
    index = {p: n / len(ids) for n, p in enumerate(ids)}
    out = []
    raws: list[tuple[str, float, float, float]] = []
    for patient, event_t, received in alerts:
        off = index.get(patient)
        if off is None:
            continue
        step = math.ceil(round(event_t - t_base - off, 3))
        key = f"{patient} {round(round(t_base + step + off, 3) * 1000)}"
        if key in published:
            out.append(received - published[key])
            raws.append((patient, event_t - t_base, received - t_base, received - published[key]))
    if raw:
        return raws
    return quantiles(out) if out else None


def quantiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"n": len(values), "p50": float("nan"), "p99": float("nan")}
    q = statistics.quantiles(values, n=100)
    return {"n": len(values), "p50": q[49] * 1000, "p99": q[98] * 1000}


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


# -- the report ------------------------------------------------------------------------------


def table(results: list[dict[str, Any]], ceilings: list[dict[str, float]], load: list[str]) -> str:
    def cell(system: str, kind: str, fmt: Any) -> str:
        rows = [r for r in results if r["system"] == system and r["kind"] == kind]
        return " / ".join(fmt(r) for r in rows) or "–"

    def lag(key: str) -> Any:
        def f(r: dict[str, Any]) -> str:
            q = r.get(key)
            return f"{q['p50']:,.0f} / {q['p99']:,.0f} ms" if q else "–"

        return f

    rows = [
        (
            "max sustained, 10-s messages (20 samples), samples/s",
            "10s",
            lambda r: f"{r['rate']:,.0f}",
        ),
        ("max sustained, 1-s messages (2 samples), samples/s", "1s", lambda r: f"{r['rate']:,.0f}"),
        ("lost, 10-s / 1-s messages flat out", "loss", None),
        ("storage lag p50 / p99 at the real-world rate", "realtime", lag("lag_ms")),
        ("sample → alert p50 / p99 at the real-world rate", "realtime", lag("alert_ms")),
        (
            f"storage lag p50 / p99, rises spread over {SPREAD_S} s",
            "spread",
            lag("lag_ms"),
        ),
        (
            f"sample → alert p50 / p99, rises spread over {SPREAD_S} s",
            "spread",
            lag("alert_ms"),
        ),
        (
            "CPU per 1,000 samples stored, 10-s messages",
            "10s",
            lambda r: f"{r['cpu_ms_per_1000']:.0f} ms",
        ),
        (
            "influxd's CPU per 1,000 samples stored, 10-s messages",
            "10s",
            lambda r: f"{r['influxd_cpu_ms_per_1000']:.1f} ms",
        ),
        (
            f"machine busy in the 10-s max-rate run, of {os.cpu_count()} cores",
            "10s",
            lambda r: f"{r['busy_cores']:.2f}",
        ),
        ("peak RSS (real-world run)", "realtime", lambda r: f"{r['peak_rss_mb']:.0f} MB"),
    ]
    out = ["| one cell per round | heatmon | Node-RED flow |", "| --- | --- | --- |"]
    for label, kind, fmt in rows:
        if kind == "loss":
            cells = [
                " / ".join(
                    f"{sum(r['lost'] for r in results if r['system'] == s and r['kind'] == k):,}"
                    for k in ("10s", "1s")
                )
                for s in ("heatmon", "nodered")
            ]
            out.append(f"| {label} | {cells[0]} | {cells[1]} |")
            continue
        out.append(f"| {label} | {cell('heatmon', kind, fmt)} | {cell('nodered', kind, fmt)} |")
    ceiling = " / ".join(f"{c['rate']:,.0f}" for c in ceilings)
    out.append(f"| ceiling: curl bulk `/write`, 10k-point batches, points/s | {ceiling} | |")
    cost = " / ".join(
        f"{c['influxd_cpu_ms_per_1000']:.1f} ms, {c['busy_cores']:.2f} cores" for c in ceilings
    )
    out.append(f"| curl's run: influxd's CPU per 1,000 points, machine busy | {cost} | |")
    out.append("")
    out.append("Load (`uptime`) before each round: " + "; ".join(load))
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> None:
    red = install_nodered(args.cache) if "nodered" in args.systems else Path("-")
    results: list[dict[str, Any]] = []
    ceilings: list[dict[str, float]] = []
    load: list[str] = []
    deadline = time.time() + args.budget_s
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        broker = MosquittoBroker(
            workdir=tmp / "mosquitto",
            users={USER: PASSWORD},
            acl=f"user {USER}\ntopic readwrite #\n",
            max_inflight=args.broker_inflight,
        )
        broker.start()
        influx = InfluxServer(data_dir=tmp / "influxdb")
        influx.start()
        try:
            for n in range(args.rounds):
                load.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
                ceilings.append(await asyncio.to_thread(curl_ceiling, influx, tmp, f"r{n}"))
                log(f"round {n + 1}: curl ceiling {ceilings[-1]}; load {load[-1]}")
                pair = ("heatmon", "base", "nodered")
                order = [s for s in pair if s in args.systems.split(",")]
                order = order if n % 2 == 0 else order[::-1]
                for kind in args.kinds.split(","):
                    for system in order:
                        if time.time() > deadline:
                            log("time budget spent: stopping")
                            raise TimeoutError
                        results.append(
                            await run(
                                system,
                                kind,
                                args,
                                broker=broker,
                                influx=influx,
                                red=red,
                                tmp=tmp,
                                tag=f"r{n}",
                            )
                        )
        except TimeoutError:
            pass
        finally:
            broker.stop()
            influx.stop()
    report = table(results, ceilings, load)
    report += (
        f"\n{args.patients:,} patients; Mosquitto max_inflight_messages {args.broker_inflight};"
        f" {len(ceilings)} round(s), heatmon and Node-RED alternating first"
    )
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"results": results, "ceilings": ceilings, "load": load}, indent=1)
    )
    (args.out.with_suffix(".md")).write_text(report + "\n")


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument(
        "--kinds", default="10s,1s,realtime,spread", help="10s, 1s, realtime, spread"
    )
    parser.add_argument("--raw", action="store_true", help="keep each alert's latency")
    parser.add_argument(
        "--flat-s",
        type=int,
        default=0,
        help="seconds of every patient sent in a max-rate run (default 60 for 10-s, 20 for 1-s)",
    )
    parser.add_argument("--systems", default="heatmon,nodered", help="heatmon, nodered, base")
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="system 'base': heatmon with the monitor package from this folder "
        "(e.g. `git archive COMMIT monitor | tar -x -C DIR`)",
    )
    parser.add_argument(
        "--broker-inflight",
        type=int,
        default=1000,
        help="Mosquitto's max_inflight_messages (heatmon acknowledges after the fsync)",
    )
    parser.add_argument(
        "--window-phase",
        choices=("clock", "patient"),
        default="clock",
        help="heatmon's [engine] window_phase (default: clock, heatmon's default)",
    )
    parser.add_argument("--budget-s", type=float, default=1500.0, help="no new run after this")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy heatmon into this folder"
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help="where npm installs Node-RED")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "peer_nodered.json")
    if shutil.which("node") is None or shutil.which("curl") is None:
        raise SystemExit("needs node, npm and curl (scripts/setup.sh installs them)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
