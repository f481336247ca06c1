"""The physiological forecast against steps of the process model worked out by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from monitor.engine.estimators import HeatBalanceEstimator
from monitor.engine.forecast import minutes_to_likely_threshold
from monitor.engine.params import HeatBalanceParams
from monitor.profile import Activity, HeatSensitivity

# Round numbers, independent of the fitted defaults.
PARAMS = HeatBalanceParams(
    production_c_per_min=0.05,
    loss_per_min=0.02,
    skin_coupling=0.3,
    process_var_per_min=0.0005,
    hr_obs_var=400.0,
    impaired_sweating_loss_factor=0.5,
    workload_tau_s=180.0,
    model_sd_per_c=0.2,
)


def test_forecast_steps_by_hand() -> None:
    # rise 0.3, variance 0.0004 (SD 0.02), heading for 0.8 at L = 0.1/min; q = 0.001/min;
    # threshold 0.5 with z = 1 (84 %). Δ = 0.5 min: a = e^(−0.05) = 0.951229, qΔ = 0.0005.
    #   t = 0:   g = 0.3 + 0.02 = 0.32
    #   t = 0.5: m = 0.8 − 0.5·a = 0.324385; v = a²·0.0004 + 0.0005 = 0.00086193; g = 0.353744
    #   t = 1.0: m = 0.347581; v = 0.00127991; g = 0.383357
    #   t = 1.5: m = 0.369646; v = 0.00165811; g = 0.410366
    #   t = 2.0: m = 0.390635; v = 0.00200032; g = 0.435360
    #   t = 2.5: m = 0.410600; v = 0.00230997; g = 0.458662
    #   t = 3.0: m = 0.429591; v = 0.00259014; g = 0.480484
    #   t = 3.5: m = 0.447656; v = 0.00284366; g = 0.500982 ≥ 0.5
    # Interpolated: 3.0 + 0.5·(0.5 − 0.480484)/(0.500982 − 0.480484) = 3.47605 min.
    mtt = minutes_to_likely_threshold(
        rise=0.3,
        variance=0.0004,
        equilibrium=0.8,
        loss_per_min=0.1,
        threshold=0.5,
        horizon_min=10.0,
        z=1.0,
        forecast_var_per_min=0.001,
    )
    assert mtt == pytest.approx(3.47605, abs=1e-4)


def test_the_forecast_error_grows_with_the_further_rise_it_predicts() -> None:
    # The hand-worked case above with increment_sd_per_c = 0.5: the SD of step t adds
    # 0.5·(m(t) − 0.3) in quadrature, so a rise forecast to keep climbing is warned sooner.
    #   t = 0.5: m = 0.324385, up = 0.024385; g = m + √(0.00086193 + 0.25·up²) = 0.356175
    #   t = 1.0: up = 0.047581; g = 0.390545      t = 1.5: up = 0.069646; g = 0.423225
    #   t = 2.0: up = 0.090635; g = 0.454305      t = 2.5: up = 0.110600; g = 0.483866
    #   t = 3.0: up = 0.129591; g = 0.511984 ≥ 0.5
    # Interpolated: 2.5 + 0.5·(0.5 − 0.483866)/(0.511984 − 0.483866) = 2.78690 min.
    kw = dict(
        variance=0.0004,
        loss_per_min=0.1,
        threshold=0.5,
        horizon_min=10.0,
        z=1.0,
        forecast_var_per_min=0.001,
    )
    mtt = minutes_to_likely_threshold(rise=0.3, equilibrium=0.8, increment_sd_per_c=0.5, **kw)
    assert mtt == pytest.approx(2.78690, abs=1e-4)
    # A rise heading down (equilibrium under it) gets no extra margin: the same as without
    # (here the growing forecast variance alone reaches 0.47 with z = 2 within half a minute).
    down = {**kw, "rise": 0.42, "equilibrium": 0.3, "z": 2.0, "threshold": 0.47}
    plain = minutes_to_likely_threshold(**down)
    assert plain is not None
    assert minutes_to_likely_threshold(increment_sd_per_c=0.5, **down) == plain


def test_a_rise_that_levels_off_below_the_threshold_never_alerts() -> None:
    # Climbing fast (0.3 → equilibrium 0.45) but the process levels off below 0.5: a straight
    # line would cross within minutes; the process never does.
    mtt = minutes_to_likely_threshold(
        rise=0.3,
        variance=0.0,
        equilibrium=0.45,
        loss_per_min=0.2,
        threshold=0.5,
        horizon_min=60.0,
        z=0.0,
        forecast_var_per_min=0.0,
    )
    assert mtt is None


def test_more_uncertainty_or_a_higher_probability_demand_alerts_sooner() -> None:
    kw = dict(rise=0.3, equilibrium=0.8, loss_per_min=0.1, threshold=0.5, horizon_min=10.0)
    base = minutes_to_likely_threshold(variance=0.0004, z=0.0, forecast_var_per_min=0.0, **kw)
    wide = minutes_to_likely_threshold(variance=0.0004, z=1.0, forecast_var_per_min=0.002, **kw)
    assert base is not None and wide is not None
    # z = 0 and no noise: the mean crossing, 0.8 − 0.5·e^(−0.1t) = 0.5 → t = 10·ln(5/3) = 5.108
    # (to within the linear interpolation between half-minute steps).
    assert base == pytest.approx(10 * math.log(5 / 3), abs=0.01)
    assert wide < base
    # Already likely over the threshold: now.
    assert minutes_to_likely_threshold(variance=0.04, z=1.0, forecast_var_per_min=0.0, **kw) == 0.0


def _one_step(sensitivity: HeatSensitivity) -> HeatBalanceEstimator:
    est = HeatBalanceEstimator(params=PARAMS)
    est.calibrate(
        baseline_core_c=37.0,
        resting_hr_bpm=60.0,
        max_hr_bpm=180.0,
        baseline_skin_c=33.0,
        heat_sensitivity=sensitivity,
    )
    est.step(60.0, heart_rate=120.0, skin_temp=34.0, measured_core=None)
    return est


def test_process_step_and_forecast_inputs_by_hand() -> None:
    # HR 120 with rest 60, max 180: r = 0.5; skin +1 °C → shift 0.3·1 = 0.3.
    # Time update (1 min): x⁻ = 37 + 0.05·0.5 − 0.02·(0 − 0.3) = 37.031; v⁻ = 0.0005.
    # HR observation: c = 2·(−4.5714)·37.031 + 384.4286 = 45.861573; expected HR
    #   model(37.031) − model(37.0) + 60 = 61.426102; k = v⁻c/(c²v⁻ + 400) = 5.717664e−5;
    #   x = 37.031 + k·(120 − 61.426102) = 37.034349; v = (1 − kc)v⁻ = 0.00049869.
    # Band: √(v + (0.2·0.034349)²) = 0.023364.
    est = _one_step(HeatSensitivity.NONE)
    assert est.core_c == pytest.approx(37.034349, abs=1e-6)
    assert est.variance == pytest.approx(0.00049869, abs=1e-8)
    assert est.sd_c == pytest.approx(0.023364, abs=1e-6)
    # The forecast runs forward under the smoothed workload r̄ = (60/180)·0.5 = 1/6:
    # equilibrium = 0.05·(1/6)/0.02 + 0.3 = 0.716667, loss 0.02.
    eq, loss, var = est.forecast_process() or (0.0, 0.0, 0.0)
    assert eq == pytest.approx(0.716667, abs=1e-6)
    assert loss == pytest.approx(0.02)
    assert var == pytest.approx(0.00049869, abs=1e-8)  # the filter's, without the model term


def test_impaired_sweating_changes_the_model_not_only_the_threshold() -> None:
    # Loss × 0.5 = 0.01: x⁻ = 37 + 0.025 + 0.01·0.3 = 37.028 (before the HR observation),
    # and the forecast heads for 0.05·(1/6)/0.01 + 0.3 = 1.133333.
    normal = _one_step(HeatSensitivity.NONE)
    impaired = _one_step(HeatSensitivity.IMPAIRED_SWEATING)
    eq, loss, _ = impaired.forecast_process() or (0.0, 0.0, 0.0)
    assert loss == pytest.approx(0.01)
    assert eq == pytest.approx(1.133333, abs=1e-6)
    # Same inputs, slower heat loss: the same threshold is forecast sooner.
    kw = dict(threshold=0.5, horizon_min=60.0, z=0.0, forecast_var_per_min=0.0)
    eq_n, loss_n, _ = normal.forecast_process() or (0.0, 0.0, 0.0)
    t_normal = minutes_to_likely_threshold(
        rise=normal.core_c - 37.0, variance=0.0, equilibrium=eq_n, loss_per_min=loss_n, **kw
    )
    t_impaired = minutes_to_likely_threshold(
        rise=impaired.core_c - 37.0, variance=0.0, equilibrium=eq, loss_per_min=loss, **kw
    )
    assert t_normal is not None and t_impaired is not None
    assert t_impaired < t_normal


def test_intermittent_work_shifts_the_heart_rate_observation_and_the_room_the_fast_rise() -> None:
    # Strength with 30 % of the smoothed heart-rate rise put down to the work itself: the
    # observation expects 0.3·r̄·(180 − 60) = 0.3·(1/6)·120 = 6 bpm more. Same time update as
    # above (x⁻ = 37.031, k = 5.717664e−5); expected HR 61.426102 + 6 = 67.426102:
    # x = 37.031 + k·(120 − 67.426102) = 37.034006 (aerobic: 37.034349).
    params = replace(PARAMS, intermittent_hr_work_share=0.3)

    def calibrated(
        p: HeatBalanceParams, skin0: float, skin: float, activity: Activity
    ) -> HeatBalanceEstimator:
        """Rest 60 / max 180 bpm, skin₀ at rest; one minute at 120 bpm with this skin."""
        e = HeatBalanceEstimator(params=p)
        e.calibrate(
            baseline_core_c=37.0,
            resting_hr_bpm=60.0,
            max_hr_bpm=180.0,
            baseline_skin_c=skin0,
            activity=activity,
        )
        e.step(
            60.0,
            heart_rate=120.0,
            skin_temp=skin,
            measured_core=None,
        )
        return e

    strength = calibrated(params, 33.0, 34.0, Activity.STRENGTH)
    assert strength.core_c == pytest.approx(37.034006, abs=1e-6)
    aerobic = calibrated(params, 33.0, 34.0, Activity.AEROBIC)
    assert aerobic.core_c == pytest.approx(37.034349, abs=1e-6)
    # The fast compartment's gain scales with e^(0.2·(skin₀ − 33)): its equilibrium under
    # r̄ = 1/6 is 0.1·e^(0.2)·(1/6)/0.25 = 0.081427 in a warm room (skin₀ 34 °C) and
    # 0.1·e^(−0.4)·(1/6)/0.25 = 0.044688 in a cool one (31 °C).
    fast = replace(
        PARAMS, fast_production_c_per_min=0.1, fast_loss_per_min=0.25, fast_room_slope=0.2
    )
    eqs = [
        (calibrated(fast, skin0, skin0, Activity.AEROBIC).forecast_fast() or (0.0, 0.0, 0.0))[1]
        for skin0 in (34.0, 31.0)
    ]
    assert eqs == pytest.approx([0.081427, 0.044688], abs=1e-6)


def test_heat_sensitivity_is_validated_in_the_profile() -> None:
    from pydantic import ValidationError

    from monitor.profile import PatientProfile

    profile = PatientProfile.model_validate({"id": "p", "heat_sensitivity": "uhthoff_history"})
    assert profile.heat_sensitivity is HeatSensitivity.UHTHOFF_HISTORY
    assert PatientProfile(id="p").heat_sensitivity is HeatSensitivity.NONE
    with pytest.raises(ValidationError, match="heat_sensitivity"):
        PatientProfile.model_validate({"id": "p", "heat_sensitivity": "very"})


def _first_cool_down(sensitivity: HeatSensitivity) -> float | None:
    from adapters.simulator import SCENARIOS, SimulatedPatient
    from monitor.engine import MonitorEngine
    from monitor.model import Level, Sample, SampleKind
    from monitor.profile import PatientProfile

    sc = SCENARIOS["hot_day_aerobic"]
    sim = SimulatedPatient(scenario=sc, seed=0)
    profile = PatientProfile(id="p", age=sc.age, heat_sensitivity=sensitivity)
    engine = MonitorEngine(profiles={"p": profile})
    while not sim.finished:
        v = sim.step(1.0)
        for kind, value in (
            (SampleKind.HEART_RATE, v.heart_rate_bpm),
            (SampleKind.SKIN_TEMP, v.skin_temp_c),
        ):
            for e in engine.ingest(Sample("p", kind, value, 1e9 + v.time_s)).events:
                if e.level is Level.COOL_DOWN:
                    return v.time_s
    return None


def test_a_history_of_uhthoff_warns_earlier_with_the_same_physiology() -> None:
    # Same workout, same sweating: only the alert margin differs (z 1.5 instead of 1.25).
    normal = _first_cool_down(HeatSensitivity.NONE)
    uhthoff = _first_cool_down(HeatSensitivity.UHTHOFF_HISTORY)
    assert normal is not None and uhthoff is not None
    assert uhthoff < normal


def test_fast_compartment_step_by_hand() -> None:
    """Rise 0.2 °C of which 0.1 in the fast part. Slow part heads for 0.3 at 0.1 /min, fast
    part for 0.2 at 0.5 /min; no noise, z = 0. One half-minute step by hand:
    u = 0.3 + (0.1 − 0.3)·e^(−0.05) = 0.109754, f = 0.2 + (0.1 − 0.2)·e^(−0.25) = 0.122120,
    rise 0.231874; the threshold 0.23 is crossed at 0.5·(0.23 − 0.2)/0.031874 = 0.4706 min.
    The same rise as one slow compartment heading for 0.5 gets only to
    0.5 + (0.2 − 0.5)·e^(−0.05) = 0.214631 in that step: the fast part warns earlier."""
    kw = dict(variance=0.0, threshold=0.23, horizon_min=10.0, z=0.0, forecast_var_per_min=0.0)
    two = minutes_to_likely_threshold(
        rise=0.2,
        equilibrium=0.3,
        loss_per_min=0.1,
        fast_rise=0.1,
        fast_equilibrium=0.2,
        fast_loss_per_min=0.5,
        **kw,
    )
    assert two == pytest.approx(0.4706, abs=1e-3)
    one = minutes_to_likely_threshold(rise=0.2, equilibrium=0.5, loss_per_min=0.1, **kw)
    assert one is not None and one > 0.5


def test_the_heart_rate_pull_by_hand() -> None:
    """The first hand-worked case (rise 0.3, variance 0.0004, slow part heading for 0.8 at
    L = 0.1 /min, q = 0.001, z = 1, threshold 0.5) with the heart-rate observation pulling at
    G = 0.1 /min towards 0.6: the slow part heads for (0.1·0.8 + 0.1·0.6)/0.2 = 0.7 at
    0.2 /min (a = e^(−0.1) = 0.904837); the variance grows as before (e^(−0.05)).
      t = 0.5: m = 0.338065; v = 0.00086193; g = 0.367424
      t = 1.0: m = 0.372508; g = 0.408284     t = 1.5: m = 0.403673; g = 0.444393
      t = 2.0: m = 0.431872; g = 0.476597     t = 2.5: m = 0.457388; g = 0.505450 ≥ 0.5
    Interpolated: 2.0 + 0.5·(0.5 − 0.476597)/(0.505450 − 0.476597) = 2.40556 min (without
    the pull 3.47605: the estimate the heart rate keeps pulling up gets there sooner)."""
    kw = dict(
        rise=0.3,
        variance=0.0004,
        equilibrium=0.8,
        loss_per_min=0.1,
        threshold=0.5,
        horizon_min=10.0,
        z=1.0,
        forecast_var_per_min=0.001,
    )
    mtt = minutes_to_likely_threshold(pull_per_min=0.1, pull_rise=0.6, **kw)
    assert mtt == pytest.approx(2.40556, abs=1e-4)
    # A heart rate that implies a rise under the process's pulls the path down instead.
    low = minutes_to_likely_threshold(pull_per_min=0.1, pull_rise=0.0, **kw)
    assert low is None or low > 3.47605


def test_forecast_pull_and_capacity_inputs_by_hand() -> None:
    # After the one-minute step of test_process_step_and_forecast_inputs_by_hand: x = 37.034349,
    # v = 0.00049869; smoothed heart rate 60 + (1/6)·120 = 80 bpm. c at x = 45.830954; the
    # expected heart rate model(x) − model(37) + 60 = 61.579641, innovation 18.420359.
    # Gain c²·v/400 = 0.0026187 /min; the rise it pulls towards 0.034349 + 18.420359/c = 0.436269.
    est = HeatBalanceEstimator(params=replace(PARAMS, pull_gain_factor=1.0))
    est.calibrate(baseline_core_c=37.0, resting_hr_bpm=60.0, max_hr_bpm=180.0, baseline_skin_c=33.0)
    est.step(60.0, heart_rate=120.0, skin_temp=34.0, measured_core=None)
    gain, rise = est.forecast_pull() or (0.0, 0.0)
    assert gain == pytest.approx(0.0026187, rel=1e-4)
    assert rise == pytest.approx(0.436269, abs=1e-5)
    assert _one_step(HeatSensitivity.NONE).forecast_pull() is None  # pull_gain_factor 0: off
    # Capacity (Uth et al. 2004): 15.3/3.5 · 180/60 = 13.114286 METs; with the exponent 1 and
    # the reference 11 METs production × 1.192208: equilibrium 0.05·1.192208·(1/6)/0.02 + 0.3.
    fit = HeatBalanceEstimator(params=replace(PARAMS, capacity_exponent=1.0))
    fit.calibrate(baseline_core_c=37.0, resting_hr_bpm=60.0, max_hr_bpm=180.0, baseline_skin_c=33.0)
    fit.step(60.0, heart_rate=120.0, skin_temp=34.0, measured_core=None)
    eq, _, _ = fit.forecast_process() or (0.0, 0.0, 0.0)
    assert eq == pytest.approx(0.796753, abs=1e-6)


def test_the_alert_margin_grows_with_a_warm_room() -> None:
    """z + z_room_slope·(resting skin − 33 °C), the skin offset held within ±3 °C: with z 2.0
    (heat-sensitive 2.25) and a slope of 0.1 per °C, a room that warms the resting skin to
    35 °C gives 2.2 (2.45), a cool one at 31 °C 1.8, a 38 °C reading counts as 36 °C (2.3);
    no skin reading: z as it is."""
    from monitor.engine.forecast import ForecastParams

    fc = ForecastParams(forecast_var_per_min=0.001, z=2.0, z_heat_sensitive=2.25, z_room_slope=0.1)
    none, impaired = HeatSensitivity.NONE, HeatSensitivity.IMPAIRED_SWEATING
    assert fc.z_for(none, 35.0) == pytest.approx(2.2)
    assert fc.z_for(impaired, 35.0) == pytest.approx(2.45)
    assert fc.z_for(none, 31.0) == pytest.approx(1.8)
    assert fc.z_for(none, 38.0) == pytest.approx(2.3)
    assert fc.z_for(none, None) == 2.0
    assert replace(fc, z_room_slope=0.0).z_for(none, 35.0) == 2.0
