"""Score detection on a corpus split with both estimators: the figures for the README.

Run: ``python -m bench.corpus.score [--corpus var/corpus] [--split heldout]``. For each
estimator it runs ``heatmon evaluate``'s code on the split, writes the report to
``<corpus>/<split>/report-<estimator>/`` and prints a Markdown table: the totals, then the
default estimator by model, workout, room and heat sensitivity.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from monitor.evaluate.report import write_html
from monitor.evaluate.run import evaluate
from monitor.evaluate.summary import Summary, summarize
from monitor.replay import load_profiles

ESTIMATORS = ("heat_balance", "ectemp")


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def row(label: str, s: Summary) -> str:
    return (
        f"| {label} | {s.sessions} | {s.sessions_crossing} | {_f(s.sensitivity)} "
        f"({s.detected_late} late, {s.missed} missed) | {_f(s.lead_median_min, 1)} / "
        f"{_f(s.lead_p10_min, 1)} / {_f(s.lead_p90_min, 1)} | "
        f"{_f(s.false_cool_downs_per_hour, 3)} "
        f"({s.false_cool_downs} in {s.exercise_hours:.0f} h) | "
        f"{s.cool_down_low_min:.0f} | {_f(s.rmse_rise_c)} / {_f(s.bias_rise_c, 3)} | "
        f"{_f(s.rmse_core_c)} / {_f(s.bias_core_c, 3)} | {_f(100 * (s.coverage_95 or 0), 0)} % |"
    )


HEADER = (
    "| | sessions | reach threshold | sensitivity | lead median / p10 / p90 (min) | "
    "false cool-downs / exercise-hour | min in cool_down while low | RMSE / bias of the rise (°C) "
    "| RMSE / bias of the core (°C) | 95 % band coverage |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.corpus.score")
    p.add_argument("--corpus", type=Path, default=Path("var/corpus"))
    p.add_argument("--split", default="heldout")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    folder = args.corpus / args.split
    profiles = load_profiles(folder / "profiles.toml")
    infos = {i["patient"]: i for i in json.loads((folder / "sessions.json").read_text())}
    lines = [HEADER]
    groups: list[str] = []
    for estimator in ESTIMATORS:
        started = time.perf_counter()
        ev = evaluate(folder / "recording.csv", profiles=profiles, estimator=estimator)
        elapsed = time.perf_counter() - started
        out = folder / f"report-{estimator}"
        write_html(ev, out, plots=not args.no_plots)
        print(
            f"{estimator}: {ev.replay.samples} samples in {elapsed:.1f} s; report {out}/index.html",
            file=sys.stderr,
        )
        lines.append(row(f"`{estimator}`", summarize(ev.scores)))
        if estimator != ESTIMATORS[0]:
            continue
        groups.append(HEADER)
        for key, name in (("model", "model"), ("workout", "workout"), ("room", "room")):
            for value in sorted({str(i[key]) for i in infos.values()}):
                scores = [s for s in ev.scores if str(infos[s.patient][key]) == value]
                groups.append(row(f"{name} {value}", summarize(scores)))
        for flag, label in ((True, "heat-sensitive"), (False, "normal sweating")):
            scores = [s for s in ev.scores if infos[s.patient]["person"]["heat_sensitive"] is flag]
            groups.append(row(label, summarize(scores)))
    print(f"## {args.split}: both estimators\n")
    print("\n".join(lines))
    print(f"\n## {args.split}: `{ESTIMATORS[0]}` by group\n")
    print("\n".join(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
