"""``heatmon downsample``: set up one-minute series (InfluxDB 1.x), and backfill them."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from monitor.commands._influx import add_connection_args, store_from_args
from monitor.storage.downsample import backfill, ensure_continuous_queries
from monitor.storage.query import to_epoch_ns

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "downsample",
        help="create the one-minute continuous queries (InfluxDB 1.x); --backfill past data",
        description="Creates the continuous queries vitals_1m and thermal_1m. On InfluxDB "
        "2.x use the task in docs/influxdb2-downsample.flux instead.",
    )
    parser.add_argument("--backfill", action="store_true", help="also compute past minutes")
    parser.add_argument("--start", help="backfill from (ISO 8601 UTC or epoch seconds)")
    parser.add_argument("--stop", help="backfill until (ISO 8601 UTC or epoch seconds)")
    add_connection_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = store_from_args(args)
    created = ensure_continuous_queries(store)
    print(f"continuous queries created: {', '.join(created) or 'none (all present)'}")
    if args.backfill:
        if not (args.start and args.stop):
            print("heatmon downsample: --backfill needs --start and --stop")
            return 2
        written = backfill(store, to_epoch_ns(args.start), to_epoch_ns(args.stop))
        for target, points in written.items():
            print(f"{target}: {points} points written")
    return 0
