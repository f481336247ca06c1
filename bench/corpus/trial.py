"""One trial of a parameter set: :func:`run_session` runs the engine's step (the real
estimator, forecast, risk state machine and metrics) over one session's windows
(:mod:`bench.corpus.windows`), :func:`score` over many, in about a second a trial instead of
a full replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.corpus.windows import STEP_S, Windows
from monitor.engine.estimators import HeatBalanceEstimator
from monitor.engine.forecast import ForecastParams, forecast_minutes
from monitor.engine.judging import (
    BASELINE_WINDOW_S,
    DEFAULT_RESTING_HR_BPM,
    MIN_FORECAST_SLOPE_C_PER_MIN,
    REST_HR_CEILING_ABOVE_DEFAULT,
    SLOPE_TAU_S,
)
from monitor.engine.params import HeatBalanceParams
from monitor.engine.risk import RiskStateMachine
from monitor.evaluate.metrics import SessionScore, score_session
from monitor.evaluate.summary import Summary, summarize

EstimatorFactory = Callable[["Windows", HeatBalanceParams], HeatBalanceEstimator]
"""Makes the estimator for one session (``bench/corpus/probe.py``: variants that are not the
engine's, to bound what a better estimate would gain)."""


def run_session(
    w: Windows,
    hb: HeatBalanceParams,
    fc: ForecastParams,
    make: EstimatorFactory | None = None,
) -> SessionScore:
    """``PatientEngine._step`` for one session, with these parameters (and the engine's
    estimator unless ``make`` says otherwise)."""
    profile = w.profile
    est = make(w, hb) if make is not None else HeatBalanceEstimator(params=hb)
    risk = RiskStateMachine(
        threshold_c=profile.effective_threshold_c,
        caution_c=profile.caution_at_c,
        horizon_min=profile.forecast_horizon_min,
        lead_min=profile.cool_down_lead_min,
    )
    horizon = max(profile.forecast_horizon_min, profile.cool_down_lead_min)
    base_sum, base_n = 0.0, 0
    base_skin: float | None = None
    calibrated = False
    last_step = w.ends[0] - STEP_S
    slope = 0.0
    last_delta: float | None = None
    times: list[float] = []
    rises: list[float] = []
    cores: list[float] = []
    sds: list[float] = []
    levels: list[str] = []
    for end, hr, skin in zip(w.ends, w.hr, w.skin, strict=True):
        dt = end - last_step
        last_step = end
        if not calibrated:
            if hr is not None:
                base_sum += hr
                base_n += 1
            if base_skin is None and skin is not None:
                base_skin = skin
            if end - w.start < BASELINE_WINDOW_S:
                times.append(end)
                rises.append(0.0)
                cores.append(37.1)
                sds.append(0.0)
                levels.append(risk.level.value)
                continue
            mean = base_sum / base_n if base_n else None
            ceiling = DEFAULT_RESTING_HR_BPM + REST_HR_CEILING_ABOVE_DEFAULT
            resting = DEFAULT_RESTING_HR_BPM if mean is None or mean > ceiling else mean
            est.calibrate(
                baseline_core_c=37.1,
                resting_hr_bpm=resting,
                max_hr_bpm=profile.effective_max_hr,
                baseline_skin_c=base_skin,
                heat_sensitivity=profile.heat_sensitivity,
                activity=profile.activity,
            )
            calibrated = True
        est.step(dt, heart_rate=hr, skin_temp=skin, measured_core=None)
        delta = est.core_c - 37.1
        if last_delta is not None and dt > 0:
            rate = (delta - last_delta) / (dt / 60.0)
            slope += min(1.0, dt / SLOPE_TAU_S) * (rate - slope)
        last_delta = delta
        sd = est.sd_c
        mtt = forecast_minutes(  # (a heat-balance model: it always has a process)
            est,
            rise=delta,
            threshold=profile.effective_threshold_c,
            horizon_min=horizon,
            heat_sensitivity=profile.heat_sensitivity,
            baseline_skin_c=base_skin,
            params=fc,
        )
        if hr is not None:
            risk.update(end, delta, mtt, rising=slope >= MIN_FORECAST_SLOPE_C_PER_MIN)
        times.append(end)
        rises.append(delta)
        cores.append(est.core_c)
        sds.append(sd)
        levels.append(risk.level.value)
    return score_session(
        patient=w.patient,
        session=w.patient,
        threshold_c=profile.effective_threshold_c,
        times=times,
        est_rise=rises,
        est_core=cores,
        est_sd=sds,
        levels=levels,
        truth=w.truth,
        start=w.start,
    )


def score(windows: Sequence[Windows], hb: HeatBalanceParams, fc: ForecastParams) -> Summary:
    return summarize([run_session(w, hb, fc) for w in windows])
