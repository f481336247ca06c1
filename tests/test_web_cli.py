"""``heatmon web hash-password`` / ``patient-token``: what they print works in [web]."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from monitor.cli import main
from monitor.errors import ConfigError
from monitor.web.auth import PatientTokens
from monitor.web.config import parse_web_config


def test_hash_password_prints_a_hash_the_config_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["web", "hash-password"]) == 0
    digest = capsys.readouterr().out.strip()
    assert PasswordHasher().verify(digest, "a long enough password")
    config = parse_web_config({"users": {"carol": {"password_hash": digest, "patients": ["p-1"]}}})
    assert config.users["carol"].patients == ("p-1",)


def test_hash_password_refuses_short_passwords(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["web", "hash-password"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err


def test_patient_token_prints_a_token_and_its_digest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["web", "patient-token", "p-1"]) == 0
    out = capsys.readouterr().out
    token = re.search(r"not stored\): (\S+)", out)
    line = re.search(r'^"p-1" = "([0-9a-f]{64})"$', out, re.MULTILINE)
    assert token and line
    config = parse_web_config({"patient_tokens": {"p-1": line.group(1)}})
    tokens = PatientTokens(digests=config.patient_tokens)
    assert tokens.check("p-1", token.group(1))
    assert not tokens.check("p-1", token.group(1) + "x")
    # "$" also matches before a final newline: every [web] name is matched whole.
    digest = line.group(1)
    for web in (
        {"patient_tokens": {"p-1\n": digest}},
        {"patient_tokens": {"p-1": digest + "\n"}},
        {"users": {"carol\n": {"password_hash": "$argon2id$" + "x" * 20, "patients": ["p-1"]}}},
        {"users": {"carol": {"password_hash": "$argon2id$" + "x" * 20, "patients": ["p-1\n"]}}},
    ):
        with pytest.raises(ConfigError):
            parse_web_config(web)


def test_demo_prints_the_dashboard_urls(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["demo", "--duration", "2", "--web-port", "0", "--speed", "50"]
    assert main([*args, "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    caregiver = re.search(r"Caregiver view: (http://127\.0\.0\.1:\d+)/caregiver", out)
    assert caregiver, out
    for patient in ("p-ana", "p-ben", "p-cas", "p-dia"):
        assert re.search(rf"{patient}: http://127\.0\.0\.1:\d+/patient/{patient}\?token=\S+", out)


def test_sample_configuration_web_block_is_valid() -> None:
    from pathlib import Path

    from monitor.config import load_config

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "heatmon.sample.toml", environ={})
    web = parse_web_config(config.web)
    assert web.port == 8080 and not web.users
    assert config.sinks["web"] == {"enabled": False}
