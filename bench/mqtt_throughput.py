"""Benchmark: samples through a real Mosquitto into the engine and out as state and alerts.

Run: ``.venv/bin/python bench/mqtt_throughput.py [--patients 1000] [--runs flat,realtime]
[--influxdb]``; with ``--influxdb`` a local InfluxDB stores everything too, and each message is
acknowledged only once its samples are in the fsynced spool (as in ``heatmon run``).
Starts its own Mosquitto (free port, temp dir, password, persistence). The monitor (engine +
MQTT sink, the real :class:`~monitor.service.Monitor`) runs in this process; the "outside
world" (gateways publishing samples with QoS 1, a caregiver's app receiving alerts) runs in
a child process, so latency is measured on one clock: from publishing the message that
carries the sample closing an alert's 10-s window to receiving that alert.

Each simulated patient rests for 150 s, then works hard with core temperature rising
0.02 °C/s: the engine says ``caution`` at 220 s and ``cool down`` at 250 s (2 alerts each).

Runs (not a test):

- ``flat``: 300 s per patient in batches of 10 s (20 samples), published as fast as
  Mosquitto takes them: throughput; the latency then includes the backlog.
- ``realtime``: the real-world rate. The first ``--warmup`` seconds of every patient go in
  flat out (not measured); then every patient sends each second's two samples in one
  message at 1 Hz, the patients spread evenly over the second (1,000 patients = 2,000
  samples/s), for ``--realtime-s`` seconds, which covers both alerts. ``--message-s 10``:
  each patient sends its last 10 s (20 samples) in one message every 10 s instead, as the
  gateways do (and as ``bench/cluster_throughput.py`` sends).
- ``half``: like ``flat`` but paced at half of the flat-out rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import aiomqtt
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.engine import MonitorEngine
from monitor.model import Sample, SampleKind, parse_time
from monitor.mqtt import payloads
from monitor.mqtt.client import payload_bytes
from monitor.mqtt.localbroker import MosquittoBroker
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.sink import MqttSink
from monitor.plugins import PluginContext, Sink
from monitor.profile import PatientProfile
from monitor.service import Monitor
from monitor.storage.localserver import InfluxServer
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink

USER, PASSWORD = "bench", "bench-password"
BATCH_STEPS = 10
"""Simulated seconds (2 samples each) in one message in the flat and half runs."""
IN_FLIGHT = 200
"""QoS 1 publishes awaiting their PUBACK at once."""
RAMP_STEPS = 300
"""Simulated seconds per patient in the flat and half runs."""
WARMUP_STEPS = 200
REALTIME_S = 70
SLEEP_MIN_S = 0.002
"""The publisher sleeps only when it is at least this far ahead of its schedule."""
ALERT_WAIT_S = 120.0


class RunSpec(NamedTuple):
    name: str
    warmup_steps: int
    """Simulated seconds per patient sent flat out before the measured phase."""
    steps: int
    """Simulated seconds per patient in all."""
    batch_steps: int
    """Simulated seconds in one message in the measured phase."""
    rate: float
    """Samples/s in the measured phase; 0 = as fast as possible."""


def ramp_steps(patient: str, t0: float, start: int, stop: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, stop):
        core = 37.0 if i < 150 else 37.0 + min(0.9, (i - 150) * 0.02)
        hr = 70.0 if i < 150 else 150.0
        out.append(payloads.sample_dict(Sample(patient, SampleKind.HEART_RATE, hr, t0 + i)))
        out.append(payloads.sample_dict(Sample(patient, SampleKind.CORE_TEMP, core, t0 + i)))
    return out


async def outside(
    port: int, prefix: str, patients: list[str], spec: RunSpec, t0: float, pipe: Connection
) -> None:
    """Gateways and a caregiver app: publish, receive alerts, report latencies."""
    alerts: list[tuple[str, float, float]] = []
    got_all = asyncio.Event()
    want = 2 * len(patients)
    in_flight = asyncio.Semaphore(IN_FLIGHT)
    published: dict[tuple[str, int], float] = {}

    async with (
        aiomqtt.Client(
            "127.0.0.1", port, username=USER, password=PASSWORD, identifier="app"
        ) as app,
        aiomqtt.Client(
            "127.0.0.1",
            port,
            username=USER,
            password=PASSWORD,
            identifier="gw",
            max_inflight_messages=IN_FLIGHT,
        ) as gw,
    ):
        gw.pending_calls_threshold = 2 * IN_FLIGHT  # many QoS 1 publishes in flight on purpose
        await app.subscribe(f"{prefix}/patients/+/alerts", qos=1)

        async def receive() -> None:
            async for m in app.messages:
                doc = json.loads(payload_bytes(m.payload))
                if doc.get("kind") == "level":
                    alerts.append((doc["patient"], parse_time(doc["time"]), time.monotonic()))
                    if len(alerts) >= want:
                        got_all.set()

        async def publish(topic: str, body: bytes) -> None:
            try:
                await gw.publish(topic, body, qos=1)
            finally:
                in_flight.release()

        async def send(first: int, stop: int, batch: int, rate: float, timed: bool) -> None:
            tasks: set[asyncio.Task[None]] = set()
            per_message = 2 * batch / rate if rate > 0 else 0.0
            start = time.monotonic()
            n = 0
            for block in range(first, stop, batch):
                end = min(block + batch, stop)
                for p in patients:
                    if per_message:
                        ahead = start + n * per_message - time.monotonic()
                        if ahead > SLEEP_MIN_S:
                            await asyncio.sleep(ahead)
                    body = payloads.encode_batch(ramp_steps(p, t0, block, end))
                    await in_flight.acquire()
                    if timed:
                        now = time.monotonic()
                        for i in range(block, end):
                            published[(p, i)] = now
                    task = asyncio.create_task(publish(f"{prefix}/patients/{p}/samples", body))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    n += 1
            await asyncio.gather(*tasks)

        receiver = asyncio.create_task(receive())
        pipe.send("ready")
        pipe.recv()
        if spec.warmup_steps:
            await send(0, spec.warmup_steps, BATCH_STEPS, 0.0, timed=False)
            pipe.send("warm")
            pipe.recv()
        start = time.monotonic()
        await send(spec.warmup_steps, spec.steps, spec.batch_steps, spec.rate, timed=True)
        publish_s = time.monotonic() - start
        try:
            async with asyncio.timeout(ALERT_WAIT_S):
                await got_all.wait()
        except TimeoutError:
            pass
        receiver.cancel()
    latencies = [
        received - published[(patient, round(event_t - t0))]
        for patient, event_t, received in alerts
        if (patient, round(event_t - t0)) in published
    ]
    pipe.send({"publish_s": publish_s, "alerts": len(alerts), "lat": latencies})


def child(
    port: int, prefix: str, n: int, spec: RunSpec, t0: float, pipe: Connection
) -> None:  # pragma: no cover - runs in the child process
    patients = [f"p{i:04d}" for i in range(n)]
    asyncio.run(outside(port, prefix, patients, spec, t0, pipe))


async def until_ingested(sink: MqttSink, total: int, progress: Progress, label: str) -> float:
    """Wait until the sink has taken ``total`` samples; the seconds it took."""
    start = time.monotonic()
    task = progress.add_task(label, total=total)
    while (done := sink.counters.get("samples_in", 0)) < total:
        progress.update(task, completed=done)
        sink.counted.clear()
        await sink.counted.wait()
    progress.update(task, completed=total)
    return time.monotonic() - start


async def run_once(
    broker: MosquittoBroker,
    n: int,
    spec: RunSpec,
    progress: Progress,
    *,
    influx_url: str | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    tag = spec.name
    prefix = f"bench{tag}/heatmon/v1"
    t0 = float(int(time.time()) // 10 * 10 - 3600)
    patients = [f"p{i:04d}" for i in range(n)]
    opts = MqttOptions(
        host=broker.host,
        port=broker.port,
        username=USER,
        password=PASSWORD,
        topic_prefix=prefix,
        client_id=f"monitor-{tag}",
        outbox=":memory:",
    )
    context = PluginContext(config=None, instance=f"bench-{tag}")
    sink = MqttSink(
        options=opts, instance=f"bench-{tag}", context=context, known_patients=tuple(patients)
    )
    engine = MonitorEngine(profiles={p: PatientProfile(id=p) for p in patients})
    sinks: list[Sink] = [sink]
    if influx_url is not None and data_dir is not None:
        # the input is then acknowledged only after the fsynced spool has it
        options = InfluxOptions(url=influx_url, database=f"bench{tag}")
        sinks.append(InfluxSink(options=options, data_dir=data_dir / tag))
    monitor = Monitor(engine=engine, sinks=sinks, tick_s=3600.0)
    context.monitor = monitor
    parent, child_end = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=child, args=(broker.port, prefix, n, spec, t0, child_end)
    )
    proc.start()
    warm = n * spec.warmup_steps * 2
    measured = n * (spec.steps - spec.warmup_steps) * 2
    async with monitor:
        await sink.connected.wait()
        await asyncio.to_thread(parent.recv)  # ready
        parent.send("go")
        if warm:
            await asyncio.to_thread(parent.recv)  # warm-up sent
            await until_ingested(sink, warm, progress, f"{tag}: warm-up")
            parent.send("go")
        states_before = sink.counters.get("states_published", 0)
        ingest_s = await until_ingested(sink, warm + measured, progress, f"{tag}: measured")
        result: dict[str, Any] = await asyncio.to_thread(parent.recv)
        states = sink.counters.get("states_published", 0) - states_before
        rejected = sink.counters.get("rejected", 0)
    proc.join()
    lat = sorted(result["lat"])
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return {
        "samples": measured,
        "samples_per_s": measured / ingest_s,
        "seconds": ingest_s,
        "states_published": states,
        "alerts": result["alerts"],
        "timed_alerts": len(lat),
        "rejected": rejected,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": lat[-1] * 1000 if lat else float("nan"),
    }


def report(console: Console, name: str, r: dict[str, Any]) -> None:
    console.print(
        f"{name}: {r['samples']:,} samples in {r['seconds']:.1f} s = "
        f"{r['samples_per_s']:,.0f} samples/s through Mosquitto into the engine; "
        f"{r['states_published']:,} states and {r['alerts']:,} alerts out "
        f"({r['rejected']} rejected); sample publish -> alert receipt over "
        f"{r['timed_alerts']:,} alerts: p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
        f"max {r['max_ms']:.0f} ms",
        soft_wrap=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    console = Console()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Progress(console=console, disable=not console.is_terminal) as progress,
    ):
        broker = MosquittoBroker(
            workdir=Path(tmp), users={USER: PASSWORD}, acl=f"user {USER}\ntopic readwrite #\n"
        )
        broker.start()
        influx = InfluxServer(data_dir=Path(tmp) / "influxdb") if args.influxdb else None
        if influx is not None:
            influx.start()
        url = influx.url if influx is not None else None
        try:
            flat_rate: float | None = None
            for name in runs:
                if name == "flat":
                    spec = RunSpec("flat", 0, RAMP_STEPS, BATCH_STEPS, 0.0)
                    result = await run_once(
                        broker, args.patients, spec, progress, influx_url=url, data_dir=Path(tmp)
                    )
                    flat_rate = result["samples_per_s"]
                    label = "flat out"
                elif name == "realtime":
                    steps = args.warmup + args.realtime_s
                    spec = RunSpec(
                        "realtime", args.warmup, steps, args.message_s, 2.0 * args.patients
                    )
                    result = await run_once(
                        broker, args.patients, spec, progress, influx_url=url, data_dir=Path(tmp)
                    )
                    label = (
                        f"real-world rate (1 Hz per patient, {spec.rate:,.0f} samples/s, "
                        f"messages of {args.message_s} s)"
                    )
                elif name == "half":
                    if flat_rate is None:
                        raise SystemExit("--runs: 'half' needs 'flat' before it")
                    spec = RunSpec("half", 0, RAMP_STEPS, BATCH_STEPS, flat_rate / 2)
                    result = await run_once(
                        broker, args.patients, spec, progress, influx_url=url, data_dir=Path(tmp)
                    )
                    label = f"paced at half of flat out ({spec.rate:,.0f} samples/s)"
                else:
                    raise SystemExit(f"--runs: unknown run {name!r} (flat, realtime, half)")
                report(console, label, result)
        finally:
            broker.stop()
            if influx is not None:
                influx.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--runs", default="flat,realtime,half", help="flat, realtime, half")
    parser.add_argument(
        "--warmup", type=int, default=WARMUP_STEPS, help="realtime: seconds sent flat out first"
    )
    parser.add_argument(
        "--realtime-s", type=int, default=REALTIME_S, help="realtime: seconds at 1 Hz"
    )
    parser.add_argument(
        "--message-s",
        type=int,
        choices=(1, 10),
        default=1,
        help="realtime: seconds of a patient in one message (10: as the gateways send)",
    )
    parser.add_argument(
        "--influxdb",
        action="store_true",
        help="store into a local InfluxDB too: input is acknowledged after the spool's fsync",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
