"""``heatmon admin``: the care team without a browser, on the store of ``[careteam]``."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.web.auth import hash_password


def test_admin_commands_seed_change_and_show_the_audit_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "heatmon.toml"
    config.write_text(
        f"""
[monitor]
data_dir = "{tmp_path / "var"}"
[[patients]]
id = "p-0001"
display_name = "Ann"
[careteam]
[web]
public_url = "https://heatmon.example.org"
[web.users.physio1]
password_hash = "{hash_password("a long password for physio1")}"
patients = ["p-0001"]
""",
        encoding="utf-8",
    )

    def admin(*args: str) -> tuple[int, str, str]:
        code = main(["admin", "--config", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert admin("import", "--by", "setup", "--admin", "physio1")[0] == 0
    code, out, _ = admin("import", "--by", "setup")
    assert code == 0 and "0 item(s)" in out  # twice changes nothing
    code, out, _ = admin("caregivers", "add", "bob", "--role", "caregiver", "--by", "physio1")
    assert code == 0 and "https://heatmon.example.org/invite#" in out
    assert admin("assign", "bob", "p-0001", "--by", "physio1")[0] == 0
    code, out, _ = admin("caregivers")
    assert "physio1" in out and "admin" in out and "bob" in out and "invited" in out
    assert "sees p-0001" in out

    edit = ("patients", "edit", "p-0001", "--by", "physio1", "--version", "1")
    assert admin(*edit, "--set", "threshold_rise_c=0.45")[0] == 0
    code, _, err = admin(*edit, "--set", "threshold_rise_c=0.4")
    assert code == 1 and "changed since version 1" in err and "0.45" in err
    code, _, err = admin(*edit[:-1], "2", "--set", "threshold_rise_c=3")
    assert code == 1 and "threshold_rise_c" in err
    code, _, err = admin("patients", "add", "p-0001", "--by", "physio1")
    assert code == 1 and "already taken" in err

    code, out, _ = admin("link", "p-0001", "--by", "physio1")
    assert code == 0 and "https://heatmon.example.org/patient/p-0001?token=" in out
    link_id = out.split()[1]
    assert admin("link", "--revoke", link_id, "--by", "physio1")[0] == 0
    assert admin("link", "--revoke", link_id, "--by", "physio1")[0] == 1

    code, out, _ = admin("audit", "--patient", "p-0001")
    lines = out.splitlines()
    assert "link.revoke" in lines[0] and "physio1" in lines[0]
    assert any("patient.edit" in line and "0.45" in line for line in lines)
    assert (tmp_path / "var" / "careteam.sqlite").exists()
