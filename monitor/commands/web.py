"""``heatmon web``: helpers for the dashboard's ``[web]`` configuration.

- ``heatmon web hash-password`` reads a caregiver's password (twice, without echo on a
  terminal; one line from standard input otherwise) and prints its argon2id hash for
  ``[web.users.<login>] password_hash``.
- ``heatmon web patient-token PATIENT`` prints a fresh random access token for a patient's
  phone and the line to put in ``[web.patient_tokens]`` (only the digest is stored).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import Any

from monitor.errors import ConfigError
from monitor.profile import PATIENT_ID_PATTERN
from monitor.web.auth import hash_password, new_patient_token

MIN_PASSWORD_CHARS = 12


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "web",
        help="helpers for the dashboard's [web] configuration",
        description="Make password hashes and patient access tokens for [web].",
    )
    web_sub = p.add_subparsers(dest="web_command", metavar="ACTION", required=True)
    hp = web_sub.add_parser("hash-password", help="print the argon2 hash of a password")
    hp.set_defaults(func=run_hash_password)
    pt = web_sub.add_parser("patient-token", help="make an access token for a patient's phone")
    pt.add_argument("patient", help="the patient's pseudonymous id")
    pt.set_defaults(func=run_patient_token)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ConfigError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run_hash_password(args: argparse.Namespace) -> int:
    password = _read_password()
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"password: use at least {MIN_PASSWORD_CHARS} characters")
    print(hash_password(password))
    return 0


def run_patient_token(args: argparse.Namespace) -> int:
    patient: str = args.patient
    if not re.fullmatch(PATIENT_ID_PATTERN, patient):
        raise ConfigError(f"patient: {patient!r} is not a valid patient id")
    token, digest = new_patient_token()
    print(f"token (give it to the patient; it is not stored): {token}")
    print(f"link: <dashboard URL>/patient/{patient}?token={token}")
    print("add to heatmon.toml under [web.patient_tokens]:")
    print(f'"{patient}" = "{digest}"')
    return 0
