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


@pytest.mark.slow
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
