"""The estimators against the published ECTemp equations and hand-computed steps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from monitor.engine.estimators import ECTempEstimator, HeatBalanceEstimator
from monitor.engine.params import (
    ECTEMP_GAMMA,
    HEAT_BALANCE_PARAMS,
    HeatBalanceParams,
    ectemp_hr_model,
)
from monitor.profile import Activity


def test_observation_model_matches_published_coefficients() -> None:
    # HR = −4.5714·x² + 384.4286·x − 7887.1 (Buller et al. 2013), at x = 37.1 °C:
    # −4.5714·1376.41 + 384.4286·37.1 − 7887.1 = 83.0804 bpm
    assert ectemp_hr_model(37.1) == pytest.approx(83.0804, abs=1e-4)
    # at 38.5 °C: −4.5714·1482.25 + 384.4286·38.5 − 7887.1 = 137.4435 bpm
    assert ectemp_hr_model(38.5) == pytest.approx(137.4435, abs=1e-3)


def test_first_step_by_hand() -> None:
    # x0 = 37.1, v0 = 0, one minute with mean HR 90 bpm.
    # v⁻ = 0 + 0.022² = 0.000484
    # c  = 2·(−4.5714)·37.1 + 384.4286 = 45.23072
    # k  = v⁻·c / (c²·v⁻ + 18.88²) = 0.0218917 / 357.44455 = 6.12449e−5
    # x  = 37.1 + k·(90 − 83.08039) = 37.1004238
    # v  = (1 − k·c)·v⁻ = 0.00048266
    est = ECTempEstimator()
    est.step(60.0, heart_rate=90.0, skin_temp=None, measured_core=None)
    assert est.core_c == pytest.approx(37.1004238, abs=1e-7)
    assert est.variance == pytest.approx(0.00048266, abs=1e-8)


def test_three_steps_by_hand() -> None:
    # Continuing the recursion by hand with HR 100 then 110:
    #   step 2: v⁻ = 0.00096666, c = 45.22685, k = 1.21973e−4, model = 83.09955,
    #           x = 37.1024852
    #   step 3: v⁻ = 0.00144533, c = 45.20800, k = 1.81800e−4, model = 83.19276,
    #           x = 37.1073587, v = 0.00143345
    est = ECTempEstimator()
    for hr in (90.0, 100.0, 110.0):
        est.step(60.0, heart_rate=hr, skin_temp=None, measured_core=None)
    assert est.core_c == pytest.approx(37.1073587, abs=1e-7)
    assert est.variance == pytest.approx(0.00143345, abs=1e-8)


def test_missing_heart_rate_only_grows_uncertainty() -> None:
    est = ECTempEstimator()
    est.step(60.0, heart_rate=None, skin_temp=None, measured_core=None)
    assert est.core_c == 37.1
    assert est.variance == pytest.approx(ECTEMP_GAMMA)


def test_six_ten_second_steps_hold_about_one_minute_of_information() -> None:
    one = ECTempEstimator()
    six = ECTempEstimator()
    for _ in range(30):
        one.step(60.0, heart_rate=140.0, skin_temp=None, measured_core=None)
        for _ in range(6):
            six.step(10.0, heart_rate=140.0, skin_temp=None, measured_core=None)
    assert one.core_c - 37.1 > 0.3
    assert six.core_c == pytest.approx(one.core_c, abs=0.03)
    assert six.sd_c == pytest.approx(one.sd_c, rel=0.1)


def test_calibration_maps_resting_heart_rate_to_baseline() -> None:
    est = ECTempEstimator()
    est.calibrate(baseline_core_c=36.9, resting_hr_bpm=62.0, max_hr_bpm=175.0, baseline_skin_c=None)
    for _ in range(20):
        est.step(60.0, heart_rate=62.0, skin_temp=None, measured_core=None)
    assert est.core_c == pytest.approx(36.9, abs=1e-6)


def test_measured_core_pulls_the_estimate() -> None:
    est = ECTempEstimator(start_variance=0.1)
    est.step(60.0, heart_rate=None, skin_temp=None, measured_core=37.8)
    assert 37.6 < est.core_c < 37.8


def _heat_balance_run(
    skin: float | None,
    minutes: int = 30,
    *,
    params: HeatBalanceParams = HEAT_BALANCE_PARAMS,
    activity: Activity = Activity.AEROBIC,
) -> HeatBalanceEstimator:
    est = HeatBalanceEstimator(params=params)
    est.calibrate(
        baseline_core_c=37.0,
        resting_hr_bpm=65.0,
        max_hr_bpm=180.0,
        baseline_skin_c=33.0,
        activity=activity,
    )
    for _ in range(minutes * 6):
        est.step(10.0, heart_rate=130.0, skin_temp=skin, measured_core=None)
    return est


def test_heat_balance_warm_skin_raises_the_estimate() -> None:
    neutral = _heat_balance_run(33.0)
    hot = _heat_balance_run(35.0)
    assert hot.core_c > neutral.core_c + 0.05


def test_heat_balance_falling_skin_never_lowers_the_estimate() -> None:
    # Skin falls with sweat while the core rises: no reason to believe the core is cooler.
    assert _heat_balance_run(31.0).core_c == pytest.approx(_heat_balance_run(33.0).core_c)


def test_heat_balance_without_skin_falls_back_to_heart_rate_only() -> None:
    no_skin = _heat_balance_run(None)
    # A skin at its rest value shifts nothing, as no skin; but it keeps the fast part's gate
    # at g₀ and the aerobic work share on (the core has not yet warmed enough to open the
    # skin's vessels), while without a skin reading the gate stays open and the share is off:
    # never a lower estimate than with a skin at rest.
    ungated = replace(HEAT_BALANCE_PARAMS, fast_skin_gate_c=0.0, aerobic_hr_work_share=0.0)
    assert no_skin.core_c == pytest.approx(_heat_balance_run(33.0, params=ungated).core_c)
    assert no_skin.core_c >= _heat_balance_run(33.0).core_c
    assert no_skin.core_c - 37.0 > 0.4
    assert 0.0 < no_skin.sd_c < 0.5


def test_heat_balance_settles_at_rest() -> None:
    est = HeatBalanceEstimator()
    est.calibrate(baseline_core_c=37.0, resting_hr_bpm=65.0, max_hr_bpm=180.0, baseline_skin_c=33.0)
    for _ in range(60 * 6):
        est.step(10.0, heart_rate=65.0, skin_temp=33.0, measured_core=None)
    assert est.core_c == pytest.approx(37.0, abs=1e-6)


def test_aerobic_work_share_holds_the_start_lower_and_fades_as_the_skin_warms() -> None:
    without = replace(HEAT_BALANCE_PARAMS, aerobic_hr_work_share=0.0)
    # Skin at rest: 30 % of the heart-rate rise is read as work, so the estimate is lower.
    at_rest = _heat_balance_run(33.0).core_c
    assert at_rest < _heat_balance_run(33.0, params=without).core_c - 0.05
    # Skin aerobic_share_fade_c (0.5 °C since the sixth round) or more over its rest value:
    # the share has faded out.
    fade = HEAT_BALANCE_PARAMS.aerobic_share_fade_c
    assert 0.2 <= fade <= 1.0
    warm = _heat_balance_run(34.5).core_c
    assert warm == pytest.approx(_heat_balance_run(34.5, params=without).core_c, abs=1e-12)
    # Half way: some of the share is left, so the estimate lies between the two.
    half_skin = 33.0 + fade / 2
    half, half_without = _heat_balance_run(half_skin), _heat_balance_run(half_skin, params=without)
    assert half.core_c < half_without.core_c - 0.01
    # No skin reading: the share is off (the heart-rate-only fallback).
    assert _heat_balance_run(None).core_c == pytest.approx(
        _heat_balance_run(None, params=without).core_c, abs=1e-12
    )
    # Strength sets keep their own fixed share; the aerobic one does not apply.
    strength = _heat_balance_run(33.0, activity=Activity.STRENGTH).core_c
    assert strength == pytest.approx(
        _heat_balance_run(33.0, params=without, activity=Activity.STRENGTH).core_c, abs=1e-12
    )


def test_vasodilation_lowers_the_equilibrium_by_at_most_its_limit() -> None:
    # Skin 6 °C over rest, cap 1 °C: the vasodilation term would lower the equilibrium by
    # 0.2 × (6 − 1) = 1.0 °C, the limit keeps it to 0.4 °C. Same heart rate, so the only
    # difference from a skin at the cap is the skin shift: −0.4 °C (−1.0 without the limit).
    # (Explicit values: the sixth round's defaults are cap 0.85 °C and 0.3 per °C.)
    p = replace(
        HEAT_BALANCE_PARAMS,
        skin_warming_cap_c=1.0,
        skin_vasodilation_coupling=0.2,
        skin_vasodilation_limit_c=0.4,
    )

    def eq(skin: float, params: HeatBalanceParams) -> float:
        process = _heat_balance_run(skin, minutes=1, params=params).forecast_process()
        assert process is not None
        return process[0]

    assert eq(39.0, p) - eq(34.0, p) == pytest.approx(-0.4, abs=1e-9)
    unlimited = replace(p, skin_vasodilation_limit_c=float("inf"))
    assert eq(39.0, unlimited) - eq(34.0, unlimited) == pytest.approx(-1.0, abs=1e-9)
    # Up to 2 °C beyond the cap the limit does not bite: 0.2 × 1.5 = 0.3 °C.
    assert eq(35.5, p) - eq(34.0, p) == pytest.approx(-0.3, abs=1e-9)
