"""Benchmark: samples through a real Mosquitto into the engine and out as state and alerts.

Run: ``.venv/bin/python bench/mqtt_throughput.py [--patients 1000] [--steps 300]``.
Starts its own Mosquitto (free port, temp dir, password, persistence). The monitor (engine +
MQTT sink, the real :class:`~monitor.service.Monitor`) runs in this process; the "outside
world" (gateways publishing sample batches with QoS 1, a caregiver's app receiving alerts)
runs in a child process, so latency is measured on one clock: from publishing the batch
whose sample closes the alert's 10-s window to receiving that alert. Two runs: flat out
(throughput) and paced at half of that (latency at a sustainable load). Not a test.
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
from typing import Any

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.engine import MonitorEngine
from monitor.model import Sample, SampleKind
from monitor.mqtt import payloads
from monitor.mqtt.localbroker import MosquittoBroker
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.sink import MqttSink
from monitor.plugins import PluginContext
from monitor.profile import PatientProfile
from monitor.service import Monitor

USER, PASSWORD = "bench", "bench-password"
BLOCK = 10
"""Ramp steps (seconds of simulated time, 2 samples each) in one published batch."""
IN_FLIGHT = 200
"""QoS 1 publishes awaited together."""


def ramp_block(patient: str, t0: float, start: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + BLOCK):
        core = 37.0 if i < 150 else 37.0 + min(0.9, (i - 150) * 0.02)
        hr = 70.0 if i < 150 else 150.0
        out.append(payloads.sample_dict(Sample(patient, SampleKind.HEART_RATE, hr, t0 + i)))
        out.append(payloads.sample_dict(Sample(patient, SampleKind.CORE_TEMP, core, t0 + i)))
    return out


async def outside(
    port: int,
    prefix: str,
    patients: list[str],
    steps: int,
    rate: float,
    t0: float,
    pipe: Connection,
) -> None:
    """Gateways and a caregiver app: publish, receive alerts, report latencies."""
    alerts: list[tuple[str, float, float]] = []
    got_all = asyncio.Event()
    want = 2 * len(patients)

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
                doc = json.loads(payloads_bytes(m.payload))
                if doc.get("kind") == "level":
                    t = payloads_time(doc["time"])
                    alerts.append((doc["patient"], t, time.monotonic()))
                    if len(alerts) >= want:
                        got_all.set()

        receiver = asyncio.create_task(receive())
        pipe.send("ready")
        pipe.recv()
        published: dict[tuple[str, int], float] = {}
        start = time.monotonic()
        sent = 0
        pending: list[Any] = []
        for block in range(0, steps, BLOCK):
            for p in patients:
                body = payloads.encode_batch(ramp_block(p, t0, block))
                pending.append(gw.publish(f"{prefix}/patients/{p}/samples", body, qos=1))
                published[(p, block)] = time.monotonic()
                sent += 2 * BLOCK
                if len(pending) >= IN_FLIGHT:
                    await asyncio.gather(*pending)
                    pending.clear()
                    if rate > 0:
                        ahead = start + sent / rate - time.monotonic()
                        if ahead > 0:
                            await asyncio.sleep(ahead)
        await asyncio.gather(*pending)
        publish_s = time.monotonic() - start
        try:
            async with asyncio.timeout(120):
                await got_all.wait()
        except TimeoutError:
            pass
        receiver.cancel()
    latencies = []
    for patient, event_t, received in alerts:
        i = round(event_t - t0)  # the sample at the window's end closed it
        block = (i // BLOCK) * BLOCK
        if (patient, block) in published:
            latencies.append(received - published[(patient, block)])
    pipe.send({"sent": sent, "publish_s": publish_s, "alerts": len(alerts), "lat": latencies})


def payloads_bytes(payload: object) -> bytes:
    return payload if isinstance(payload, bytes) else str(payload).encode()


def payloads_time(text: str) -> float:
    from monitor.model import parse_time

    return parse_time(text)


def child(
    port: int, prefix: str, n: int, steps: int, rate: float, t0: float, pipe: Connection
) -> None:
    patients = [f"p{i:04d}" for i in range(n)]
    asyncio.run(outside(port, prefix, patients, steps, rate, t0, pipe))


async def run_once(
    broker: MosquittoBroker, n: int, steps: int, rate: float, tag: str
) -> dict[str, Any]:
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
    )
    context = PluginContext(config=None, instance=f"bench-{tag}")
    sink = MqttSink(options=opts, instance=f"bench-{tag}", context=context)
    engine = MonitorEngine(profiles={p: PatientProfile(id=p) for p in patients})
    monitor = Monitor(engine=engine, sinks=[sink], tick_s=3600.0)
    context.monitor = monitor
    parent, child_end = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=child, args=(broker.port, prefix, n, steps, rate, t0, child_end)
    )
    proc.start()
    total = n * steps * 2
    async with monitor:
        await sink.connected.wait()
        await asyncio.to_thread(parent.recv)  # ready
        start = time.monotonic()
        parent.send("go")
        while sink.counters.get("samples_in", 0) < total:
            sink.counted.clear()
            await sink.counted.wait()
        ingest_s = time.monotonic() - start
        result: dict[str, Any] = await asyncio.to_thread(parent.recv)
        states = sink.counters.get("states_published", 0)
    proc.join()
    lat = sorted(result["lat"])
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    return {
        "samples": total,
        "samples_per_s": total / ingest_s,
        "states_published": states,
        "alerts": result["alerts"],
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "publish_s": result["publish_s"],
    }


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(
            workdir=Path(tmp), users={USER: PASSWORD}, acl=f"user {USER}\ntopic readwrite #\n"
        )
        broker.start()
        try:
            flat = await run_once(broker, args.patients, args.steps, 0.0, "flat")
            report("flat out", flat)
            paced = await run_once(
                broker, args.patients, args.steps, flat["samples_per_s"] / 2, "paced"
            )
            report(f"paced at {flat['samples_per_s'] / 2:,.0f} samples/s", paced)
        finally:
            broker.stop()


def report(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name}: {r['samples']:,} samples in, {r['samples_per_s']:,.0f} samples/s through "
        f"Mosquitto into the engine; {r['states_published']:,} states and {r['alerts']:,} "
        f"alerts out; sample publish -> alert receipt p50 {r['p50_ms']:.0f} ms, "
        f"p99 {r['p99_ms']:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300, help="simulated seconds per patient")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
