"""The InfluxDB sink's hand-off: ``durable()`` returns once what was submitted is in the
spool on disk (many callers, one append), a copy the engine recognised is not stored, and
a reading is one point whatever it was flagged (against a real InfluxDB)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.model import Sample, SampleFlag, SampleKind, SymptomReport
from monitor.storage.downsample import backfill
from monitor.storage.handoff import HandOff
from monitor.storage.options import InfluxOptions
from monitor.storage.query import HeatmonStore
from monitor.storage.sink import InfluxSink
from monitor.storage.spool import Spool
from tests.fixtures.influxdb import InfluxDatabase

T0 = 1_715_949_000.0


def sink_for(db: InfluxDatabase, tmp_path: Path, **extra: object) -> InfluxSink:
    options = InfluxOptions.model_validate({"url": db.url, "database": db.name, **extra})
    return InfluxSink(options=options, data_dir=tmp_path)


def hr(i: int, value: float = 70.0) -> Sample:
    return Sample("p1", SampleKind.HEART_RATE, value, T0 + i, device="strap", source="mqtt")


async def test_durable_returns_once_the_points_are_in_the_spool_on_disk(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    # nothing is sent (a batch waits a minute) and nothing is spooled on its own (a minute):
    # only durable() makes the flusher append
    async with sink_for(
        influx_db, tmp_path, flush_interval_s=60, spool_interval_s=60, batch_size=100_000
    ) as sink:
        for i in range(500):
            sink.submit_sample(hr(i), SampleFlag.OK)
        sink.submit_record(
            SymptomReport(patient="p1", time=T0 + 3, session="", core_delta_c=None, note="dizzy")
        )
        assert sink.spool.pending_points == 0
        async with asyncio.timeout(10):
            await asyncio.gather(*(sink.durable() for _ in range(50)))
        # on disk, as a second reader of the directory sees it: one record for all callers
        on_disk = Spool(directory=tmp_path / "spool")
        on_disk.open()
        chunk = on_disk.read(max_points=10_000)
        on_disk.close()
        assert chunk is not None and chunk.points == 501 and chunk.records == 1
        assert b"symptoms,patient=p1" in chunk.payload
        assert sink.stats.written == 0
        async with asyncio.timeout(1):
            await sink.durable()  # nothing new: returns at once


async def test_a_recognised_copy_is_not_stored_and_a_reading_is_one_point(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    async with sink_for(influx_db, tmp_path, flush_interval_s=0.05) as sink:
        sink.submit_sample(hr(0, 71.0), SampleFlag.OK)
        sink.submit_sample(hr(1, 72.0), SampleFlag.OK)
        sink.submit_sample(hr(0, 71.0), SampleFlag.DUPLICATE)  # a copy, recognised
        # a copy too old to recognise, flagged out of order: the same point, overwritten
        sink.submit_sample(hr(1, 72.0), SampleFlag.OUT_OF_ORDER)
        sink.submit_sample(hr(2, 73.0), SampleFlag.FUTURE)
        assert await sink.drain(timeout_s=20)
    assert sink.stats.duplicates_not_stored == 1
    series = influx_db.query('SELECT "value", "flag", "accepted" FROM "vitals"')
    rows = [row[1:] for row in series[0]["values"]]
    assert rows == [[71.0, "ok", True], [72.0, "out_of_order", False], [73.0, "future", False]]


async def test_downsampled_minutes_still_leave_out_rejected_readings(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    """``flag`` is a field now; the one-minute series still take only accepted readings."""
    async with sink_for(influx_db, tmp_path, flush_interval_s=0.05) as sink:
        for i in range(60):
            flag = SampleFlag.OUT_OF_RANGE if i % 3 == 0 else SampleFlag.OK
            sink.submit_sample(hr(i, 250.0 if flag is SampleFlag.OUT_OF_RANGE else 70.0), flag)
        assert await sink.drain(timeout_s=20)
    start, stop = int(T0 // 60 * 60 * 1e9), int((T0 // 60 + 3) * 60 * 1e9)
    backfill(HeatmonStore.from_options(sink.options), start, stop)
    minutes = influx_db.query('SELECT "count", "max" FROM "vitals_1m"')
    counts = [row[1] for row in minutes[0]["values"]]
    assert sum(counts) == 40 and {row[2] for row in minutes[0]["values"]} == {70.0}


def test_handoff_releases_each_waiter_when_its_items_are_kept() -> None:
    async def main() -> None:
        handoff = HandOff()
        assert handoff.pending() is None
        handoff.took(3)
        first = handoff.pending()
        handoff.took(2)
        second = handoff.pending()
        assert first is not None and second is not None
        handoff.kept(3)
        assert first.done() and not second.done()
        handoff.kept(2)
        assert second.done() and handoff.behind == 0

    asyncio.run(main())


@pytest.mark.parametrize("cancelled", [True, False])
def test_a_cancelled_waiter_is_dropped(cancelled: bool) -> None:
    async def main() -> None:
        handoff = HandOff()
        handoff.took(1)
        waiter = handoff.pending()
        assert waiter is not None
        if cancelled:
            waiter.cancel()
        handoff.kept(1)
        assert waiter.done() and waiter.cancelled() is cancelled

    asyncio.run(main())
