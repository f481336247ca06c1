"""The load of the Node-RED comparison: the gateways' QoS 1 publisher and the caregivers'
alert subscriber, each a process of its own, and the sample → alert latency."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import aiomqtt

from bench.peer.services import PASSWORD, USER
from monitor.model import Sample, SampleKind, parse_time
from monitor.mqtt import payloads

IN_FLIGHT = 200
"""QoS 1 publishes awaiting their PUBACK at once (as bench/mqtt_throughput.py)."""
REST_STEPS = 10
"""Seconds at rest before the real-world run's rise."""
SPREAD_S = 30
"""Kind ``spread``: the real-world run with patient n's rise starting ``n / patients ×
SPREAD_S`` s later (as people start at different times), so that the alerts come over
half a minute instead of all 1,000 in the same second (kind ``realtime``, the worst case)."""


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


PLAIN_PATIENTS = 50
"""Patients (every n-th, so spread over each second) whose sample messages the receiver
takes too, a plain subscriber beside the service: publish → receive on the same broker, the
path every alert's latency includes."""


async def receiver(port: int, prefix: str, pipe: Connection, ids: list[str]) -> None:
    """The alerts' subscriber, a process of its own (a caregiver's app): its clock reading at
    each alert is not delayed by the publisher's work. It also takes the sample messages of
    ``PLAIN_PATIENTS`` patients (the publisher → broker → subscriber baseline)."""
    alerts: list[tuple[str, float, float]] = []
    plain: list[tuple[str, float, float]] = []
    async with aiomqtt.Client(
        "127.0.0.1", port, username=USER, password=PASSWORD, identifier="app"
    ) as app:
        await app.subscribe(f"{prefix}/patients/+/alerts", qos=1)
        for p in ids[:: max(1, len(ids) // PLAIN_PATIENTS)]:
            await app.subscribe(f"{prefix}/patients/{p}/samples", qos=1)

        async def receive() -> None:
            async for m in app.messages:
                at = time.time()
                doc = json.loads(bytes(m.payload))
                if m.topic.value.endswith("/samples"):
                    last = doc["samples"][-1]
                    plain.append((m.topic.value.split("/")[-2], float(last["time"]), at))
                elif doc.get("kind") == "level":
                    alerts.append((doc["patient"], parse_time(doc["time"]), at))

        task = asyncio.create_task(receive())
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)  # the run is over
        task.cancel()
    pipe.send((alerts, plain))


def receiver_main(
    port: int, prefix: str, pipe: Connection, ids: list[str]
) -> None:  # pragma: no cover
    asyncio.run(receiver(port, prefix, pipe, ids))


def publisher_main(port: int, spec: dict[str, Any], pipe: Connection) -> None:  # pragma: no cover
    asyncio.run(publisher(port, spec, pipe))


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
