"""``heatmon``: the command line. Each subcommand lives in ``monitor/commands/<name>.py``
and registers itself through ``register(subparsers)``; this module only wires them up."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.errors import HeatmonError

log = logging.getLogger(__name__)

COMMANDS: tuple[str, ...] = (
    "demo",
    "devices",
    "run",
    "replay",
    "evaluate",
    "simulate",
    "pseudonym",
    "gateway",
    "mqtt",
    "query",
    "export",
    "downsample",
    "web",
    "profile",
    "admin",
    "cluster",
)
"""Modules under ``monitor.commands``, in the order ``--help`` lists them."""

DISCLAIMER = "heatmon is not a medical device. Thresholds and advice must be set with a clinician."


def _named_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, when only it needs its module: the first word that is
    not an option, unless ``-h``/``--help``/``--version`` comes before it (those list or
    need every command)."""
    for arg in argv:
        if arg in ("-h", "--help", "--version"):
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: with a known subcommand in it, only that subcommand's module
    is imported and registered (some pull in Bluetooth, pandas or SQLAlchemy, about 2 s of
    imports that ``heatmon replay`` does not need); otherwise, or with no ``argv``, all."""
    named = None if argv is None else _named_command(argv)
    parser = argparse.ArgumentParser(
        prog="heatmon",
        description="Warns people with MS to cool down before exercise heat brings on "
        "symptoms. " + DISCLAIMER,
    )
    parser.add_argument("--version", action="version", version=f"heatmon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if named is None else (named,):
        module = importlib.import_module(f"monitor.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
    except HeatmonError as err:
        print(f"heatmon: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.filename is None:
            raise
        # A path given on the command line that cannot be opened (missing directory, a
        # directory where a file belongs, no permission): say which, without a traceback.
        print(f"heatmon: {err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
