"""``heatmon query``: run InfluxQL (any InfluxDB) or Flux (2.x) and print the rows."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from monitor.commands._influx import add_connection_args, options_from_args
from monitor.commands._text import plain
from monitor.storage.export import spreadsheet_safe
from monitor.storage.query import HeatmonStore

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "query",
        help="run InfluxQL (or Flux on InfluxDB 2.x) against the store",
        description="Run one InfluxQL statement (InfluxDB 1.x, 2.x via its v1 API, 3.x) "
        "or, with --flux, a Flux query (InfluxDB 2.x), and print the rows.",
    )
    parser.add_argument("statement", help="the query, e.g. 'SELECT * FROM thermal LIMIT 5'")
    parser.add_argument("--flux", action="store_true", help="the query is Flux (InfluxDB 2.x)")
    parser.add_argument("--org", default="", help="organisation for --flux")
    parser.add_argument(
        "--format",
        choices=("table", "csv", "jsonl"),
        default=None,
        help="output format (default: table on a terminal, csv otherwise)",
    )
    add_connection_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    store = HeatmonStore.from_options(options)
    if args.flux:
        frame = store.flux(args.statement, org=args.org or options.org)
    else:
        frame = store.query(args.statement)
    fmt = args.format or ("table" if sys.stdout.isatty() else "csv")
    if fmt == "csv":
        spreadsheet_safe(frame).to_csv(sys.stdout, index=False)
    elif fmt == "jsonl":
        frame.to_json(sys.stdout, orient="records", lines=True, date_format="iso")
        sys.stdout.write("\n")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for column in frame.columns:
            table.add_column(plain(str(column)))
        for row in frame.itertuples(index=False):
            table.add_row(*(plain("" if v is None else str(v)) for v in row))
        Console().print(table)
        print(f"{len(frame)} rows", file=sys.stderr)
    return 0
