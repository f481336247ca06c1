"""Properties of the alert-level state machine (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.engine.risk import HYSTERESIS_C, MIN_DWELL_S, RiskStateMachine
from monitor.model import Level

THRESHOLD = 0.5
CAUTION = 0.3


def machine() -> RiskStateMachine:
    return RiskStateMachine(threshold_c=THRESHOLD, caution_c=CAUTION, horizon_min=10, lead_min=5)


deltas = st.floats(min_value=-0.5, max_value=2.0, allow_nan=False)
forecasts = st.one_of(st.none(), st.floats(min_value=0.0, max_value=120.0, allow_nan=False))
steps = st.lists(st.tuples(deltas, forecasts), min_size=1, max_size=200)


@given(steps)
def test_never_ok_while_rise_is_at_or_above_threshold(
    seq: list[tuple[float, float | None]],
) -> None:
    m = machine()
    for n, (delta, mtt) in enumerate(seq):
        update = m.update(n * 10.0, delta, mtt)
        if delta >= THRESHOLD:
            assert update.level is Level.COOL_DOWN


@given(steps, deltas.filter(lambda d: d >= THRESHOLD))
def test_cool_down_reachable_from_any_level(
    seq: list[tuple[float, float | None]], hot: float
) -> None:
    m = machine()
    for n, (delta, mtt) in enumerate(seq):
        m.update(n * 10.0, delta, mtt)
    assert m.update(len(seq) * 10.0, hot, None).level is Level.COOL_DOWN


@given(
    base=st.floats(min_value=0.0, max_value=1.0),
    noise=st.lists(
        st.floats(min_value=-HYSTERESIS_C * 0.49, max_value=HYSTERESIS_C * 0.49),
        min_size=10,
        max_size=400,
    ),
)
def test_noise_smaller_than_hysteresis_cannot_make_it_flap(base: float, noise: list[float]) -> None:
    m = machine()
    changes = 0
    for n, e in enumerate(noise):
        if m.update(n * 10.0, base + e, None).changed:
            changes += 1
    # A steady rise plus noise may cross one line on the way up (two at most: ok→caution→
    # cool_down), but it can never come back down and go up again.
    assert changes <= 2
    levels_seen: list[Level] = []
    m2 = machine()
    for n, e in enumerate(noise):
        level = m2.update(n * 10.0, base + e, None).level
        if not levels_seen or levels_seen[-1] is not level:
            levels_seen.append(level)
    assert [lv.rank for lv in levels_seen] == sorted(lv.rank for lv in levels_seen)


@given(steps)
@settings(max_examples=200)
def test_levels_come_down_only_after_the_minimum_dwell(
    seq: list[tuple[float, float | None]],
) -> None:
    m = machine()
    last_change = 0.0
    for n, (delta, mtt) in enumerate(seq):
        t = n * 10.0
        update = m.update(t, delta, mtt)
        if update.changed:
            if update.level.rank < update.previous.rank:
                assert t - last_change >= MIN_DWELL_S
            last_change = t


def test_recovered_notice_after_an_episode() -> None:
    m = machine()
    t = 0.0
    for delta in [0.1, 0.3, 0.5, 0.6, 0.55]:
        t += 60
        m.update(t, delta, None)
    assert m.update(t, 0.55, None).level is Level.COOL_DOWN
    recovered = None
    for delta in [0.35, 0.2, 0.1, 0.05, 0.0]:
        t += 600
        update = m.update(t, delta, None)
        if update.recovered_after_min is not None:
            recovered = update.recovered_after_min
    assert update.level is Level.OK
    assert recovered is not None and recovered > 0


def test_forecast_raises_caution_then_cool_down() -> None:
    m = machine()
    assert m.update(0.0, 0.1, 8.0).level is Level.CAUTION
    assert m.update(10.0, 0.2, 4.0).level is Level.COOL_DOWN


def test_a_level_holds_while_the_rise_is_still_climbing() -> None:
    m = machine()
    m.update(0.0, 0.1, 3.0)
    assert m.level is Level.COOL_DOWN
    # The forecast calms down but the core is still warming: stay at cool_down.
    assert m.update(600.0, 0.35, None, rising=True).level is Level.COOL_DOWN
    assert m.update(610.0, 0.35, None, rising=False).level is Level.CAUTION
