"""``heatmon demo``: the main job with embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from monitor.demo import DEMO_DATA_DIR, DISCLAIMER, run_demo


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the whole pipeline with simulated patients",
        description="Simulated patients exercise while heatmon watches them. " + DISCLAIMER,
    )
    p.add_argument(
        "--speed", type=float, default=20.0, help="simulated seconds per second (default 20)"
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument(
        "--no-wearables",
        dest="wearables",
        action="store_false",
        help="feed the simulator straight into the engine instead of through virtual "
        "Bluetooth wearables (bumble GATT servers read with bleak)",
    )
    p.add_argument(
        "--web-port",
        type=int,
        default=8080,
        help="port of the live dashboard (default 8080; 0 picks a free one)",
    )
    p.add_argument("--no-web", action="store_true", help="terminal view only, no dashboard")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEMO_DATA_DIR,
        help="where the demo keeps its InfluxDB data, spool and outbox (default %(default)s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(DISCLAIMER, file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_demo(
                speed=args.speed,
                duration_s=args.duration,
                live=sys.stdout.isatty(),
                wearables=args.wearables,
                web_port=None if args.no_web else args.web_port,
                data_dir=args.data_dir,
            )
        )
    return 0
