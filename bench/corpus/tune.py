"""Tune the detection on the **training splits only**: a coordinate search over a few
heat-balance and forecast parameters, scored by the detection targets of issue 9.

Run: ``python -m bench.corpus.tune [--corpus var/corpus]`` (after ``python -m bench.corpus
--split train`` and ``--split train_gagge``). Each trial replays every training session through
the real estimator, forecast and alert state machine (``bench/corpus/trial.py``'s
``run_session``, ~6 s a trial on one core); the search changes one parameter at a time over
its grid and keeps a change that lowers the objective, for up to two passes. It prints the
path it took and the values to put in ``HEAT_BALANCE_PARAMS`` / ``FORECAST_PARAMS``
(``--keys z,increment_sd_per_c``: only those parameters of the grid). The held-out splits
are never read.

Objective (lower is better), in the order issue 9 ranks the targets, with a margin inside
them (``MARGIN``; fourth round): 10 × (1 − sensitivity) + 30 × (sensitivity below 0.985) +
20 × (false cool-downs an hour above 0.08) + 3 × false cool-downs an hour + 0.3 × (p90 lead
above 14 min) + 0.3 × (median lead above 9.5 min) + 20 × (RMSE above 0.23 °C) + 10 ×
(coverage below 87 %).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import MappingProxyType

from bench.corpus.windows import Windows, training_windows
from monitor.engine.forecast import FORECAST_PARAMS, ForecastParams
from monitor.engine.params import HEAT_BALANCE_PARAMS, HeatBalanceParams
from monitor.evaluate.summary import Summary, summarize

FORECAST_KEYS = frozenset(("z", "forecast_var_per_min", "increment_sd_per_c", "z_room_slope"))
HEAT_SENSITIVE_EXTRA_Z = 0.25
"""The heat-sensitive z is the tuned z plus this (a choice, not a fit)."""

GRID: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {
        "pull_gain_factor": (0.0, 0.5, 1.0, 1.5, 2.0),
        "capacity_exponent": (0.0, 0.5, 1.0, 1.5),
        "fast_skin_gate_c": (0.0, 0.3, 0.5, 1.0),
        "fast_gate_floor": (0.25, 0.5, 0.75),
        "production_r_offset": (0.1, 0.15, 0.2, 0.25, 0.3, 0.35),
        "fast_production_c_per_min": (0.07, 0.1, 0.13),
        "fast_loss_per_min": (0.15, 0.25, 0.35),
        "workload_tau_s": (120.0, 180.0, 300.0),
        "intermittent_hr_var_factor": (1.0, 1.5, 2.0, 3.0),
        "skin_warming_cap_c": (0.7, 0.85, 1.0),
        "intermittent_hr_work_share": (0.0, 0.15, 0.3, 0.45),
        "skin_vasodilation_coupling": (0.05, 0.1, 0.15, 0.2, 0.3),
        "skin_vasodilation_limit_c": (0.2, 0.3, 0.4, 0.6, float("inf")),
        "aerobic_hr_work_share": (0.0, 0.15, 0.3, 0.45),
        "aerobic_share_fade_c": (0.5, 1.0, 1.5),
        "fast_room_slope": (0.0, 0.1, 0.2, 0.3),
        "z": (1.5, 1.65, 1.75, 1.9, 2.0, 2.1, 2.25, 2.5),
        "forecast_var_per_min": (0.00025, 0.0005, 0.001, 0.0015, 0.002),
        "increment_sd_per_c": (0.0, 0.2, 0.3, 0.45, 0.6),
        "z_room_slope": (-0.1, 0.0, 0.1, 0.15, 0.2, 0.3),
    }
)


MARGIN: Mapping[str, float] = MappingProxyType(
    {"sensitivity": 0.985, "false_per_h": 0.08, "p90_min": 14.0, "median_min": 9.5}
)
"""Training figures the objective asks for, inside the held-out targets (0.97, 0.1 / h,
15 min, 10 min): each round's figures were worse on fresh sessions than on training."""


