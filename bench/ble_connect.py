"""Benchmark: BLE connect-to-first-sample and reconnect times, through bleak's public API.

Run: ``.venv/bin/python bench/ble_connect.py [--runs 20]``.

Each run starts a fresh virtual world (bumble link) with one chest strap notifying every
0.1 s and the ``ble`` source reading it, exactly as on hardware but with ``backend=`` set to
the bumble backend. Measured per run:

- *connect to first sample*: from the moment the source starts (scan included) to the first
  heart-rate sample it emits;
- *reconnect*: from the strap dropping the link to the first sample after the source
  reconnected by itself (backoff base 0.1 s, so the wait is part of the figure).

Not a test: the figures go into the README, measured. They time the adapter and bumble's
in-process link; a real radio adds its connection interval and advertising interval.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

from adapters.ble.source import BleSource
from adapters.ble.virtual import VirtualChestStrap, VirtualWorld
from monitor.config import DeviceConfig
from monitor.model import Sample

STRAP = "C0:00:00:00:00:01"


async def one_run() -> tuple[float, float]:
    strap = VirtualChestStrap(address=STRAP, heart_rate=lambda: 72.0, interval_s=0.1)
    async with VirtualWorld(wearables=[strap]) as world:
        source = BleSource(
            devices=[DeviceConfig(address=STRAP, patient="p-bench", role="heart_rate")],
            scan_timeout_s=5.0,
            reconnect_base_s=0.1,
            reconnect_max_s=1.0,
            scanner_backend=world.scanner_backend,
            client_backend=world.client_backend,
        )
        arrived: asyncio.Queue[float] = asyncio.Queue()

        async def emit(sample: Sample) -> None:
            if sample.kind == "heart_rate":
                arrived.put_nowait(time.perf_counter())

        t0 = time.perf_counter()
        task = asyncio.create_task(source.run(emit))
        try:
            async with asyncio.timeout(10):
                first = await arrived.get() - t0
                while not arrived.empty():
                    arrived.get_nowait()
                t_drop = time.perf_counter()
                await strap.drop_connection()
                while not arrived.empty():
                    arrived.get_nowait()
                while source.stats[STRAP].connects < 2:
                    await arrived.get()
                again = await arrived.get() - t_drop
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return first, again


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    firsts: list[float] = []
    agains: list[float] = []
    for _ in range(args.runs):
        first, again = asyncio.run(one_run())
        firsts.append(first)
        agains.append(again)
    print(f"BLE over bumble's in-process link, {args.runs} runs, strap notifying every 0.1 s")
    for label, values in (
        ("connect to first sample (scan included)", firsts),
        ("drop to first sample after reconnect", agains),
    ):
        print(
            f"  {label:42s} median {statistics.median(values) * 1000:7.1f} ms   "
            f"p95 {p95(values) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
