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

An estimator is pure arithmetic on a few floats: no I/O, no clock, a few hundred bytes. This
module holds the interface (:class:`Estimator`) and the registry (:data:`ESTIMATORS`); the
shared filter and ECTemp live in :mod:`monitor.engine.kalman`, the heat-balance model in
:mod:`monitor.engine.heat_balance`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Protocol

from monitor.engine.heat_balance import UTH_MET_PER_HR_RATIO, HeatBalanceEstimator
from monitor.engine.kalman import ECTempEstimator
from monitor.profile import Activity, HeatSensitivity

__all__ = [
    "ESTIMATORS",
    "UTH_MET_PER_HR_RATIO",
    "ECTempEstimator",
    "Estimator",
    "EstimatorFactory",
    "HeatBalanceEstimator",
]


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


EstimatorFactory = Callable[[], Estimator]

ESTIMATORS: Mapping[str, EstimatorFactory] = MappingProxyType(
    {
        ECTempEstimator.name: ECTempEstimator,
        HeatBalanceEstimator.name: HeatBalanceEstimator,
    }
)
"""Estimators by the name used in ``[engine] estimator``."""
