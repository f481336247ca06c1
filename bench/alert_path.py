"""Benchmark: the MQTT sink's alert path alone, CPU per alert.

``.venv/bin/python bench/alert_path.py [--alerts 1000] [--rounds 3] [--gap-ms 1.0]``

A real Mosquitto (own port, temp dir), the MQTT sink with its SQLite outbox on disk, and
``mosquitto_sub`` (a process of its own) as the caregiver's app. Alerts are submitted one per
``--gap-ms`` (each in an event-loop turn of its own, as a burst of patients' windows closing in
the same second brings them); the figure is heatmon's CPU time (process time, all threads)
from the first submit until the broker acknowledged the last, per alert, and the wall time
until the subscriber had all of them, and how late the event loop ran a 1-ms timer meanwhile
(p99 and longest: what any other work on the loop, the next gateway message, waited). No
engine, no storage: only what an alert costs once the engine raised it."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.model import Event, EventKind, Level, Quality
from monitor.mqtt.localbroker import MosquittoBroker
from monitor.mqtt.options import parse_options
from monitor.mqtt.sink import MqttSink
from monitor.mqtt.topics import DEFAULT_PREFIX

USER, PASSWORD = "heatmon", "bench-secret"


def event(n: int, round_: int) -> Event:
    return Event(
        id=f"r{round_}-session:{n}",
        patient=f"p{n:04d}",
        time=float(int(time.time())),  # a window's end: whole seconds
        session=f"r{round_}-session",
        kind=EventKind.LEVEL,
        level=Level.COOL_DOWN,
        previous_level=Level.CAUTION,
        quality=Quality.GOOD,
        core_delta_c=0.51,
        message="Time to cool down: rest somewhere cool and have a cold drink.",
        advice=("rest somewhere cool", "cold drink"),
        requires_ack=True,
        minutes_to_threshold=0.0,
    )


PROBE_S = 0.001
"""The loop-lag probe's timer."""


async def probe(lags: list[float]) -> None:
    """Sleep ``PROBE_S`` over and over; record how late each wake-up came."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + PROBE_S
        await asyncio.sleep(PROBE_S)
        lags.append(loop.time() - due)


async def one_round(
    broker: MosquittoBroker, tmp: Path, *, alerts: int, gap_s: float, n: int
) -> tuple[float, float, list[float]]:
    """One burst: (µs of CPU an alert, seconds until the subscriber had them all, the loop's
    lateness at each probe)."""
    sub = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", USER, "-P"),
        *(PASSWORD, "-q", "1", "-t", f"{DEFAULT_PREFIX}/patients/+/alerts"),
        *("-C", str(alerts), "-i", f"app{n}", "-F", "%t"),
        stdout=subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # subscribed
    opts = parse_options(
        {"host": "127.0.0.1", "port": broker.port, "username": USER, "password": PASSWORD}
    )
    sink = MqttSink(
        options=opts, instance=f"bench{n}", known_patients=[], outbox_path=tmp / f"o{n}.sqlite"
    )
    async with sink:
        await sink.connected.wait()
        await asyncio.sleep(0.2)
        lags: list[float] = []
        watch = asyncio.create_task(probe(lags))
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(alerts):
            sink.submit_event(event(i, n))
            await asyncio.sleep(gap_s)
        while sink.pending_alerts:  # noqa: ASYNC110 (a poll is what is measured against)
            await asyncio.sleep(0.001)
        cpu = time.process_time() - c0
        watch.cancel()
        async with asyncio.timeout(30):
            await sub.wait()
        wall = time.perf_counter() - t0
    return cpu / alerts * 1e6, wall, lags


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap-ms", type=float, default=0.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        broker = MosquittoBroker(
            workdir=tmp / "mosquitto",
            users={USER: PASSWORD},
            acl=f"user {USER}\ntopic readwrite #\n",
            max_inflight=1000,
        )
        broker.start()
        try:
            per = []
            for n in range(args.rounds):
                gap_s = args.gap_ms / 1000
                us, wall, lags = await one_round(broker, tmp, alerts=args.alerts, gap_s=gap_s, n=n)
                per.append(us)
                lags.sort()
                p99 = lags[int(0.99 * (len(lags) - 1))] * 1e3 if lags else float("nan")
                worst = lags[-1] * 1e3 if lags else float("nan")
                print(
                    f"round {n + 1}: {us:.0f} µs CPU per alert, {wall:.2f} s for {args.alerts}; "
                    f"the loop late by p99 {p99:.1f} ms, at most {worst:.1f} ms"
                )
            print(f"median {statistics.median(per):.0f} µs CPU per alert")
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
