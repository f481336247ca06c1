"""``heatmon gateway --config gateway.toml``: runs next to the patient; wearables in,
samples out over MQTT (buffered on disk while the broker is unreachable)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from monitor.config import HeatmonConfig, load_config
from monitor.errors import ConfigError
from monitor.mqtt.gateway import Gateway
from monitor.mqtt.options import parse_options
from monitor.plugins import PluginContext, Source, source_class

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "gateway",
        help="forward wearables' samples to a central monitor over MQTT",
        description="Gateway mode: a source (BLE wearables by default) in, samples out to "
        "MQTT ([sinks.mqtt] holds the broker settings). Samples are buffered on disk while "
        "the broker is unreachable. Stops on SIGINT/SIGTERM.",
    )
    p.add_argument("--config", type=Path, default=Path("heatmon.toml"), help="TOML file")
    p.add_argument("--source", default="ble", help="source plugin to read (default: ble)")
    p.add_argument("--outbox", type=Path, help="buffer file (default: <data_dir>/gateway.sqlite)")
    p.set_defaults(func=run)


def build_gateway(
    config: HeatmonConfig, *, source: str | Source, outbox: Path | None = None
) -> Gateway:
    """The gateway ``config`` describes; ``source`` names the source plugin (its options come
    from ``[sources.<name>]``) or is one already made."""
    if "mqtt" not in config.sinks:
        raise ConfigError("sinks.mqtt: the gateway needs the broker settings in [sinks.mqtt]")
    options = parse_options(config.sinks["mqtt"])
    if isinstance(source, Source):
        src = source
    else:
        context = PluginContext(config=config, instance=config.monitor.instance)
        src = source_class(source).from_options(config.sources.get(source, {}), context=context)
    patients = [p.id for p in config.patients] or None
    return Gateway(
        source=src,
        options=options,
        outbox_path=outbox or Path(config.monitor.data_dir) / "gateway.sqlite",
        patients=patients,
    )


async def serve(gateway: Gateway, stop: asyncio.Event) -> None:
    """Run ``gateway`` until ``stop`` is set; what is not yet sent stays buffered on disk."""
    async with gateway:
        task = asyncio.create_task(gateway.run())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
        for t in (task, stopper):
            t.cancel()
        for t in (task, stopper):
            with contextlib.suppress(asyncio.CancelledError):
                await t
    log.info("gateway stopped")


async def _serve(config: HeatmonConfig, source: str, outbox: Path | None) -> None:
    gateway = build_gateway(config, source=source, outbox=outbox)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await serve(gateway, stop)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    logging.getLogger().setLevel(config.monitor.log_level)
    asyncio.run(_serve(config, args.source, args.outbox))
    return 0
