"""The InfluxDB sink against a real InfluxDB 1.x: everything stored, outages survived."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.model import (
    Acknowledgement,
    Event,
    EventKind,
    Level,
    Quality,
    Sample,
    SampleFlag,
    SampleKind,
    SessionRecord,
    SymptomReport,
)
from monitor.plugins import PluginContext, sink_class
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from tests.fixtures.influxdb import InfluxDatabase

T0 = 1_715_949_000.0
REPO = Path(__file__).resolve().parent.parent


def samples(n: int, *, start: int = 0, patient: str = "p-001") -> list[Sample]:
    """Heart-rate samples 0.1 s apart, each with a distinct value."""
    return [
        Sample(
            patient,
            SampleKind.HEART_RATE,
            60.0 + (i % 1000) / 7.0,
            T0 + i / 10,
            device="strap-1",
            source="test",
            rr_intervals=(0.5 + i / 1e6,),
        )
        for i in range(start, start + n)
    ]


def make_sink(db: InfluxDatabase, tmp_path: Path, **extra: object) -> InfluxSink:
    options = InfluxOptions.model_validate(
        {
            "url": db.url,
            "database": db.name,
            "batch_size": 500,
            "flush_interval_s": 0.05,
            "spool_fsync": False,
            **extra,
        }
    )
    return InfluxSink(options=options, data_dir=tmp_path / "influx-sink")


def stored_values(db: InfluxDatabase, patient: str = "p-001") -> dict[int, float]:
    series = db.query(f'SELECT "value" FROM "vitals" WHERE "patient" = \'{patient}\'')
    if not series:
        return {}
    return {int(t): float(v) for t, v in series[0]["values"]}


def expected_values(sent: list[Sample]) -> dict[int, float]:
    return {round(s.time * 1e6) * 1000: s.value for s in sent}


def count(db: InfluxDatabase, measurement: str = "vitals") -> int:
    series = db.query(f'SELECT COUNT("value") FROM "{measurement}"')
    return int(series[0]["values"][0][1]) if series else 0


def test_sink_is_registered_and_validates_its_options(tmp_path: Path) -> None:
    cls = sink_class("influxdb")
    assert cls is InfluxSink
    context = PluginContext(config=None, instance="t")
    sink = cls.from_options({"url": "http://127.0.0.1:1", "batch_size": 10}, context=context)
    assert isinstance(sink, InfluxSink)
    try:
        cls.from_options({"batch_size": 0}, context=context)
    except Exception as err:
        assert "sinks.influxdb.batch_size" in str(err)
    else:
        raise AssertionError("batch_size 0 was accepted")
    with pytest.raises(ConfigError, match="no credentials in the URL") as caught:
        cls.from_options({"url": "http://heatmon:pa55word@db:8086"}, context=context)
    assert "pa55word" not in str(caught.value)  # the error is shown and logged


async def test_every_kind_of_record_is_stored(influx_db: InfluxDatabase, tmp_path: Path) -> None:
    sent = samples(1200)
    event = Event(
        id="p-001-1",
        patient="p-001",
        time=T0 + 50,
        session="s1",
        kind=EventKind.LEVEL,
        level=Level.COOL_DOWN,
        previous_level=Level.CAUTION,
        quality=Quality.GOOD,
        core_delta_c=0.52,
        message="Cool down now",
        requires_ack=True,
    )
    async with make_sink(influx_db, tmp_path) as sink:
        for s in sent:
            sink.submit_sample(s, SampleFlag.OK)
        sink.submit_event(event)
        sink.submit_record(
            Acknowledgement(patient="p-001", event_id="p-001-1", time=T0 + 70, by="physio-a")
        )
        sink.submit_record(
            SessionRecord(patient="p-001", session="s1", start=T0, stop=None, activity="aerobic")
        )
        sink.submit_record(
            SymptomReport(patient="p-001", time=T0 + 60, session="s1", core_delta_c=0.55)
        )
        assert await sink.drain(timeout_s=20)
    assert stored_values(influx_db) == expected_values(sent)
    alerts = influx_db.query('SELECT "event_id", "level", "message" FROM "alerts"')
    assert alerts[0]["values"][0][1:] == ["p-001-1", "cool_down", "Cool down now"]
    acks = influx_db.query('SELECT "event_id", "by" FROM "alert_acks"')
    assert acks[0]["values"][0][1:] == ["p-001-1", "physio-a"]
    assert count(influx_db, "sessions") == 0  # no "value" field there; check otherwise
    assert influx_db.query('SELECT "activity" FROM "sessions"')[0]["values"][0][1] == "aerobic"
    assert influx_db.query('SELECT "core_delta_c" FROM "symptoms"')[0]["values"][0][1] == 0.55
    assert sink.stats.written == len(sent) + 4
    assert sink.stats.quarantined == 0


async def test_a_refused_batch_is_quarantined_with_its_reason_and_not_retried(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    # "value" is made a string field first; heatmon's float "value" then conflicts (400).

    influx_db.write(f'vitals,patient=other value="text" {int(T0) * 10**9}')
    sink = make_sink(influx_db, tmp_path, batch_size=10)
    async with sink:
        for s in samples(10):
            sink.submit_sample(s, SampleFlag.OK)
        assert await sink.drain(timeout_s=10)
        # later batches (here in another shard, a month on) are written as usual
        for s in samples(5, patient="p-002"):
            sink.submit_sample(s._replace(time=s.time + 30 * 86400), SampleFlag.OK)
        # a point that cannot be written at all
        sink.submit_sample(samples(1, patient="bad\npatient")[0], SampleFlag.OK)
        assert await sink.drain(timeout_s=10)
    lines = sink.quarantine_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["points"] == 10
    assert "field type conflict" in records[0]["reason"]
    assert records[0]["lines"].count("\n") == 9
    assert records[1]["reason"].startswith("cannot encode") and "line break" in records[1]["reason"]
    assert sink.stats.quarantined == 11
    assert sink.stats.written == 5
    assert len(stored_values(influx_db, "p-002")) == 5
    assert sink.stats.write_failures == 0  # 400 is never retried
    assert sink.spool.empty


async def test_influxdb_stopped_mid_stream_loses_and_duplicates_nothing(
    private_influxdb: InfluxDatabase, tmp_path: Path
) -> None:
    server = private_influxdb.server
    sent = samples(6000)
    max_spooled = 0
    async with make_sink(private_influxdb, tmp_path) as sink:
        for i in range(0, len(sent), 100):
            if i == 2000:
                await asyncio.to_thread(server.stop)
            if i == 4000:
                max_spooled = sink.spool.pending_points
                await asyncio.to_thread(server.start)
            for s in sent[i : i + 100]:
                sink.submit_sample(s, SampleFlag.OK)
            await asyncio.sleep(0.01)
        assert await sink.drain(timeout_s=30)
        assert sink.stats.write_failures > 0
    assert max_spooled > 1000  # the outage really held points in the spool
    stored = stored_values(private_influxdb)
    assert len(stored) == len(sent)
    assert stored == expected_values(sent)
    assert count(private_influxdb) == len(sent)


async def test_replaying_the_same_batches_again_does_not_duplicate(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    sent = samples(3000)
    async with make_sink(influx_db, tmp_path, stop_timeout_s=0) as sink:
        for s in sent:
            sink.submit_sample(s, SampleFlag.OK)
        assert await sink.drain(timeout_s=20)
    # Forget what was delivered, as after a crash before the position was saved.
    (sink.spool.directory / "position").unlink()
    async with make_sink(influx_db, tmp_path) as again:
        assert again.spool.pending_points == len(sent)
        assert await again.drain(timeout_s=20)
        assert again.stats.written == len(sent)
    assert count(influx_db) == len(sent)
    assert stored_values(influx_db) == expected_values(sent)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from tests.test_storage_sink import samples, make_sink
    from tests.fixtures.influxdb import InfluxDatabase
    from monitor.model import SampleFlag
    from monitor.storage.localserver import InfluxServer

    async def main() -> None:
        server = InfluxServer(data_dir=Path(sys.argv[1]), port=int(sys.argv[2]))
        db = InfluxDatabase(server=server, name="heatmon")
        sink = make_sink(db, Path(sys.argv[4]))
        await sink.start()
        for s in samples(3000):
            sink.submit_sample(s, SampleFlag.OK)
        assert await sink.drain(timeout_s=20)
        await sink.stop()
        # the second half: batches of 5000 or once a minute, on disk within 50 ms
        sink = make_sink(
            db, Path(sys.argv[4]), batch_size=5000, flush_interval_s=60, spool_interval_s=0.05
        )
        await sink.start()
        print("DELIVERED", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        for s in samples(3000, start=3000):
            sink.submit_sample(s, SampleFlag.OK)
        while sink.spool.pending_points < 3000:
            await asyncio.sleep(0.01)
        print("SPOOLED", sink.spool.pending_points, sink.stats.written, flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("influxdb_down", [True, False], ids=["influxdb-down", "influxdb-up"])
async def test_heatmon_killed_while_the_spool_holds_data_resumes_it(
    private_influxdb: InfluxDatabase, tmp_path: Path, influxdb_down: bool
) -> None:
    """SIGKILL while points wait in the spool, with InfluxDB down (they could not be sent)
    or up (the batch was not due yet: flush_interval_s is a minute): after a restart,
    every point is stored exactly once. The points reach the spool well before the
    minute is up (spool_interval_s), which is what bounds the loss on a crash."""
    server = private_influxdb.server
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(server.data_dir),
        str(server.port),
        str(REPO),
        str(tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert (await child.stdout.readline()).strip() == b"DELIVERED"
        if influxdb_down:
            await asyncio.to_thread(server.stop)
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        async with asyncio.timeout(20):  # far less than flush_interval_s
            line = (await child.stdout.readline()).split()
        assert line[0] == b"SPOOLED", line
        assert int(line[2]) == 0  # nothing of the second half was sent before the kill
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert count_spool_files(tmp_path) > 0
    if influxdb_down:
        await asyncio.to_thread(server.start)
    assert count(private_influxdb) == 3000  # only the first half is stored so far
    async with make_sink(private_influxdb, tmp_path) as sink:
        assert sink.spool.pending_points == 3000
        assert await sink.drain(timeout_s=30)
    sent = samples(6000)
    assert count(private_influxdb) == len(sent)
    assert stored_values(private_influxdb) == expected_values(sent)


def count_spool_files(tmp_path: Path) -> int:
    return len(list((tmp_path / "influx-sink" / "spool").glob("seg-*.lp")))
