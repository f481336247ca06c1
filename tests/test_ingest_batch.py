"""Batch-first ingest: a gateway's batch through ``Monitor.ingest_batch`` gives every sink
exactly what taking its samples one by one gives (flags, states, alerts, stored lines)."""

from __future__ import annotations

from pathlib import Path

from monitor.engine import MonitorEngine
from monitor.errors import InputError
from monitor.model import Sample, SampleFlag, SampleKind
from monitor.profile import PatientProfile
from monitor.service import Monitor
from monitor.storage import lineprotocol as lp
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink

T0 = 1_700_000_000.0


def _ramp(patient: str, steps: int) -> list[Sample]:
    out = []
    for i in range(steps):
        core = 37.0 if i < 150 else 37.0 + min(0.9, (i - 150) * 0.02)
        hr = 70.0 if i < 150 else 150.0
        out.append(Sample(patient, SampleKind.HEART_RATE, hr, T0 + i, "strap", "gw", (0.8,)))
        out.append(Sample(patient, SampleKind.CORE_TEMP, core, T0 + i, "pill"))
    # a copy delivered again, an impossible reading and an unknown patient
    out.insert(40, out[10])
    out.insert(50, Sample(patient, SampleKind.HEART_RATE, 0.0, T0 + 24.5, "strap"))
    out.insert(60, Sample("nobody", SampleKind.HEART_RATE, 80.0, T0 + 30))
    return out


def _monitor(tmp: Path) -> tuple[Monitor, InfluxSink]:
    sink = InfluxSink(options=InfluxOptions(), data_dir=tmp)
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    return Monitor(engine=engine, sinks=[sink], clock=lambda: T0 + 400), sink


async def test_a_batch_gives_the_sinks_what_one_by_one_gives(tmp_path: Path) -> None:
    samples = _ramp("p1", 300)
    one, one_sink = _monitor(tmp_path / "one")
    for sample in samples:
        await one.ingest(sample)
    batch, batch_sink = _monitor(tmp_path / "batch")
    for n in range(0, len(samples), 20):
        await batch.ingest_batch(samples[n : n + 20])
    # the same points (a batch's samples come before the states they closed)
    assert sorted(batch_sink._buffer) == sorted(one_sink._buffer)
    assert len(batch_sink._buffer) > len(samples)
    assert batch_sink.stats == one_sink.stats
    assert batch.counters == one.counters
    assert batch.counters["flag.duplicate"] == 1
    assert batch.counters["rejected_samples"] == 1
    assert [e.level for e in batch.open_alerts("p1")] == [e.level for e in one.open_alerts("p1")]
    assert [e.level.value for e in batch.open_alerts("p1")] == ["cool_down"]
    assert batch.state("p1") == one.state("p1")


def test_sample_lines_are_sample_line_of_each() -> None:
    samples = [*_ramp("p1", 20), Sample("p1", SampleKind.HEART_RATE, 70.0, T0, "bad\ndevice")]
    flags = [SampleFlag.OK, SampleFlag.OUT_OF_RANGE] * (len(samples) // 2) + [SampleFlag.OK]
    flags = flags[: len(samples)]
    lines = lp.sample_lines(samples, flags, "ms")
    for sample, flag, line in zip(samples[:-1], flags, lines, strict=False):
        assert line == lp.sample_line(sample, flag, "ms")
    assert isinstance(lines[-1], InputError)
    assert "line break" in lines[-1].reason
