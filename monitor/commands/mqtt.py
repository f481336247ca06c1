"""``heatmon mqtt acl --config heatmon.toml``: the Mosquitto ACL for ``[sinks.mqtt.acl]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.mqtt.acl import render_acl
from monitor.mqtt.options import parse_options


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "mqtt", help="MQTT tools (the Mosquitto ACL)", description="MQTT tools."
    )
    tools = p.add_subparsers(dest="mqtt_command", metavar="TOOL", required=True)
    acl = tools.add_parser(
        "acl",
        help="write the Mosquitto ACL for the gateways, caregivers and apps in the config",
        description="Write a Mosquitto acl_file from [sinks.mqtt.acl]: each gateway may "
        "publish only its own patients, each caregiver may read only assigned patients.",
    )
    acl.add_argument("--config", type=Path, default=Path("heatmon.toml"), help="TOML file")
    acl.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    acl.set_defaults(func=run_acl)


def run_acl(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    text = render_acl(parse_options(config.sinks.get("mqtt", {})))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"{args.output}: ACL written", file=sys.stderr)
    return 0
