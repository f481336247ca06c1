"""``heatmon pseudonym [RAW_ID ...]``: the pseudonym of each raw patient id."""

from __future__ import annotations

import argparse
import codecs
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


def _utf8(text: str) -> bool:
    """Whether ``text`` (an argument: bytes that are not UTF-8 arrive as lone surrogates)
    is Unicode text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw_ids(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """``(where, raw id)`` of each argument, or of each non-blank line of standard input
    (a UTF-8 byte-order mark before the first dropped); ``None`` for one that is not
    UTF-8 (an argument the shell passed in Latin-1, a cp1252 file)."""
    if args.raw_ids:
        return [
            (f"argument {n}", raw if _utf8(raw) else None)
            for n, raw in enumerate(args.raw_ids, start=1)
        ]
    out: list[tuple[str, str | None]] = []
    for n, line in enumerate(sys.stdin.buffer, start=1):
        if n == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]  # a spreadsheet's "UTF-8 text"
        if not line.strip():
            continue
        try:
            out.append((f"line {n}", line.decode("utf-8").rstrip("\r\n")))
        except UnicodeDecodeError:
            out.append((f"line {n}", None))
    return out


def run(args: argparse.Namespace) -> int:
    key = key_from_env()
    raw_ids = _raw_ids(args)
    refused = [where for where, raw in raw_ids if raw is None]
    if refused:  # nothing printed: every pseudonym stays on the line of its raw id
        for where in refused[:20]:
            print(f"heatmon pseudonym: {where}: not UTF-8 text; no pseudonym", file=sys.stderr)
        if len(refused) > 20:
            print(f"heatmon pseudonym: {len(refused) - 20} more not UTF-8", file=sys.stderr)
        return 2
    for _, raw in raw_ids:
        assert raw is not None
        print(pseudonymize(raw, key=key))
    return 0
