"""Probes of the estimate on the **pool**: what a different or a better estimate would gain,
scored like ``bench.corpus.pool`` (the real forecast, alert state machine and metrics) with
an estimator that is not the engine's. None of them is a model heatmon could run:

* ``fuse --weight w`` — the rise shown and alerted on is (1 − w)·heat_balance + w·ectemp
  (both filters run on the same heart rate and skin; the forecast's process state stays
  heat_balance's).
* ``capacity --exponent g`` — both heat gains scaled by (C / 8.5 METs)^g with C the corpus
  person's **true** aerobic capacity (no wearable gives it; 8.5 METs is about the pool's
  median) instead of the engine's estimate from HR_max / HR_rest: a ceiling for a better
  capacity estimate.
* ``truth --weight w`` — the rise is (1 − w)·estimate + w·the **true** rise (w = 1: a perfect
  estimate now, the forecast's process state still the filter's): a ceiling for a better
  estimate under the current alert rule.

Run: ``python -m bench.corpus.probe fuse --weight 0.2 [--set z=1.75] [--jobs 2]``. The eighth
round's figures (docs/physiology.md, "Fitted parameters") come from it. An unseen held-out
split is never read.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.corpus.pool import line, replay, session_info
from bench.corpus.trial import EstimatorFactory
from bench.corpus.tune import FORECAST_KEYS, objective, split_params
from bench.corpus.windows import Windows, training_windows
from monitor.engine.forecast import FORECAST_PARAMS
from monitor.engine.heat_balance import HeatBalanceEstimator
from monitor.engine.judging import BASELINE_WINDOW_S
from monitor.engine.kalman import ECTempEstimator
from monitor.engine.params import HEAT_BALANCE_PARAMS, HeatBalanceParams
from monitor.evaluate.summary import summarize
from monitor.profile import Activity, HeatSensitivity

CAPACITY_REF_MET = 8.5
"""True capacity at which the probe's heat gain is the fitted one (about the pool's median)."""


class FusedEstimator(HeatBalanceEstimator):
    """heat_balance and ECTemp side by side; the rise is their weighted mean."""

    __slots__ = ("_ec", "_weight")

    def __init__(self, *, params: HeatBalanceParams, weight: float) -> None:
        super().__init__(params=params)
        self._ec = ECTempEstimator()
        self._weight = weight

    @property
    def core_c(self) -> float:
        return (1.0 - self._weight) * self._kf.x + self._weight * self._ec.core_c

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
            heat_sensitivity=heat_sensitivity,
            activity=activity,
        )
        self._ec.calibrate(
            baseline_core_c=baseline_core_c,
            resting_hr_bpm=resting_hr_bpm,
            max_hr_bpm=max_hr_bpm,
            baseline_skin_c=baseline_skin_c,
            heat_sensitivity=heat_sensitivity,
            activity=activity,
        )

    def step(
        self,
        dt_s: float,
        *,
        heart_rate: float | None,
        skin_temp: float | None,
        measured_core: float | None,
    ) -> None:
        super().step(dt_s, heart_rate=heart_rate, skin_temp=skin_temp, measured_core=measured_core)
        self._ec.step(dt_s, heart_rate=heart_rate, skin_temp=skin_temp, measured_core=measured_core)


class TrueCapacityEstimator(HeatBalanceEstimator):
    """heat_balance with its heat gains scaled by the person's true capacity."""

    __slots__ = ("_capacity", "_exponent")

    def __init__(self, *, params: HeatBalanceParams, capacity_met: float, exponent: float) -> None:
        super().__init__(params=params)
        self._capacity = capacity_met
        self._exponent = exponent

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
            heat_sensitivity=heat_sensitivity,
            activity=activity,
        )
        k = (self._capacity / CAPACITY_REF_MET) ** self._exponent
        self._production = self._params.production_c_per_min * k
        self._fast_production = self._params.fast_production_c_per_min * k


class TrueRiseEstimator(HeatBalanceEstimator):
    """heat_balance whose rise is pulled towards the true rise of the session's pill."""

    __slots__ = ("_i", "_true", "_weight", "_windows")

    def __init__(self, *, params: HeatBalanceParams, windows: Windows, weight: float) -> None:
        super().__init__(params=params)
        self._windows = windows
        self._weight = weight
        # run_session calibrates at the first window past the rest period and steps from it.
        self._i = next(
            (k for k, end in enumerate(windows.ends) if end - windows.start >= BASELINE_WINDOW_S),
            len(windows.ends),
        )
        self._true: float | None = None

    @property
    def core_c(self) -> float:
        if self._true is None:
            return self._kf.x
        return (1.0 - self._weight) * self._kf.x + self._weight * (self._baseline + self._true)

    def step(
        self,
        dt_s: float,
        *,
        heart_rate: float | None,
        skin_temp: float | None,
        measured_core: float | None,
    ) -> None:
        super().step(dt_s, heart_rate=heart_rate, skin_temp=skin_temp, measured_core=measured_core)
        w = self._windows
        self._true = w.truth.rise_at(w.ends[self._i]) if self._i < len(w.ends) else None
        self._i += 1


def make_fused(w: Windows, hb: HeatBalanceParams, *, weight: float) -> HeatBalanceEstimator:
    return FusedEstimator(params=hb, weight=weight)


def make_true_capacity(
    w: Windows, hb: HeatBalanceParams, *, capacity: Mapping[str, float], exponent: float
) -> HeatBalanceEstimator:
    if w.patient not in capacity:  # heatmon's simulator: no corpus person
        return HeatBalanceEstimator(params=hb)
    return TrueCapacityEstimator(params=hb, capacity_met=capacity[w.patient], exponent=exponent)


def make_true_rise(w: Windows, hb: HeatBalanceParams, *, weight: float) -> HeatBalanceEstimator:
    return TrueRiseEstimator(params=hb, windows=w, weight=weight)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.corpus.probe", description=__doc__.split("\n")[0]
    )
    p.add_argument("probe", choices=("fuse", "capacity", "truth"))
    p.add_argument("--weight", type=float, default=1.0, help="fuse / truth: its weight")
    p.add_argument("--exponent", type=float, default=1.0, help="capacity: its exponent")
    p.add_argument("--corpus", type=Path, default=Path("var/corpus"))
    p.add_argument("--splits", default="pool")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args(argv)
    started = time.perf_counter()
    try:
        windows = training_windows(args.corpus, args.splits)
    except ValueError as err:
        p.error(str(err))
    values = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    unknown = set(values) - FORECAST_KEYS - set(HeatBalanceParams.__dataclass_fields__)
    if unknown:
        p.error(f"--set: unknown {', '.join(sorted(unknown))}")
    hb, fc = split_params(values, HEAT_BALANCE_PARAMS, FORECAST_PARAMS)
    make: EstimatorFactory
    if args.probe == "fuse":
        make = functools.partial(make_fused, weight=args.weight)
    elif args.probe == "truth":
        make = functools.partial(make_true_rise, weight=args.weight)
    else:
        infos = session_info(args.corpus, args.splits)
        capacity = {pid: float(info["person"]["fitness_met"]) for pid, info in infos.items()}  # type: ignore[index]
        make = functools.partial(make_true_capacity, capacity=capacity, exponent=args.exponent)
    s = summarize(replay(windows, hb, fc, jobs=args.jobs, make=make))
    # The objective counts an RMSE of 0 (truth --weight 1) as missing: read the line, not J.
    print(f"{len(windows)} sessions in {time.perf_counter() - started:.0f} s; {vars(args)}")
    print(f"{'all':>28} J {objective(s):6.3f}  {line(s)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
