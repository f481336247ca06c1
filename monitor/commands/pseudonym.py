"""``heatmon pseudonym [RAW_ID ...]``: the pseudonym of each raw patient id."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor.pseudonym import KEY_ENV, key_from_env, pseudonymize


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "pseudonym",
        help="turn raw patient ids into pseudonyms",
        description=f"Print the pseudonym of each raw id (arguments, or one a line on standard "
        f"input), keyed by {KEY_ENV}. Use the pseudonym as the patient id everywhere.",
    )
    p.add_argument("raw_ids", nargs="*", metavar="RAW_ID")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    key = key_from_env()
    raw_ids = args.raw_ids or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    for raw in raw_ids:
        print(pseudonymize(raw, key=key))
    return 0
