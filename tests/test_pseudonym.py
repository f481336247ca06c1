"""Pseudonymous ids: raw patient ids never reach outputs when replay is told to pseudonymize."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.model import iso_utc
from monitor.profile import PatientProfile
from monitor.pseudonym import key_from_env, pseudonymize

KEY = b"a-secret-of-enough-length"


def test_same_raw_id_and_key_give_the_same_valid_pseudonym() -> None:
    a = pseudonymize("MRN 0012345", key=KEY)
    assert a == pseudonymize(" MRN 0012345 ", key=KEY)
    assert a != pseudonymize("MRN 0012346", key=KEY)
    assert a != pseudonymize("MRN 0012345", key=KEY + b"x")
    assert PatientProfile(id=a).id == a  # a valid patient id everywhere


def test_a_short_or_missing_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="HEATMON_PSEUDONYM_KEY"):
        key_from_env({})
    with pytest.raises(ConfigError, match="at least 16"):
        key_from_env({"HEATMON_PSEUDONYM_KEY": "short"})


def test_replay_pseudonymize_keeps_raw_ids_out_of_every_output(tmp_path: Path) -> None:
    raw = ("Jane Doe, MRN 0012345", "Ola Nordmann / 77")
    src = tmp_path / "raw.csv"
    lines = ["time,patient,heart_rate_bpm,skin_temp_c"]
    for t in range(0, 1800):
        for raw_id in raw:
            lines.append(f'{iso_utc(1_750_000_000 + t)},"{raw_id}",{65 if t < 300 else 150},33.5')
    src.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "HEATMON_PSEUDONYM_KEY": KEY.decode()}
    events, est = tmp_path / "e.jsonl", tmp_path / "s.csv"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "replay",
            str(src),
            "--events-out",
            str(events),
            "--estimates-out",
            str(est),
            "--pseudonymize",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    outputs = events.read_text() + est.read_text() + r.stdout + r.stderr
    for name in raw:
        assert name not in outputs and "Jane" not in outputs and "0012345" not in outputs
        assert pseudonymize(name, key=KEY) in est.read_text()
    cli = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "pseudonym", raw[0]],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert cli.stdout.strip() == pseudonymize(raw[0], key=KEY)


def _pseudonym_cli(
    args: list[bytes], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HEATMON_PSEUDONYM_KEY": KEY.decode()}
    return subprocess.run(
        [sys.executable.encode(), b"-m", b"monitor.cli", b"pseudonym", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_pseudonym_refuses_text_that_is_not_utf8_and_drops_a_byte_order_mark() -> None:
    """Raw ids that are not UTF-8 (a cp1252 file on stdin, an argument in Latin-1) were a
    UnicodeEncodeError traceback after some pseudonyms were printed; a spreadsheet's
    byte-order mark before the first id gave that patient a pseudonym of "\\ufeffA-17",
    which matches nothing. Now: the mark is dropped; a line or argument that is not UTF-8
    is refused naming its place (never its text), exit 2, nothing printed."""
    good = pseudonymize("A-17", key=KEY)
    r = _pseudonym_cli([], stdin=b"\xef\xbb\xbfA-17\r\nB-18\r\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == [good, pseudonymize("B-18", key=KEY)]
    r = _pseudonym_cli([], stdin="A-17\nM\u00fcller\n".encode("cp1252"))
    assert r.returncode == 2 and r.stdout == b""
    assert b"line 2: not UTF-8" in r.stderr and b"Traceback" not in r.stderr
    assert b"ller" not in r.stderr
    r = _pseudonym_cli([b"A-17", "M\u00fcller".encode("latin-1")])
    assert r.returncode == 2 and r.stdout == b""
    assert b"argument 2: not UTF-8" in r.stderr and b"Traceback" not in r.stderr
