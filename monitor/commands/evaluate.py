"""``heatmon evaluate RECORDING.csv [--profiles P.toml] --out DIR``: score detection against
a measured core temperature (see docs/research.md, "Scoring detection")."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TimeRemainingColumn,
)
from rich.text import Text

from monitor.commands._paths import refuse_overwriting
from monitor.commands._text import plain
from monitor.config import EngineConfig
from monitor.engine.estimators import ESTIMATORS
from monitor.errors import ConfigError
from monitor.evaluate.report import to_json, write_html
from monitor.evaluate.run import evaluate
from monitor.evaluate.summary import TARGETS, summarize
from monitor.pseudonym import key_from_env
from monitor.replay import load_profiles

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "evaluate",
        help="score detection on a recording with a measured core temperature",
        description="Replay a recording (CSV: time,patient,heart_rate_bpm,skin_temp_c,"
        "core_temp_c) with the measured core held out of the estimator, and score the "
        "estimate and the cool-down alerts against it: sensitivity, lead time, false "
        "cool-downs, RMSE, bias, band coverage. Writes JSON and an HTML report.",
    )
    p.add_argument("input", type=Path, help="recording CSV with a core_temp_c column")
    p.add_argument("--profiles", type=Path, help="TOML file with [[patients]] profiles")
    p.add_argument(
        "--estimator",
        choices=sorted(ESTIMATORS),
        default=EngineConfig().estimator,
        help="core-temperature model (default: %(default)s)",
    )
    p.add_argument("--out", type=Path, help="folder for index.html, evaluation.json and plots")
    p.add_argument("--json", type=Path, help="write the JSON here too ('-' for stdout)")
    p.add_argument("--no-plots", action="store_true", help="HTML without the PNG plots")
    p.add_argument(
        "--pseudonymize",
        action="store_true",
        help="the patient column holds raw ids (keyed by HEATMON_PSEUDONYM_KEY)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise ConfigError(f"{args.input}: no such file")
    if args.out is None and args.json is None:
        raise ConfigError("give --out DIR (report and JSON) or --json FILE")
    json_file = None if args.json is None or str(args.json) == "-" else args.json
    report = None if args.out is None else args.out / "evaluation.json"
    refuse_overwriting(args.input, json=json_file, out=report)
    profiles = load_profiles(args.profiles) if args.profiles else None
    key = key_from_env() if args.pseudonymize else None
    console = Console(stderr=True)
    show = console.is_terminal and not args.no_progress
    started = time.perf_counter()

    def on_error(message: str) -> None:
        # the message quotes a cell of the file: text, never rich markup
        console.print(Text.assemble(("skipped", "yellow"), " ", plain(message)), highlight=False)

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    ) as progress:
        task = progress.add_task("replay", total=args.input.stat().st_size)
        evaluation = evaluate(
            args.input,
            profiles=profiles,
            estimator=args.estimator,
            progress=lambda done: progress.update(task, completed=done),
            on_error=on_error,
            pseudonym_key=key,
        )
    data = to_json(evaluation)
    text = json.dumps(data, indent=1, ensure_ascii=False)
    if args.out is not None:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not show or args.no_plots,
        ) as progress:
            task = progress.add_task("plots", total=len(evaluation.scores))
            index = write_html(
                evaluation,
                args.out,
                plots=not args.no_plots,
                progress=lambda done: progress.update(task, completed=done),
            )
        (args.out / "evaluation.json").write_text(text, encoding="utf-8")
        console.print(f"report: {index}", highlight=False, markup=False)
    if args.json is not None:
        if str(args.json) == "-":
            sys.stdout.write(text + "\n")
        else:
            args.json.write_text(text, encoding="utf-8")
    summary = summarize(evaluation.scores)
    for target in TARGETS:
        value = getattr(summary, target.metric)
        met = target.met(summary)
        mark = "n/a" if met is None else ("ok" if met else "NOT MET")
        shown = "–" if value is None else f"{value:.3f}"
        console.print(f"{mark:>7}  {target.label}: {shown}", highlight=False)
    console.print(
        f"{summary.sessions} sessions ({summary.sessions_crossing} reach the threshold), "
        f"{summary.exercise_hours:.1f} exercise-hours, estimator {args.estimator}, "
        f"{time.perf_counter() - started:.0f} s",
        highlight=False,
    )
    return 0
