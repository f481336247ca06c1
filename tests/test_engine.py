"""The per-patient engine on the simulator's scenarios and on hand-made input."""

from __future__ import annotations

from itertools import pairwise

import pytest

from adapters.simulator import SCENARIOS, SimulatedPatient
from monitor.config import EngineConfig
from monitor.engine import MonitorEngine, StepResult
from monitor.errors import InputError
from monitor.memory import deep_sizeof
from monitor.model import Event, EventKind, Level, Quality, Sample, SampleFlag, SampleKind
from monitor.profile import HeatSensitivity, PatientProfile

T0 = 1_750_000_000.0


def run_scenario(
    name: str, seed: int, estimator: str = "heat_balance", *, declare_sensitivity: bool = True
) -> dict[str, float | None]:
    """``declare_sensitivity``: a patient who sweats less (the ``heat_sensitive`` scenario)
    has it in the profile, as their clinician would record it."""
    sc = SCENARIOS[name]
    sim = SimulatedPatient(scenario=sc, seed=seed)
    sensitivity = HeatSensitivity.NONE
    if declare_sensitivity and sc.sweat_capacity < 1.0:
        sensitivity = HeatSensitivity.IMPAIRED_SWEATING
    profile = PatientProfile(id="p", age=sc.age, activity=sc.activity, heat_sensitivity=sensitivity)
    engine = MonitorEngine(
        profiles={"p": profile},
        config=EngineConfig(estimator=estimator),
    )
    first_cool_down = crossed = None
    while not sim.finished:
        v = sim.step(1.0)
        t = T0 + v.time_s
        for kind, value in (
            (SampleKind.HEART_RATE, v.heart_rate_bpm),
            (SampleKind.SKIN_TEMP, v.skin_temp_c),
        ):
            r = engine.ingest(Sample("p", kind, value, t))
            for e in r.events:
                if e.level is Level.COOL_DOWN and first_cool_down is None:
                    first_cool_down = v.time_s
        if crossed is None and sim.core_rise_c >= 0.5:
            crossed = v.time_s
    return {"cool_down": first_cool_down, "crossed": crossed}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s.hot])
