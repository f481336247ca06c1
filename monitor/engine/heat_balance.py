"""heatmon's own core-temperature model, :class:`HeatBalanceEstimator`: ECTemp's heart-rate
observation (:mod:`monitor.engine.kalman`) on top of a two-compartment heat-balance process
driven by heart-rate reserve (heat production) and the core-to-skin gradient (heat loss). Its
parameters (:data:`~monitor.engine.params.HEAT_BALANCE_PARAMS`) are fitted on the training
splits of the validation corpus; values and provenance in ``docs/physiology.md``. Its process
model also drives the forecast (:mod:`monitor.engine.forecast`).
"""

from __future__ import annotations

import math

from monitor.engine.kalman import KalmanEstimator
from monitor.engine.params import (
    DEFAULT_START_CORE_C,
    ECTEMP_B1,
    ECTEMP_B2,
    HEAT_BALANCE_PARAMS,
    ROOM_LOSS_LOG_LIMIT,
    ROOM_SKIN_REF_C,
    HeatBalanceParams,
    ectemp_hr_model,
)
from monitor.profile import Activity, HeatSensitivity

UTH_MET_PER_HR_RATIO = 15.3 / 3.5
"""Uth et al. 2004 (Eur J Appl Physiol 91:111): VO2max ≈ 15.3 ml/kg/min × HRmax / HRrest;
one MET is 3.5 ml/kg/min."""


class HeatBalanceEstimator(KalmanEstimator):
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
