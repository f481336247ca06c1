"""``heatmon replay INPUT.csv --events-out EVENTS.jsonl --estimates-out EST.csv``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.text import Text

from monitor.commands._paths import refuse_overwriting
from monitor.commands._text import plain
from monitor.config import EngineConfig
from monitor.engine.estimators import ESTIMATORS
from monitor.errors import ConfigError
from monitor.pseudonym import key_from_env
from monitor.replay import load_profiles, replay

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="re-run detection over a recorded CSV",
        description="Re-run detection over a recording (CSV: time,patient,heart_rate_bpm,"
        "skin_temp_c[,core_temp_c]); writes level changes as JSON lines and estimates as CSV.",
    )
    p.add_argument("input", type=Path, help="input CSV")
    p.add_argument(
        "--events-out", type=Path, required=True, help="JSON lines, one per level change"
    )
    p.add_argument("--estimates-out", type=Path, required=True, help="CSV of estimates")
    p.add_argument("--profiles", type=Path, help="TOML file with [[patients]] profiles")
    p.add_argument(
        "--estimator",
        choices=sorted(ESTIMATORS),
        default=EngineConfig().estimator,
        help="core-temperature model (default: %(default)s)",
    )
    p.add_argument(
        "--ignore-measured-core",
        action="store_true",
        help="do not feed core_temp_c to the estimator (to validate the estimate against it)",
    )
    p.add_argument(
        "--all-events",
        action="store_true",
        help="also write recovered notices and data-quality changes to the events file",
    )
    p.add_argument(
        "--pseudonymize",
        action="store_true",
        help="the patient column holds raw ids: replace each by its pseudonym, keyed by "
        "HEATMON_PSEUDONYM_KEY (raw ids never reach the outputs)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise ConfigError(
            f"{args.input}: no such file"
            if not args.input.exists()
            else f"{args.input}: not a file"
        )
    refuse_overwriting(args.input, events_out=args.events_out, estimates_out=args.estimates_out)
    profiles = load_profiles(args.profiles) if args.profiles else None
    key = key_from_env() if args.pseudonymize else None
    config = EngineConfig(estimator=args.estimator, use_measured_core=not args.ignore_measured_core)
    console = Console(stderr=True)
    show = console.is_terminal and not args.no_progress
    total = args.input.stat().st_size
    started = time.perf_counter()

    def on_error(message: str) -> None:
        # the message quotes a cell of the file: text, never rich markup
        console.print(Text.assemble(("skipped", "yellow"), " ", plain(message)), highlight=False)

    with (
        args.events_out.open("w", encoding="utf-8") as events,
        args.estimates_out.open("w", encoding="utf-8", newline="") as estimates,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not show,
        ) as progress,
    ):
        task = progress.add_task("replay", total=total)
        report = replay(
            args.input,
            events_out=events,
            estimates_out=estimates,
            profiles=profiles,
            config=config,
            all_events=args.all_events,
            progress=lambda done: progress.update(task, completed=done),
            on_error=on_error,
            pseudonym_key=key,
        )
    elapsed = time.perf_counter() - started
    rate = report.samples / elapsed if elapsed > 0 else 0.0
    flags = ", ".join(f"{k} {v}" for k, v in sorted(report.flags.items())) or "none"
    print(
        f"replayed {report.rows} rows ({report.samples} samples, {report.patients} patients) "
        f"in {elapsed:.1f} s ({rate:,.0f} samples/s); {report.events} events, "
        f"{report.estimates} estimates; rejected rows {report.rejected_rows}; "
        f"flagged samples: {flags}",
        file=sys.stderr,
    )
    return 0
