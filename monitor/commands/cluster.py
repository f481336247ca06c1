"""``heatmon cluster status|natsconf --config heatmon.toml``: cluster mode's tools
(docs/scaling.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from monitor.config import HeatmonConfig, load_config
from monitor.errors import ConfigError, HeatmonError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "cluster",
        help="cluster mode on NATS JetStream: status, server configuration",
        description="Tools for heatmon workers on a NATS JetStream cluster ([cluster]).",
    )
    tools = p.add_subparsers(dest="cluster_command", metavar="TOOL", required=True)
    st = tools.add_parser(
        "status",
        help="workers, partitions, owners, lag and checkpoint age",
        description="Show the workers, which owns each partition, its lag and the age of "
        "its last checkpoint.",
    )
    st.add_argument("--config", type=Path, default=Path("heatmon.toml"), help="TOML file")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=run_status)
    nc = tools.add_parser(
        "natsconf",
        help="write the NATS users, permissions and subject mappings",
        description="Write the authorization and mappings block of nats-server's "
        "configuration from [cluster] and [sinks.mqtt.acl] (the same logins as the Mosquitto "
        "ACL). Passwords are read by the server from HEATMON_NATS_PASSWORD_<LOGIN>.",
    )
    nc.add_argument("--config", type=Path, default=Path("heatmon.toml"), help="TOML file")
    nc.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    nc.set_defaults(func=run_natsconf)


def _cluster(config: HeatmonConfig, path: Path) -> Any:
    if config.cluster is None:
        raise ConfigError(f"{path}: no [cluster] section")
    return config.cluster


def run_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from monitor.cluster.status import fetch_status, render

    config = load_config(args.config)
    try:
        status = asyncio.run(fetch_status(_cluster(config, args.config)))
    except HeatmonError:
        raise
    except Exception as err:
        raise HeatmonError(f"cluster status: {type(err).__name__}: {err}") from err
    if args.json:
        print(json.dumps(asdict(status), indent=2))
    else:
        sys.stdout.write(render(status))
    return 0


def run_natsconf(args: argparse.Namespace) -> int:
    from monitor.cluster.subjects import render_authorization
    from monitor.cluster.topology import names_of
    from monitor.mqtt.options import parse_options

    config = load_config(args.config)
    text = render_authorization(
        names_of(_cluster(config, args.config)), parse_options(config.sinks.get("mqtt", {}))
    )
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"{args.output}: NATS authorization written", file=sys.stderr)
    return 0
