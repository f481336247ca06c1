"""Benchmark: BLE connect-to-first-sample and reconnect times, through bleak's public API.

Run: ``.venv/bin/python bench/ble_connect.py [--runs 20] [--fleet-runs 10]``.

Every run starts a fresh virtual world (bumble link) and the ``ble`` source reading it,
exactly as on hardware but with ``backend=`` set to the bumble backend. Two set-ups:

- *one strap*: one chest strap notifying every 0.1 s;
- *eight wearables on four patients* (as in the test): four straps, two skin thermometers
  (indications, time stamps) and two CORE sensors, all notifying every 0.1 s (the
  thermometers at most once per second of their clock), read by one source in one process.

Measured per device and run:

- *connect to first sample*: from the moment the source starts (scan included) to the
  device's first vital-sign sample; for the fleet also until every device has given one;
- *reconnect*: from the wearable dropping the link (all eight at once for the fleet) to its
  first sample after the source reconnected by itself (backoff base 0.1 s ± 25 %, so the
  wait is part of the figure; the GATT database comes from the cache).

Not a test: the figures go into the README, measured. They time the adapter and bumble's
in-process link; a real radio adds its connection interval and advertising interval.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import time
from collections.abc import Callable

from rich.progress import Progress

from adapters.ble.demo import eight_wearables
from adapters.ble.source import BleSource
from adapters.ble.virtual import (
    VirtualChestStrap,
    VirtualWearable,
    VirtualWorld,
)
from monitor.config import DeviceConfig
from monitor.model import Sample, SampleKind

NOTIFY_EVERY_S = 0.1
TIMEOUT_S = 30.0


def const(value: float) -> Callable[[], float]:
    return lambda: value


def one_strap() -> tuple[list[VirtualWearable], list[DeviceConfig]]:
    address = "C0:00:00:00:00:01"
    strap = VirtualChestStrap(address=address, heart_rate=const(72.0), interval_s=NOTIFY_EVERY_S)
    return [strap], [DeviceConfig(address=address, patient="p-bench", role="heart_rate")]


def fleet() -> tuple[list[VirtualWearable], list[DeviceConfig]]:
    """Eight wearables on four patients: a strap each, and a thermometer or a CORE."""
    return eight_wearables(interval_s=NOTIFY_EVERY_S)


class Run:
    """Per device: first and reconnect latencies (s); and the fleet's slowest."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.again: dict[str, float] = {}


async def one_run(setup: Callable[[], tuple[list[VirtualWearable], list[DeviceConfig]]]) -> Run:
    wearables, devices = setup()
    addresses = {d.address for d in devices}
    result = Run()
    async with VirtualWorld(wearables=wearables) as world:
        source = BleSource(
            devices=devices,
            scan_timeout_s=5.0,
            reconnect_base_s=0.1,
            reconnect_max_s=1.0,
            scanner_backend=world.scanner_backend,
            client_backend=world.client_backend,
        )
        phase: dict[str, float] = {}  # the moment each device's current phase started
        target = result.first
        changed = asyncio.Event()

        async def emit(sample: Sample) -> None:
            if sample.kind is SampleKind.BATTERY or sample.device in target:
                return
            if target is result.again and source.stats[sample.device].connects < 2:
                return  # a sample still in flight from before the drop
            target[sample.device] = time.perf_counter() - phase[sample.device]
            changed.set()

        async def until_all(done: dict[str, float]) -> None:
            while set(done) != addresses:
                await changed.wait()
                changed.clear()

        start = time.perf_counter()
        phase.update(dict.fromkeys(addresses, start))
        task = asyncio.create_task(source.run(emit))
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await until_all(result.first)
                target = result.again
                for w in wearables:
                    phase[w.address] = time.perf_counter()
                    await w.drop_connection()
                await until_all(result.again)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return result


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def row(label: str, values: list[float]) -> str:
    return (
        f"  {label:50s} median {statistics.median(values) * 1000:7.1f} ms   "
        f"p95 {p95(values) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"
    )


def measure(
    name: str,
    setup: Callable[[], tuple[list[VirtualWearable], list[DeviceConfig]]],
    runs: int,
    progress: Progress,
) -> list[Run]:
    task = progress.add_task(name, total=runs)
    results = []
    for _ in range(runs):
        results.append(asyncio.run(one_run(setup)))
        progress.advance(task)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=20, help="runs with one strap")
    parser.add_argument("--fleet-runs", type=int, default=10, help="runs with eight wearables")
    args = parser.parse_args()
    logging.getLogger("adapters.ble").setLevel(logging.ERROR)  # drops and gaps are the point
    with Progress(transient=True) as progress:
        single = measure("one strap", one_strap, args.runs, progress)
        many = measure("eight wearables", fleet, args.fleet_runs, progress)
    print(f"BLE over bumble's in-process link; wearables notify every {NOTIFY_EVERY_S} s")
    print(f"one chest strap, {args.runs} runs:")
    print(
        row(
            "connect to first sample (scan included)", [r.first[a] for r in single for a in r.first]
        )
    )
    print(
        row("drop to first sample after reconnect", [r.again[a] for r in single for a in r.again])
    )
    print(f"eight wearables on four patients in one process, {args.fleet_runs} runs:")
    print(row("connect to first sample, per device", [v for r in many for v in r.first.values()]))
    print(row("connect until all eight give samples", [max(r.first.values()) for r in many]))
    print(
        row("all eight dropped: reconnect, per device", [v for r in many for v in r.again.values()])
    )
    print(row("all eight dropped: until all eight are back", [max(r.again.values()) for r in many]))


if __name__ == "__main__":
    main()