def split_params(
    values: Mapping[str, float], hb: HeatBalanceParams, fc: ForecastParams
) -> tuple[HeatBalanceParams, ForecastParams]:
    hb_kw = {k: v for k, v in values.items() if k not in FORECAST_KEYS}
    fc_kw = {k: v for k, v in values.items() if k in FORECAST_KEYS}
    if "z" in fc_kw:
        fc_kw["z_heat_sensitive"] = fc_kw["z"] + HEAT_SENSITIVE_EXTRA_Z
    return replace(hb, **hb_kw), replace(fc, **fc_kw)


def objective(s: Summary) -> float:
    false_h = s.false_cool_downs_per_hour or 0.0
    sens = s.sensitivity or 0.0
    return (
        10.0 * (1.0 - sens)
        + 30.0 * max(0.0, MARGIN["sensitivity"] - sens)
        + 20.0 * max(0.0, false_h - MARGIN["false_per_h"])
        + 3.0 * false_h
        + 0.3 * max(0.0, (s.lead_p90_min or 99.0) - MARGIN["p90_min"])
        + 0.3 * max(0.0, (s.lead_median_min or 99.0) - MARGIN["median_min"])
        + 20.0 * max(0.0, (s.rmse_rise_c or 9.0) - 0.23)
        + 10.0 * max(0.0, 0.87 - (s.coverage_95 or 0.0))
    )


def line(s: Summary) -> str:
    return (
        f"sens {s.sensitivity:.3f} ({s.detected_late} late) lead {s.lead_median_min:.1f}/"
        f"{s.lead_p10_min:.1f}/{s.lead_p90_min:.1f} false/h {s.false_cool_downs_per_hour:.3f} "
        f"({s.false_cool_downs}) RMSE {s.rmse_rise_c:.3f} cov {s.coverage_95:.3f}"
    )


def search(
    windows: Sequence[Windows],
    hb: HeatBalanceParams,
    fc: ForecastParams,
    *,
    passes: int = 2,
    jobs: int = 1,
    keys: Sequence[str] = (),
) -> tuple[dict[str, float], Summary]:
    from bench.corpus.pool import replay

    def score(ws: Sequence[Windows], hb: HeatBalanceParams, fc: ForecastParams) -> Summary:
        return summarize(replay(list(ws), hb, fc, jobs=jobs))

    current: dict[str, float] = {
        k: float(getattr(fc if k in FORECAST_KEYS else hb, k)) for k in GRID
    }
    best_summary = score(windows, *split_params(current, hb, fc))
    best = objective(best_summary)
    print(f"start {best:.3f}: {line(best_summary)}", file=sys.stderr)
    for _ in range(passes):
        improved = False
        for key, values in GRID.items():
            if keys and key not in keys:
                continue
            for value in values:
                if value == current[key]:
                    continue
                trial = {**current, key: value}
                s = score(windows, *split_params(trial, hb, fc))
                j = objective(s)
                if j < best - 1e-9:
                    best, best_summary, current = j, s, trial
                    improved = True
                    print(f"{key}={value:g} → {j:.3f}: {line(s)}", file=sys.stderr)
        if not improved:
            break
    return current, best_summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.corpus.tune", description=__doc__.split("\n")[0]
    )
    p.add_argument("--corpus", type=Path, default=Path("var/corpus"))
    p.add_argument(
        "--splits", default="train,train_gagge", help="training splits, or pool (every seen one)"
    )
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--jobs", type=int, default=1, help="replay in this many processes")
    p.add_argument(
        "--keys", default="", help="search only these parameters of the grid (comma-separated)"
    )
    args = p.parse_args(argv)
    keys = [k for k in args.keys.split(",") if k]
    unknown = set(keys) - set(GRID)
    if unknown:
        p.error(f"--keys: not in the grid: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    try:
        windows = training_windows(args.corpus, args.splits)
    except ValueError as err:
        p.error(str(err))
    values, summary = search(
        windows,
        HEAT_BALANCE_PARAMS,
        FORECAST_PARAMS,
        passes=args.passes,
        jobs=args.jobs,
        keys=keys,
    )
    hb, fc = split_params(values, HEAT_BALANCE_PARAMS, FORECAST_PARAMS)
    result = {
        "values": values,
        "heat_balance": asdict(hb),
        "forecast": asdict(fc),
        "train": asdict(summary),
    }
    (args.corpus / "train" / "tune.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(values, indent=1))
    print(f"tuned in {time.perf_counter() - started:.0f} s: {line(summary)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