def test_cool_down_comes_before_the_rise_reaches_the_threshold(name: str, seed: int) -> None:
    r = run_scenario(name, seed)
    assert r["crossed"] is not None, "the hot scenario must really get hot"
    assert r["cool_down"] is not None
    assert r["cool_down"] < r["crossed"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heat_sensitive_profile_gives_a_useful_lead(seed: int) -> None:
    # Impaired sweating in the profile changes the model (slower heat loss) and the alert
    # margin: the cool-down comes minutes before the crossing, and earlier than for the same
    # patient without it (whose alert comes about when the core crosses).
    declared = run_scenario("heat_sensitive", seed)
    undeclared = run_scenario("heat_sensitive", seed, declare_sensitivity=False)
    assert declared["cool_down"] is not None and declared["crossed"] is not None
    assert declared["crossed"] - declared["cool_down"] >= 3 * 60.0
    assert undeclared["cool_down"] is not None
    assert declared["cool_down"] < undeclared["cool_down"] - 60.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_cool_down_in_the_cool_light_session(seed: int) -> None:
    r = run_scenario("cool_gym_strength", seed)
    assert r["crossed"] is None
    assert r["cool_down"] is None


def hr(engine: MonitorEngine, t: float, value: float) -> StepResult:
    return engine.ingest(Sample("p", SampleKind.HEART_RATE, value, T0 + t))


def test_unknown_patient_is_refused_without_a_default() -> None:
    engine = MonitorEngine(profiles={})
    with pytest.raises(InputError, match="unknown patient"):
        engine.ingest(Sample("x", SampleKind.HEART_RATE, 70.0, T0))


def test_stale_data_is_reported_and_recovers() -> None:
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p", resting_hr_bpm=65)})
    for t in range(60):
        hr(engine, t, 70.0)
    r = engine.advance(T0 + 200)
    kinds = [(e.kind, e.quality) for e in r.events]
    assert (EventKind.QUALITY, Quality.STALE) in kinds
    assert "out of range" in r.events[-1].message or "No fresh data" in r.events[-1].message
    for t in range(300, 330):
        hr(engine, t, 70.0)
    state = engine.state("p")
    assert state is not None and state.quality is Quality.GOOD


def test_strap_off_is_sensor_off_not_a_drop_in_heart_rate() -> None:
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p", resting_hr_bpm=65)})
    for t in range(60):
        hr(engine, t, 70.0)
    flags: list[SampleFlag] = []
    events: list[Event] = []
    for t in range(60, 90):
        r = engine.ingest(Sample("p", SampleKind.HEART_RATE, 0.0, T0 + t))
        flags.append(r.flag)
        events.extend(r.events)
    assert set(flags) == {SampleFlag.ZERO}
    assert any(e.quality is Quality.SENSOR_OFF for e in events)
    state = engine.state("p")
    assert state is not None and state.heart_rate_bpm == 70.0


def test_a_strap_off_for_a_few_seconds_is_seen_by_the_ticks_between_windows() -> None:
    """The strap is off its skin for 5 s (zeros without contact) inside one 10-s window
    while the skin sensor goes on; the service ticks every second. The tick sees it."""
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p", resting_hr_bpm=65)})
    events: list[Event] = []
    for t in range(120):
        engine.advance(T0 + t)
        off = 102 <= t < 107
        r = engine.ingest(
            Sample("p", SampleKind.HEART_RATE, 0.0 if off else 70.0, T0 + t, sensor_contact=not off)
        )
        events += r.events
        events += engine.ingest(Sample("p", SampleKind.SKIN_TEMP, 33.0, T0 + t)).events
        events += engine.advance(T0 + t + 0.5).events
    off_events = [e for e in events if e.quality is Quality.SENSOR_OFF]
    assert len(off_events) == 1 and T0 + 102 <= off_events[0].time < T0 + 108


def test_every_event_has_plain_advice_and_cool_down_needs_ack() -> None:
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p", resting_hr_bpm=60)})
    events: list[Event] = []
    for t in range(0, 3600):
        events.extend(hr(engine, t, 60.0 if t < 300 else 150.0).events)
    levels = [e for e in events if e.kind is EventKind.LEVEL]
    assert [e.level for e in levels][:2] == [Level.CAUTION, Level.COOL_DOWN]
    cool = levels[1]
    assert cool.requires_ack
    assert "Cool down now" in cool.message
    assert any("cold" in a for a in cool.advice)
    assert len({e.id for e in events}) == len(events)


def test_unwell_today_tightens_the_threshold() -> None:
    well = PatientProfile(id="p")
    unwell = PatientProfile(id="p", unwell_today=True)
    assert unwell.effective_threshold_c < well.effective_threshold_c


def test_a_new_session_after_a_long_pause_gets_a_new_baseline() -> None:
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p", resting_hr_bpm=65)})
    first = hr(engine, 0, 70.0)
    second = hr(engine, 3600, 70.0)
    assert first.records[0].stop is None
    closed, opened = second.records
    assert closed.stop == T0 and opened.start == T0 + 3600
    assert closed.session != opened.session


def test_state_per_patient_is_small() -> None:
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p")})
    sim = SimulatedPatient(scenario=SCENARIOS["intervals"], seed=0)
    for _ in range(1800):
        v = sim.step(1.0)
        engine.ingest(Sample("p", SampleKind.HEART_RATE, v.heart_rate_bpm, T0 + v.time_s, "strap"))
        engine.ingest(Sample("p", SampleKind.SKIN_TEMP, v.skin_temp_c, T0 + v.time_s, "skin"))
    assert deep_sizeof(engine.engine("p")) < 10_000


def test_a_reported_gap_is_a_quality_event() -> None:
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p", resting_hr_bpm=65)})
    for t in range(30):
        hr(engine, t, 70.0)
    r = engine.engine("p").note_gap("strap", start=T0 + 29, end=T0 + 41)
    (event,) = r.events
    assert event.kind is EventKind.QUALITY
    assert "12 s" in event.message and event.patient == "p"


@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s.hot])
def test_a_patient_who_heeds_the_alert_stays_below_the_threshold_and_recovers(name: str) -> None:
    sc = SCENARIOS[name]
    sim = SimulatedPatient(scenario=sc, seed=0)
    sensitivity = (
        HeatSensitivity.IMPAIRED_SWEATING if sc.sweat_capacity < 1.0 else HeatSensitivity.NONE
    )
    profile = PatientProfile(id="p", age=sc.age, heat_sensitivity=sensitivity)
    engine = MonitorEngine(profiles={"p": profile})
    events: list[Event] = []
    while not sim.finished:
        v = sim.step(1.0)
        for kind, value in (
            (SampleKind.HEART_RATE, v.heart_rate_bpm),
            (SampleKind.SKIN_TEMP, v.skin_temp_c),
        ):
            for e in engine.ingest(Sample("p", kind, value, T0 + v.time_s)).events:
                events.append(e)
                if e.level is Level.COOL_DOWN:
                    sim.heed_cool_down()
        assert sim.core_rise_c < 0.5
    levels = [e for e in events if e.kind is EventKind.LEVEL]
    downs = [e for e in levels if e.level.rank < e.previous_level.rank]
    assert downs and all("Cooling down" in e.message or "Nearly there" in e.message for e in downs)
    recovered = [e for e in events if e.kind is EventKind.RECOVERED]
    assert len(recovered) == 1
    assert recovered[0].recovery_minutes is not None and recovered[0].recovery_minutes > 5
    assert "back to baseline" in recovered[0].message


def test_quality_is_good_during_the_rest_period_too() -> None:
    # No resting heart rate in the profile: the first two minutes are the rest period, and
    # readings that arrive then are good data, not "no data".
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p")})
    for t in range(45):
        hr(engine, t, 70.0)
    state = engine.state("p")
    assert state is not None and state.quality is Quality.GOOD
    assert state.time - T0 < 120


