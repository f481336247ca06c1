"""The InfluxDB sink's sender with more than one write under way: batches are committed in
order, and after a failed write everything from the oldest batch not written is sent
again, so every point reaches the store (a point sent twice overwrites itself).

The writer is a stand-in (a unit test of the sender's bookkeeping); the real-server tests
of the same promises are tests/test_storage_retry.py and tests/test_storage_sink.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.model import Sample, SampleFlag, SampleKind
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from monitor.storage.writer import WriteError

T0 = 1_700_000_000.0


class SlowWriter:
    """Each write waits until the test lets it finish; the first one fails once."""

    api = "v1"

    def __init__(self) -> None:
        self.open: list[asyncio.Future[None]] = []
        self.written: list[bytes] = []
        self.most_at_once = 0
        self.fail_first = True
        self.called = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def write(self, payload: bytes) -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open.append(gate)
        self.most_at_once = max(self.most_at_once, sum(not g.done() for g in self.open))
        self.called.set()
        await gate
        if self.fail_first:
            self.fail_first = False
            raise WriteError("influxd is restarting", action="retry", retry_after_s=0.0)
        self.written.append(payload)


async def _release(writer: SlowWriter, n: int) -> None:
    async with asyncio.timeout(30):
        while sum(not g.done() for g in writer.open) < n:
            writer.called.clear()
            await writer.called.wait()
    for gate in writer.open:
        if not gate.done():
            gate.set_result(None)


async def test_two_writes_under_way_commit_in_order_and_resend_after_a_failure(
    tmp_path: Path,
) -> None:
    options = InfluxOptions(batch_size=100, max_in_flight=2, spool_fsync=False)
    sink = InfluxSink(options=options, data_dir=tmp_path)
    writer = SlowWriter()
    sink.writer = writer  # type: ignore[assignment]
    await sink.start()
    try:
        for i in range(300):
            sample = Sample("p1", SampleKind.HEART_RATE, 60.0 + i % 50, T0 + i, "strap")
            sink.submit_sample(sample, SampleFlag.OK)
        await sink.durable()
        await _release(writer, 2)  # two batches under way at once; the first fails
        async with asyncio.timeout(30):
            while sink.spool.pending_points:
                if any(not g.done() for g in writer.open):
                    await _release(writer, 1)
                await asyncio.sleep(0.01)
    finally:
        await sink.stop()
    assert writer.most_at_once == 2
    stored = {line for payload in writer.written for line in payload.split(b"\n")}
    assert len(stored) == 300
    assert sink.stats.write_failures == 1
    assert sink.stats.written >= 300
