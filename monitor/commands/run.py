"""``heatmon run --config heatmon.toml``: the service with real wearables and services."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.service import build_monitor

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the service from a configuration file",
        description="Run heatmon as configured: sources, engine, sinks. Stops on SIGINT/SIGTERM.",
    )
    p.add_argument("--config", type=Path, default=Path("heatmon.toml"), help="TOML file")
    p.add_argument("--check", action="store_true", help="validate the configuration and exit")
    p.set_defaults(func=run)


async def _serve(config_path: Path) -> None:
    config = load_config(config_path)
    logging.getLogger().setLevel(config.monitor.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if config.cluster is not None:  # one worker of a NATS JetStream cluster
        from monitor.cluster.worker import ClusterWorker

        await ClusterWorker(config=config).run(stop)
        log.info("heatmon cluster worker stopped")
        return
    monitor = build_monitor(config)
    async with monitor:
        # What start-up built (modules, configuration, engines) lives as long as the
        # service: keep it out of the garbage collector's full passes, which would otherwise
        # walk it all and stall the event loop (and the alerts) for tens of milliseconds.
        gc.freeze()
        log.info("heatmon running: %d patients, %d sinks", len(config.patients), len(monitor.sinks))
        await stop.wait()
    log.info("heatmon stopped")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.check:
        # Everything ``run`` builds before it connects: every plugin validates its options
        # (an unknown sink, a misspelt key or a wrong type is refused here, naming the key).
        monitor = build_monitor(config)
        print(
            f"{args.config}: ok ({len(config.patients)} patients, "
            f"sources: {', '.join(s.name for s in monitor.sources) or 'none'}, "
            f"sinks: {', '.join(s.name for s in monitor.sinks) or 'none'})"
            + (
                f"; cluster worker on {len(config.cluster.servers)} NATS server(s), "
                f"{config.cluster.partitions} partitions"
                if config.cluster is not None
                else ""
            )
        )
        return 0
    asyncio.run(_serve(args.config))
    return 0
