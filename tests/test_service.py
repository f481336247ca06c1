"""The service wiring: sources → engine → sinks, acknowledgements, symptoms, gaps."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Self

import pytest

from adapters.simulator import SimulatedPatientOptions, SimulatorOptions, SimulatorSource
from monitor.engine import MonitorEngine
from monitor.errors import InputError
from monitor.model import (
    Acknowledgement,
    Event,
    EventKind,
    Level,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.plugins import Emit, PluginContext, Sink, Source
from monitor.profile import PatientProfile
from monitor.service import Monitor


class Collect(Sink):
    """A sink that keeps what it gets (a unit-test double; real sinks have their own tests)."""

    name = "collect"

    def __init__(self) -> None:
        self.samples: list[tuple[Sample, SampleFlag]] = []
        self.states: list[ThermalState] = []
        self.events: list[Event] = []
        self.records: list[object] = []
        self.cool_down = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:
        self.samples.append((sample, flag))

    def submit_state(self, state: ThermalState) -> None:
        self.states.append(state)

    def submit_event(self, event: Event) -> None:
        self.events.append(event)
        if event.level is Level.COOL_DOWN:
            self.cool_down.set()

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        self.records.append(record)


class Flaky(Source):
    name = "flaky"

    def __init__(self) -> None:
        self.runs = 0
        self.restarted = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    async def run(self, emit: Emit) -> None:
        self.runs += 1
        if self.runs == 1:
            raise OSError("adapter vanished")
        self.restarted.set()
        await asyncio.Event().wait()


async def test_simulated_patient_reaches_cool_down_and_caregiver_acknowledges() -> None:
    source = SimulatorSource(
        options=SimulatorOptions(
            speed=1000.0,
            interval_s=1.0,
            patients=(SimulatedPatientOptions(patient="p1", scenario="hot_day_aerobic"),),
        ),
        start_time=1_750_000_000.0,
    )
    sink = Collect()
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    async with Monitor(engine=engine, sources=[source], sinks=[sink]) as monitor:
        async with asyncio.timeout(20):
            await sink.cool_down.wait()
        alert = next(e for e in sink.events if e.level is Level.COOL_DOWN)
        assert monitor.open_alerts("p1") == [alert]
        ack = monitor.acknowledge("p1", alert.id, by="carol", time=alert.time + 30)
        assert monitor.open_alerts("p1") == []
        with pytest.raises(InputError):
            monitor.acknowledge("p1", alert.id, by="carol", time=alert.time + 31)
        report = monitor.report_symptom("p1", time=alert.time + 40, note="blurred vision")
        state = monitor.state("p1")
        assert state is not None and report.core_delta_c == state.core_delta_c
        assert report.core_delta_c > 0.2 and report.session == alert.session
        monitor.report_gap("p1", "strap", start=alert.time, end=alert.time + 20)
    assert ack in sink.records and report in sink.records
    assert any(isinstance(r, SessionRecord) and r.stop is not None for r in sink.records)
    assert any(e.kind is EventKind.QUALITY and "20 s" in e.message for e in sink.events)
    assert len(sink.samples) > 1000 and sink.states


async def test_unknown_patient_samples_are_counted_not_raised() -> None:
    sink = Collect()
    async with Monitor(engine=MonitorEngine(profiles={}), sinks=[sink]) as monitor:
        await monitor.ingest(Sample("ghost", "heart_rate", 70.0, 1.0))  # type: ignore[arg-type]
    assert monitor.counters["rejected_samples"] == 1
    assert sink.samples == []


async def test_a_failing_source_is_restarted() -> None:
    flaky = Flaky()
    async with Monitor(engine=MonitorEngine(profiles={}), sources=[flaky]) as monitor:
        async with asyncio.timeout(5):
            await flaky.restarted.wait()
    assert monitor.counters["source_failures.flaky"] == 1


async def test_a_symptom_report_dated_away_from_the_estimate_gets_no_rise() -> None:
    """The MQTT input takes a symptom report up to 7 days old (a phone that was offline):
    it was stored with the current session and the current estimated rise, so one sent
    late, at the peak of today's session, taught the personal threshold "symptoms at
    today's peak". A report is matched to the estimate only when it is dated near it
    (``SYMPTOM_MATCH_S``); otherwise it is kept without the rise (the learning leaves it
    out), and without the session if it is dated before the session began."""
    from monitor.engine import SYMPTOM_MATCH_S
    from tests.threshold_helpers import feed_session

    t0 = 1_790_000_000.0
    async with Monitor(engine=MonitorEngine(profiles={"p1": PatientProfile(id="p1")})) as m:
        t, state = await feed_session(m, "p1", start=t0, rise_c=0.4)
        now = m.report_symptom("p1", time=t)
        assert now.session == state.session and now.core_delta_c == state.core_delta_c
        for late in (t - 6 * 86_400, t0 - 2 * SYMPTOM_MATCH_S):  # before the session
            old = m.report_symptom("p1", time=late)
            assert old.session == "" and old.core_delta_c is None, late
        for late in (t - 2 * SYMPTOM_MATCH_S, t0 + 1):  # in it, far from the estimate
            old = m.report_symptom("p1", time=late)
            assert old.session == state.session and old.core_delta_c is None, late
