"""``heatmon demo``: the main job with embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from monitor.demo import DISCLAIMER, run_demo


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(DISCLAIMER, file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_demo(
                speed=args.speed,
                duration_s=args.duration,
                live=True,
                wearables=args.wearables,
            )
        )
    return 0
