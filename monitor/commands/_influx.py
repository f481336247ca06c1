"""Connection options shared by ``heatmon query``, ``export`` and ``downsample``.

Settings come from ``--config`` (its ``[sinks.influxdb]`` section), then the flags; the
token and password only from the environment (``HEATMON_INFLUXDB_TOKEN``,
``HEATMON_INFLUXDB_PASSWORD``), never from the command line, where other users of the
machine could read them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.storage.options import InfluxOptions
from monitor.storage.query import HeatmonStore

ENV_TOKEN = "HEATMON_INFLUXDB_TOKEN"
ENV_PASSWORD = "HEATMON_INFLUXDB_PASSWORD"


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("InfluxDB connection")
    group.add_argument("--config", type=Path, help="heatmon.toml with a [sinks.influxdb] section")
    group.add_argument("--url", help="InfluxDB URL (default http://127.0.0.1:8086)")
    group.add_argument("--database", help="database (1.x) or v1-mapped bucket (2.x)")
    group.add_argument("--username", help="InfluxDB 1.x user (password from the environment)")


def options_from_args(args: argparse.Namespace) -> InfluxOptions:
    data: dict[str, Any] = {}
    if args.config is not None:
        data.update(load_config(args.config).sinks.get("influxdb", {}))
    for key in ("url", "database", "username"):
        value = getattr(args, key, None)
        if value:
            data[key] = value
    if os.environ.get(ENV_TOKEN):
        data["token"] = os.environ[ENV_TOKEN]
    if os.environ.get(ENV_PASSWORD):
        data["password"] = os.environ[ENV_PASSWORD]
    try:
        return InfluxOptions.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"InfluxDB connection: {problems}") from err


def store_from_args(args: argparse.Namespace) -> HeatmonStore:
    return HeatmonStore.from_options(options_from_args(args))
