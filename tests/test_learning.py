"""Learning a personal onset rise: hand-computed steps of the conjugate normal update and
property tests of the suggestion rules (never below the floor, never without enough
reports, always toward the reported rises)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.engine.learning import (
    BETWEEN_SD_C,
    CEILING_C,
    FLOOR_C,
    MIN_REPORTS,
    MIN_SESSIONS,
    PRIOR_SD_C,
    SAFETY_Z,
    Report,
    evaluate,
    onsets,
    posterior,
)

rises = st.one_of(
    st.floats(min_value=-0.5, max_value=2.5, allow_nan=False),
    st.none(),
    st.just(math.nan),
    st.just(9.0),  # implausible: ignored
)
sds = st.one_of(st.none(), st.floats(min_value=0.0, max_value=0.6, allow_nan=False))


@st.composite
def report_lists(draw: st.DrawFn, max_sessions: int = 8) -> list[Report]:
    n = draw(st.integers(min_value=0, max_value=25))
    return [
        Report(
            session=f"s{draw(st.integers(min_value=0, max_value=max_sessions - 1))}",
            time=draw(st.floats(min_value=0, max_value=1e6, allow_nan=False)),
            rise_c=draw(rises),
            sd_c=draw(sds),
            id=str(i),
        )
        for i in range(n)
    ]


thresholds = st.floats(min_value=0.11, max_value=2.0, allow_nan=False)


def onset(session: int, rise: float, sd: float | None = 0.05) -> Report:
    return Report(session=f"s{session}", time=1000.0 * session, rise_c=rise, sd_c=sd)


def test_posterior_matches_the_hand_computed_conjugate_update() -> None:
    # prior N(0.5, 0.15²): precision 1/0.0225 = 44.444; each report 0.35 with sd 0.05 has
    # variance 0.05² + 0.10² = 0.0125, weight 80.
    reports = [onset(k, 0.35) for k in range(3)]
    post = posterior(reports, prior_mean_c=0.5)
    precision = 1 / 0.15**2 + 3 * 80
    assert post.mean_c == pytest.approx((0.5 / 0.15**2 + 3 * 80 * 0.35) / precision)
    assert post.mean_c == pytest.approx(0.37344, abs=1e-5)
    assert post.sd_c == pytest.approx(math.sqrt(1 / precision))
    assert (post.n_reports, post.n_sessions) == (3, 3)
    assert (PRIOR_SD_C, BETWEEN_SD_C) == (0.15, 0.10), "the documented constants"
    # The suggestion is the lower 84 % bound: 0.37344 − 0.0593 = 0.3141 → +0.31 °C.
    result = evaluate(reports, prior_mean_c=0.5, current_c=0.5)
    assert result.suggested_c == 0.31
    assert "3 sessions" in result.reason


def test_only_the_first_report_of_a_session_counts() -> None:
    reports = [
        Report(session="a", time=10, rise_c=0.40, sd_c=0.05),
        Report(session="a", time=5, rise_c=0.30, sd_c=0.05),  # earlier: the onset
        Report(session="a", time=20, rise_c=0.90, sd_c=0.05),
        Report(session="b", time=30, rise_c=None),
        Report(session="", time=40, rise_c=0.3),
    ]
    assert [(r.session, r.rise_c) for r in onsets(reports)] == [("a", 0.30)]
    # Many presses in two sessions are still two onsets: not enough.
    many = [Report(session=f"s{k % 2}", time=k, rise_c=0.35, sd_c=0.01) for k in range(20)]
    assert evaluate(many, prior_mean_c=0.5, current_c=0.5).suggested_c is None


def test_uncertain_estimates_need_more_sessions() -> None:
    loose = [onset(k, 0.35, sd=0.25) for k in range(3)]
    result = evaluate(loose, prior_mean_c=0.5, current_c=0.5)
    assert result.suggested_c is None and "uncertain" in result.reason
    more = [onset(k, 0.35, sd=0.25) for k in range(10)]
    assert evaluate(more, prior_mean_c=0.5, current_c=0.5).suggested_c is not None


def test_no_suggestion_when_the_onsets_agree_with_the_threshold_in_force() -> None:
    reports = [onset(k, 0.36) for k in range(6)]
    first = evaluate(reports, prior_mean_c=0.5, current_c=0.5)
    assert first.suggested_c is not None
    again = evaluate(reports, prior_mean_c=0.5, current_c=first.suggested_c)
    assert again.suggested_c is None and "agree" in again.reason


@settings(max_examples=150, deadline=None)
@given(
    report_lists(),
    thresholds,
    thresholds,
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.5)),
)
def test_a_suggestion_never_goes_below_the_floor(
    reports: list[Report], prior: float, current: float, floor: float | None
) -> None:
    result = evaluate(reports, prior_mean_c=prior, current_c=current, floor_c=floor)
    if result.suggested_c is not None:
        assert result.suggested_c >= FLOOR_C
        assert floor is None or result.suggested_c >= floor
        assert result.suggested_c <= max(CEILING_C, math.ceil((floor or 0.0) * 100) / 100)


@settings(max_examples=150, deadline=None)
@given(report_lists(), thresholds, thresholds)
def test_no_suggestion_without_enough_reports_across_sessions(
    reports: list[Report], prior: float, current: float
) -> None:
    result = evaluate(reports, prior_mean_c=prior, current_c=current)
    usable_sessions = {
        r.session
        for r in reports
        if r.rise_c is not None and math.isfinite(r.rise_c) and -0.5 <= r.rise_c <= 2.5
    }
    if len(usable_sessions) < max(MIN_REPORTS, MIN_SESSIONS):
        assert result.suggested_c is None
    if result.suggested_c is not None:
        assert result.posterior.n_reports >= MIN_REPORTS
        assert result.posterior.n_sessions >= MIN_SESSIONS
        assert abs(result.suggested_c - current) >= 0.05 - 1e-9


@settings(max_examples=150, deadline=None)
@given(
    report_lists(),
    thresholds,
    st.floats(min_value=-0.5, max_value=2.5, allow_nan=False),
    sds,
)
def test_each_report_moves_the_estimate_toward_its_rise(
    reports: list[Report], prior: float, rise: float, sd: float | None
) -> None:
    before = posterior(onsets(reports), prior_mean_c=prior)
    extra = Report(session="new-session", time=2e6, rise_c=rise, sd_c=sd)
    after = posterior(onsets([*reports, extra]), prior_mean_c=prior)
    assert abs(after.mean_c - rise) <= abs(before.mean_c - rise) + 1e-9
    assert after.sd_c < before.sd_c, "more evidence, less uncertainty"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(min_value=-0.5, max_value=2.5, allow_nan=False), min_size=1, max_size=15),
    st.lists(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), min_size=15, max_size=15),
    thresholds,
)
def test_the_suggestion_lies_between_the_prior_and_the_reported_rises(
    rises: list[float], sd: list[float], prior: float
) -> None:
    reports = [onset(k, r, sd[k]) for k, r in enumerate(rises)]
    result = evaluate(reports, prior_mean_c=prior, current_c=prior)
    lo, hi = min(prior, *rises), max(prior, *rises)
    assert lo - 1e-9 <= result.posterior.mean_c <= hi + 1e-9
    if result.suggested_c is not None:
        # The estimate less one sd, rounded to 0.01 °C, inside [floor, ceiling]...
        post = result.posterior
        point = min(max(post.mean_c - SAFETY_Z * post.sd_c, FLOOR_C), CEILING_C)
        assert result.suggested_c == pytest.approx(point, abs=0.005 + 1e-9)
        # ... and always on the reports' side of the threshold in force.
        if min(rises) > prior:
            assert result.suggested_c > prior
        if max(rises) < prior:
            assert result.suggested_c < prior
        assert (result.suggested_c - prior) * (post.mean_c - prior) > 0
