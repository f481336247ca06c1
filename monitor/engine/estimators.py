"""Core-temperature estimators, behind one small interface.

Two models ship:

* :class:`ECTempEstimator` — the published ECTemp extended Kalman filter on heart rate
  (Buller et al., Physiol. Meas. 34:781, 2013). **Patented in the US (US 10702165)**:
  check your rights before deploying it there; the estimator is pluggable for that reason.
* :class:`HeatBalanceEstimator` — heatmon's own model: ECTemp's heart-rate observation on top
  of a two-compartment heat-balance process driven by heart-rate reserve (heat production) and the
  core-to-skin gradient (heat loss), so a hot skin speeds the predicted rise and a cool skin
  slows it. Without skin temperature it falls back to the heart-rate-only process. Its
  parameters (:data:`HEAT_BALANCE_PARAMS`) are fitted on the training split of the validation
  corpus (``bench/corpus/fit.py``); values and provenance in ``docs/physiology.md``. Its process
  model also drives the forecast (:mod:`monitor.engine.forecast`).

Both may also take a measured core temperature (CORE sensor, ingestible pill) as a direct
observation. Both are individualised the same way: the heart-rate observation model is shifted
so that the patient's resting heart rate maps to their baseline core temperature.

An estimator is pure arithmetic on a few floats: no I/O, no clock, a few hundred bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from monitor.engine.params import (
    DEFAULT_START_CORE_C,
    ECTEMP_A,
    ECTEMP_B1,
    ECTEMP_B2,
    ECTEMP_GAMMA,
    ECTEMP_SIGMA2,
    HEAT_BALANCE_PARAMS,
    MEASURED_CORE_SIGMA2,
    ROOM_LOSS_LOG_LIMIT,
    ROOM_SKIN_REF_C,
    HeatBalanceParams,
    ectemp_hr_model,
)
from monitor.profile import Activity, HeatSensitivity

UTH_MET_PER_HR_RATIO = 15.3 / 3.5
"""Uth et al. 2004 (Eur J Appl Physiol 91:111): VO2max ≈ 15.3 ml/kg/min × HRmax / HRrest;
one MET is 3.5 ml/kg/min."""


class Estimator(Protocol):
    """What the engine needs of a core-temperature estimator."""

    name: str

    @property
    def core_c(self) -> float: ...

    @property
    def sd_c(self) -> float:
        """One standard deviation of the estimate (°C)."""
        ...

    @property
    def filter_sd_c(self) -> float:
        """The filter's own standard deviation (°C): how far the estimate may stray from one
        session to the next for the same person, without the model's per-person error that
        :attr:`sd_c` adds (a threshold set on the estimate absorbs that error)."""
        ...

    def calibrate(
        self,
        *,
        baseline_core_c: float,
        resting_hr_bpm: float,
        max_hr_bpm: float,
        baseline_skin_c: float | None,
        heat_sensitivity: HeatSensitivity = HeatSensitivity.NONE,
        activity: Activity = Activity.AEROBIC,
    ) -> None:
        """Set the patient's own baseline (from the rest period or the profile)."""
        ...

    def forecast_process(self) -> tuple[float, float, float] | None:
        """``(equilibrium rise, loss rate per minute, filter variance)`` under the current
        workload and skin, to run the process forward (:mod:`monitor.engine.forecast`);
        ``None`` for a model without a physiological process (the engine then extrapolates
        the trend)."""
        ...

    def forecast_fast(self) -> tuple[float, float, float] | None:
        """``(its part of the rise, its equilibrium, its loss rate per minute)`` of a fast
        compartment the forecast runs beside the process of :meth:`forecast_process`
        (whose equilibrium is then the rest of the rise's); ``None`` if the model has none."""
        ...

    def forecast_pull(self) -> tuple[float, float] | None:
        """``(gain per minute, rise)``: how fast the heart-rate observation pulls the estimate,
        and towards which rise, under the current smoothed heart rate; ``None`` if the model's
        forecast has no such term."""
        ...

    def step(
        self,
        dt_s: float,
        *,
        heart_rate: float | None,
        skin_temp: float | None,
        measured_core: float | None,
    ) -> None:
        """Advance by ``dt_s`` seconds and take in the mean readings of that interval."""
        ...


