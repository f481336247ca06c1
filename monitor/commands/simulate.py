"""``heatmon simulate``: write a recording of simulated patients as replay input CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from adapters.simulator import SCENARIOS, SimulatedPatient
from monitor.errors import ConfigError
from monitor.model import iso_utc
from monitor.replay import MAX_PATIENTS

DEFAULT_START = 1_750_000_000.0
MAX_MINUTES = 7 * 24 * 60.0
"""A week: longer is a typing error, not a session."""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="write simulated sessions as a replay CSV",
        description="Write simulated patients' heart rate, skin and (true) core temperature "
        "as CSV in the replay input format.",
    )
    p.add_argument("output", type=Path, help="CSV to write ('-' for standard output)")
    p.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="scenario(s), cycled over the patients (default: all)",
    )
    p.add_argument("--patients", type=int, default=4, help="number of patients (default 4)")
    p.add_argument("--minutes", type=float, help="length (default: the scenario's own)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-core", action="store_true", help="leave out the core_temp_c column")
    p.add_argument("--epoch", action="store_true", help="epoch seconds instead of ISO 8601")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.patients < 1:
        raise ConfigError("--patients must be at least 1")
    if args.patients > MAX_PATIENTS:
        raise ConfigError(f"--patients must be at most {MAX_PATIENTS} (what replay reads)")
    if not 0.1 <= args.interval <= 3600.0:  # NaN fails this too
        raise ConfigError(f"--interval must be 0.1…3600 seconds, not {args.interval}")
    if args.minutes is not None and not 0.0 < args.minutes <= MAX_MINUTES:
        raise ConfigError(
            f"--minutes must be above 0 and at most {MAX_MINUTES:g}, not {args.minutes}"
        )
    names = args.scenario or sorted(SCENARIOS)
    sims = [
        (
            f"p{n:04d}",
            SimulatedPatient(scenario=SCENARIOS[names[n % len(names)]], seed=args.seed + n),
        )
        for n in range(args.patients)
    ]
    seconds = (
        args.minutes * 60.0
        if args.minutes is not None
        else max(sim.scenario.duration_s for _, sim in sims)
    )
    out = sys.stdout if str(args.output) == "-" else args.output.open("w", newline="")
    try:
        w = csv.writer(out, lineterminator="\n")
        header = ["time", "patient", "heart_rate_bpm", "skin_temp_c"]
        if not args.no_core:
            header.append("core_temp_c")
        w.writerow(header)
        steps = int(seconds / args.interval)
        for i in range(1, steps + 1):
            t = DEFAULT_START + i * args.interval
            stamp = f"{t:.0f}" if args.epoch else iso_utc(t)
            for pid, sim in sims:
                v = sim.step(args.interval)
                row = [stamp, pid, f"{v.heart_rate_bpm:.1f}", f"{v.skin_temp_c:.2f}"]
                if not args.no_core:
                    row.append(f"{v.core_temp_c:.3f}")
                w.writerow(row)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