def test_a_backlog_behind_the_clock_is_estimated_as_if_it_came_in_time() -> None:
    """A gateway sends what it buffered during an outage, minutes behind the service's
    clock; the clock ticks between its messages. The states and alerts are the ones the
    same samples give without ticks: the same times, the same levels, and no "stale data"
    while readings keep coming."""

    def feed(ticks: bool) -> list[tuple[float, str, str]]:
        engine = MonitorEngine(profiles={"p": PatientProfile(id="p", resting_hr_bpm=65)})
        seen: list[tuple[float, str, str]] = []
        for i in range(400):
            if ticks and i % 7 == 0:
                r = engine.advance(T0 + 900 + i)  # the service's clock: 15 min ahead
                seen += [(s.time, "state", s.level.value) for s in r.states]
                seen += [(e.time, e.kind.value, e.level.value) for e in r.events]
            hot = i >= 150
            for kind, value in (
                (SampleKind.HEART_RATE, 150.0 if hot else 70.0),
                (SampleKind.CORE_TEMP, 37.0 + (min(0.9, (i - 150) * 0.02) if hot else 0.0)),
            ):
                r = engine.ingest(Sample("p", kind, value, T0 + i))
                seen += [(s.time, "state", s.level.value) for s in r.states]
                seen += [(e.time, e.kind.value, e.level.value) for e in r.events]
        return seen

    with_ticks = feed(ticks=True)
    levels = [(t, level) for t, kind, level in with_ticks if kind == "level"]
    assert [level for _, level in levels] == ["caution", "cool_down"], with_ticks
    assert all(T0 + 150 < t < T0 + 400 for t, _ in levels)
    assert with_ticks == feed(ticks=False)


def _state_times(engine: MonitorEngine, patient: str, seconds: int) -> list[float]:
    times: list[float] = []
    for i in range(seconds):
        r = engine.ingest(Sample(patient, SampleKind.HEART_RATE, 70.0, T0 + i))
        times += [s.time for s in r.states]
    return times


def test_with_window_phase_patient_each_patient_s_windows_end_at_an_offset_of_their_own() -> None:
    """Many patients' states (and alerts) come spread over the seconds, not all in the
    second after each 10-s mark; each patient's windows are still 10 s apart, and the same
    every run. By default (``window_phase = "clock"``) every window ends on the 10-s grid."""
    ids = [f"p{i:03d}" for i in range(200)]
    spread = EngineConfig(window_phase="patient")
    engine = MonitorEngine(
        profiles={p: PatientProfile(id=p, resting_hr_bpm=65) for p in ids}, config=spread
    )
    offsets = []
    for p in ids:
        times = _state_times(engine, p, 60)
        assert len(times) >= 4 and all(b - a == pytest.approx(10.0) for a, b in pairwise(times))
        offsets.append((times[0] - T0) % 10.0)
    assert len({round(o, 3) for o in offsets}) > 150  # spread, not all on one mark
    assert sum(o < 1.0 for o in offsets) < 40  # about a tenth in each second of ten
    again = MonitorEngine(
        profiles={"p007": PatientProfile(id="p007", resting_hr_bpm=65)}, config=spread
    )
    assert (_state_times(again, "p007", 60)[0] - T0) % 10.0 == pytest.approx(offsets[7])
    clock = MonitorEngine(profiles={p: PatientProfile(id=p, resting_hr_bpm=65) for p in ids[:20]})
    for p in ids[:20]:
        assert all((t - T0) % 10.0 == pytest.approx(0.0) for t in _state_times(clock, p, 60))


@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s.hot])
def test_a_patient_who_stops_sees_a_recovery_countdown_before_baseline(name: str) -> None:
    """The countdown ("back to baseline in about …") starts once the estimate falls after the
    patient heeds the cool-down, and comes before the recovered notice: with the earlier
    warnings of the fourth round the estimate is back under +0.15 °C within minutes, so a
    countdown that waited for three minutes of climbing to be forgotten never showed."""
    sc = SCENARIOS[name]
    sim = SimulatedPatient(scenario=sc, seed=0)
    sensitivity = (
        HeatSensitivity.IMPAIRED_SWEATING if sc.sweat_capacity < 1.0 else HeatSensitivity.NONE
    )
    profile = PatientProfile(id="p", age=sc.age, activity=sc.activity, heat_sensitivity=sensitivity)
    engine = MonitorEngine(profiles={"p": profile})
    cool_down = recovered = None
    countdown: list[float] = []
    while not sim.finished and recovered is None:
        v = sim.step(1.0)
        for kind, value in (
            (SampleKind.HEART_RATE, v.heart_rate_bpm),
            (SampleKind.SKIN_TEMP, v.skin_temp_c),
        ):
            for e in engine.ingest(Sample("p", kind, value, T0 + v.time_s)).events:
                if e.level is Level.COOL_DOWN and cool_down is None:
                    cool_down = v.time_s
                    sim.heed_cool_down()
                if e.kind is EventKind.RECOVERED:
                    recovered = v.time_s
        state = engine.state("p")
        if state is not None and state.minutes_to_recovery is not None and recovered is None:
            countdown.append(v.time_s)
    assert cool_down is not None and recovered is not None
    assert countdown, "a countdown before the recovered notice"
    assert countdown[0] - cool_down < 4 * 60.0
    assert countdown[-1] - countdown[0] >= 60.0
