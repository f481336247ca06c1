"""``heatmon export``: one patient's stored series to CSV, Parquet or JSON lines."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from monitor.commands._influx import add_connection_args, store_from_args
from monitor.storage.export import EXPORTED, FORMATS, WINDOW_S, export_patient, export_steps

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="export one patient's series (CSV, Parquet, JSON lines)",
        description="Write one file per measurement (vitals, thermal, alerts with their "
        "acknowledgements, sessions, symptoms) for one pseudonymous patient id.",
    )
    parser.add_argument("--patient", required=True, help="pseudonymous patient id")
    parser.add_argument("--start", required=True, help="ISO 8601 UTC (…Z) or epoch seconds")
    parser.add_argument("--stop", required=True, help="ISO 8601 UTC (…Z) or epoch seconds")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--out", type=Path, default=Path(), help="directory (default: .)")
    parser.add_argument(
        "--measurements",
        default=",".join(EXPORTED),
        help=f"comma-separated subset of {','.join(EXPORTED)}",
    )
    parser.add_argument(
        "--window-hours",
        type=float,
        default=WINDOW_S / 3600,
        help="hours read per query; memory use is that of one window (default %(default)s)",
    )
    add_connection_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    measurements = [m.strip() for m in args.measurements.split(",") if m.strip()]
    unknown = sorted(set(measurements) - set(EXPORTED))
    if unknown:
        print(f"heatmon export: unknown measurement(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if not args.window_hours > 0:
        print("heatmon export: --window-hours must be positive", file=sys.stderr)
        return 2
    window_s = args.window_hours * 3600
    store = store_from_args(args)
    steps = export_steps(store, args.start, args.stop, measurements=measurements, window_s=window_s)
    with Progress(
        TextColumn("exporting {task.fields[patient]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("windows, {task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("export", total=steps, patient=args.patient, rows=0)
        written = export_patient(
            store,
            patient=args.patient,
            start=args.start,
            stop=args.stop,
            fmt=args.format,
            out_dir=args.out,
            measurements=measurements,
            window_s=window_s,
            progress=lambda done, rows: progress.update(task, completed=done, rows=rows),
        )
    for measurement, (path, rows) in written.items():
        print(f"{measurement}: {rows} rows -> {path}")
    return 0