class _KalmanCore:
    """The one-state extended Kalman filter both estimators share."""

    __slots__ = ("hr_offset", "v", "x")

    def __init__(self, *, start_core_c: float, start_variance: float) -> None:
        self.x = start_core_c
        self.v = start_variance
        self.hr_offset = 0.0

    def observe_hr(self, heart_rate: float, variance: float, extra_offset: float = 0.0) -> None:
        x = self.x
        c = 2.0 * ECTEMP_B2 * x + ECTEMP_B1
        k = self.v * c / (c * c * self.v + variance)
        self.x = x + k * (heart_rate - (ectemp_hr_model(x) + self.hr_offset + extra_offset))
        self.v = (1.0 - k * c) * self.v

    def observe_core(self, core: float, variance: float) -> None:
        k = self.v / (self.v + variance)
        self.x += k * (core - self.x)
        self.v *= 1.0 - k


class _KalmanEstimator:
    """What both estimators share: the filter, its readout, the personal calibration and
    the observation step."""

    __slots__ = ("_kf",)

    def __init__(
        self, *, start_core_c: float = DEFAULT_START_CORE_C, start_variance: float = 0.0
    ) -> None:
        self._kf = _KalmanCore(start_core_c=start_core_c, start_variance=start_variance)

    @property
    def core_c(self) -> float:
        return self._kf.x

    @property
    def sd_c(self) -> float:
        return math.sqrt(max(self._kf.v, 0.0))

    @property
    def filter_sd_c(self) -> float:
        return math.sqrt(max(self._kf.v, 0.0))

    @property
    def variance(self) -> float:
        return self._kf.v

    def calibrate(
        self,
        *,
        baseline_core_c: float,
        resting_hr_bpm: float,
        max_hr_bpm: float,
        baseline_skin_c: float | None,
        heat_sensitivity: HeatSensitivity = HeatSensitivity.NONE,
        activity: Activity = Activity.AEROBIC,
    ) -> None:
        self._kf.x = baseline_core_c
        self._kf.hr_offset = resting_hr_bpm - ectemp_hr_model(baseline_core_c)

    def forecast_process(self) -> tuple[float, float, float] | None:
        return None

    def forecast_fast(self) -> tuple[float, float, float] | None:
        return None

    def forecast_pull(self) -> tuple[float, float] | None:
        return None

    def _observe(
        self,
        q: float,
        heart_rate: float | None,
        measured_core: float | None,
        hr_var: float = ECTEMP_SIGMA2,
        hr_extra_offset: float = 0.0,
    ) -> None:
        if heart_rate is not None:
            self._kf.observe_hr(heart_rate, hr_var / q, hr_extra_offset)
        if measured_core is not None:
            self._kf.observe_core(measured_core, MEASURED_CORE_SIGMA2)


class ECTempEstimator(_KalmanEstimator):
    """ECTemp: random-walk core temperature observed through heart rate.

    With ``step(60, heart_rate=…)`` and no calibration this is exactly the published filter.
    Shorter steps scale the process variance by ``dt/60`` and the observation variance by
    ``60/dt``, so a minute holds the same information whatever the step.
    """

    name = "ectemp"
    __slots__ = ()

    def step(
        self,
        dt_s: float,
        *,
        heart_rate: float | None,
        skin_temp: float | None,
        measured_core: float | None,
    ) -> None:
        q = dt_s / 60.0
        kf = self._kf
        kf.v = ECTEMP_A * ECTEMP_A * kf.v + ECTEMP_GAMMA * q
        self._observe(q, heart_rate, measured_core)


