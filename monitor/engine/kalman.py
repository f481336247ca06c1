"""The one-state extended Kalman filter on heart rate that both of heatmon's estimators share
(:class:`KalmanCore`, :class:`KalmanEstimator`), and :class:`ECTempEstimator`, the published
ECTemp filter itself (Buller et al., Physiol. Meas. 34:781, 2013). **ECTemp is patented in the
US (US 10702165)**: check your rights before deploying it there. The interface and the
registry are in :mod:`monitor.engine.estimators`; heatmon's own model in
:mod:`monitor.engine.heat_balance`.
"""

from __future__ import annotations

import math

from monitor.engine.params import (
    DEFAULT_START_CORE_C,
    ECTEMP_A,
    ECTEMP_B1,
    ECTEMP_B2,
    ECTEMP_GAMMA,
    ECTEMP_SIGMA2,
    MEASURED_CORE_SIGMA2,
    ectemp_hr_model,
)
from monitor.profile import Activity, HeatSensitivity


class KalmanCore:
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


class KalmanEstimator:
    """What both estimators share: the filter, its readout, the personal calibration and
    the observation step."""

    __slots__ = ("_kf",)

    def __init__(
        self, *, start_core_c: float = DEFAULT_START_CORE_C, start_variance: float = 0.0
    ) -> None:
        self._kf = KalmanCore(start_core_c=start_core_c, start_variance=start_variance)

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


class ECTempEstimator(KalmanEstimator):
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