class HeatBalanceEstimator(_KalmanEstimator):
    """Heat-balance process + ECTemp heart-rate observation (+ skin temperature when present).

    Process, per minute, for the rise = core − baseline = fast part f + slow part u:
    df/dt = P_f·r − L_f·f and du/dt = P·max(0, r − r₀) − L·[u − S], with r the heart-rate
    reserve fraction (heat production), L the loss rate (× the impaired sweating factor for
    such a profile, × the room factor) and S the skin shift: s·(skin warming) up to
    ``skin_warming_cap_c``, lowered by ``skin_vasodilation_coupling`` per °C beyond it (by at
    most ``skin_vasodilation_limit_c``). The heart-rate observation attributes a share of the
    smoothed heart-rate rise to the work rather than to the core: a fixed share for strength,
    balance and flexibility, and for aerobic work a share that fades out as the skin warms. A
    skin reading is held for ``SKIN_HOLD_S``; after that the model assumes the skin is back at
    its baseline, which is the heart-rate-only fallback (no aerobic share).
    """

    name = "heat_balance"
    SKIN_HOLD_S = 120.0
    __slots__ = (
        "_aerobic",
        "_baseline",
        "_fast",
        "_fast_production",
        "_gate",
        "_hr_age_s",
        "_hr_max",
        "_hr_rest",
        "_hr_var",
        "_loss",
        "_params",
        "_production",
        "_r_smooth",
        "_skin",
        "_skin0",
        "_skin_age_s",
        "_skin_shift",
        "_work_share",
    )

    def __init__(
        self,
        *,
        start_core_c: float = DEFAULT_START_CORE_C,
        start_variance: float = 0.0,
        params: HeatBalanceParams = HEAT_BALANCE_PARAMS,
    ) -> None:
        super().__init__(start_core_c=start_core_c, start_variance=start_variance)
        self._params = params
        self._loss = params.loss_per_min
        self._baseline = start_core_c
        self._hr_rest = 70.0
        self._hr_max = 180.0
        self._skin0: float | None = None
        self._skin: float | None = None
        self._skin_age_s = math.inf
        self._skin_shift = 0.0
        self._r_smooth = 0.0
        self._fast = 0.0
        self._work_share = 0.0
        self._aerobic = True
        self._hr_var = params.hr_obs_var
        self._fast_production = params.fast_production_c_per_min
        self._production = params.production_c_per_min
        self._hr_age_s = math.inf
        self._gate = 1.0

    @property
    def params(self) -> HeatBalanceParams:
        return self._params

    @property
    def sd_c(self) -> float:
        """Filter SD combined with the model's own uncertainty (grows with the rise)."""
        m = self._params.model_sd_per_c * (self._kf.x - self._baseline)
        return math.sqrt(max(self._kf.v, 0.0) + m * m)

    def calibrate(
        self,
        *,
        baseline_core_c: float,
        resting_hr_bpm: float,
        max_hr_bpm: float,
        baseline_skin_c: float | None,
        heat_sensitivity: HeatSensitivity = HeatSensitivity.NONE,
        activity: Activity = Activity.AEROBIC,
    ) -> None:
        super().calibrate(
            baseline_core_c=baseline_core_c,
            resting_hr_bpm=resting_hr_bpm,
            max_hr_bpm=max_hr_bpm,
            baseline_skin_c=baseline_skin_c,
        )
        self._baseline = baseline_core_c
        self._hr_rest = resting_hr_bpm
        self._hr_max = max(max_hr_bpm, resting_hr_bpm + 20.0)
        self._skin0 = baseline_skin_c
        p = self._params
        factor = 1.0
        if heat_sensitivity is HeatSensitivity.IMPAIRED_SWEATING:
            factor = p.impaired_sweating_loss_factor
        if baseline_skin_c is not None and p.loss_skin_slope:
            x = -p.loss_skin_slope * (baseline_skin_c - ROOM_SKIN_REF_C)
            factor *= math.exp(min(ROOM_LOSS_LOG_LIMIT, max(-ROOM_LOSS_LOG_LIMIT, x)))
        self._loss = p.loss_per_min * factor
        capacity = 1.0
        if p.capacity_exponent:
            met = UTH_MET_PER_HR_RATIO * self._hr_max / max(resting_hr_bpm, 30.0)
            capacity = (met / p.capacity_ref_met) ** p.capacity_exponent
        self._production = p.production_c_per_min * capacity
        fast_factor = capacity
        if baseline_skin_c is not None and p.fast_room_slope:
            x = p.fast_room_slope * (baseline_skin_c - ROOM_SKIN_REF_C)
            fast_factor *= math.exp(min(ROOM_LOSS_LOG_LIMIT, max(-ROOM_LOSS_LOG_LIMIT, x)))
        self._fast_production = p.fast_production_c_per_min * fast_factor
        intermittent = activity is not Activity.AEROBIC
        self._aerobic = not intermittent
        self._work_share = p.intermittent_hr_work_share if intermittent else 0.0
        self._hr_var = p.hr_obs_var * (p.intermittent_hr_var_factor if intermittent else 1.0)

    def forecast_process(self) -> tuple[float, float, float] | None:
        p = self._params
        loss = self._loss
        r = self._r_smooth - p.production_r_offset
        eq = self._production * (r if r > 0.0 else 0.0) / loss + self._skin_shift
        return eq, loss, max(self._kf.v, 0.0)

    def forecast_fast(self) -> tuple[float, float, float] | None:
        """The fast compartment for the forecast: ``(its rise now, its equilibrium under the
        smoothed workload, its loss rate per minute)``; the slow one is the rest of the rise."""
        p = self._params
        if not p.fast_production_c_per_min:
            return None
        eq = self._fast_production * self._gate * self._r_smooth / p.fast_loss_per_min
        return self._fast, eq, p.fast_loss_per_min

    def forecast_pull(self) -> tuple[float, float] | None:
        """The heart-rate observation's pull under the smoothed heart rate (Kalman–Bucy: gain
        c²·v / R per minute, c the slope of the observation curve at the estimate, v the
        filter variance, R the one-minute heart-rate variance; the rise it pulls towards
        from the innovation, linearised at the estimate as the filter does). ``None`` when
        ``pull_gain_factor`` is 0 or no heart rate has been seen for a while."""
        p = self._params
        if not p.pull_gain_factor or self._hr_age_s > self.SKIN_HOLD_S:
            return None
        kf = self._kf
        x = kf.x
        c = 2.0 * ECTEMP_B2 * x + ECTEMP_B1
        if c <= 1.0:
            return None
        hr = self._hr_rest + self._r_smooth * (self._hr_max - self._hr_rest)
        extra = self._work_share * self._r_smooth * (self._hr_max - self._hr_rest)
        innovation = hr - (ectemp_hr_model(x) + kf.hr_offset + extra)
        gain = p.pull_gain_factor * c * c * max(kf.v, 0.0) / self._hr_var
        return gain, x - self._baseline + innovation / c

    def step(
        self,
        dt_s: float,
        *,
        heart_rate: float | None,
        skin_temp: float | None,
        measured_core: float | None,
    ) -> None:
        p = self._params
        q = dt_s / 60.0
        kf = self._kf
        if skin_temp is not None:
            self._skin = skin_temp
            self._skin_age_s = 0.0
            if self._skin0 is None:
                self._skin0 = skin_temp
        else:
            self._skin_age_s += dt_s
        warming: float | None = None
        if (
            self._skin is not None
            and self._skin0 is not None
            and self._skin_age_s <= self.SKIN_HOLD_S
        ):
            warming = max(0.0, self._skin - self._skin0)
        skin_shift = 0.0
        if warming is not None:
            cap = p.skin_warming_cap_c
            if warming > cap:
                cooling = p.skin_vasodilation_coupling * (warming - cap)
                limit = p.skin_vasodilation_limit_c
                skin_shift = p.skin_coupling * cap - (cooling if cooling < limit else limit)
            else:
                skin_shift = p.skin_coupling * warming
        self._skin_shift = skin_shift
        if p.fast_skin_gate_c:
            gate = 1.0
            if warming is not None:
                opened = min(1.0, warming / p.fast_skin_gate_c)
                gate = p.fast_gate_floor + (1.0 - p.fast_gate_floor) * opened
            self._gate = gate
        if self._aerobic:
            share = 0.0
            if warming is not None and p.aerobic_hr_work_share:
                left = 1.0 - warming / p.aerobic_share_fade_c
                share = p.aerobic_hr_work_share * (left if left > 0.0 else 0.0)
            self._work_share = share
        # Time update: Euler step of the heat balance, linearised for the variance.
        if heart_rate is not None:
            self._hr_age_s = 0.0
            r = (heart_rate - self._hr_rest) / (self._hr_max - self._hr_rest)
            r = 0.0 if r < 0.0 else (1.2 if r > 1.2 else r)
        else:
            self._hr_age_s += dt_s
            r = 0.0
        w = dt_s / p.workload_tau_s
        self._r_smooth += (w if w < 1.0 else 1.0) * (r - self._r_smooth)
        loss = self._loss
        fast = self._fast
        if p.fast_production_c_per_min:
            fast_eq = self._fast_production * self._gate * r / p.fast_loss_per_min
            self._fast = fast_eq + (fast - fast_eq) * math.exp(-p.fast_loss_per_min * q)
        slow = kf.x - self._baseline - fast
        r_slow = r - p.production_r_offset
        production = self._production * (r_slow if r_slow > 0.0 else 0.0)
        kf.x += q * (production - loss * (slow - skin_shift)) + self._fast - fast
        a = 1.0 - loss * q
        kf.v = a * a * kf.v + p.process_var_per_min * q
        extra = self._work_share * self._r_smooth * (self._hr_max - self._hr_rest)
        self._observe(q, heart_rate, measured_core, self._hr_var, extra)


EstimatorFactory = Callable[[], Estimator]

ESTIMATORS: Mapping[str, EstimatorFactory] = MappingProxyType(
    {
        ECTempEstimator.name: ECTempEstimator,
        HeatBalanceEstimator.name: HeatBalanceEstimator,
    }
)
"""Estimators by the name used in ``[engine] estimator``."""
