"""``heatmon admin``: the care team without a browser, on the store of ``[careteam]``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor.careteam.decisions import latest_decision
from monitor.careteam.records import NotFound
from monitor.careteam.store import CareStore
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
    code, _, err = admin(*edit[:-1], "2", "--set", "threshold_rise_c=" + "[" * 5000)
    assert code == 2 and "nests 5000 levels deep" in err  # before: a RecursionError traceback
    code, _, err = admin(*edit[:-1], "2", "--set", "age=" + "4" * 5000)
    assert code == 2 and "--set: age: a number of 5000 digits" in err  # before: a traceback
    code, _, err = admin("patients", "add", "p-0001", "--by", "physio1")
    assert code == 1 and "already taken" in err
    # a line break after a valid login passed re.match's "$": the audit log kept "physio1\n"
    code, _, err = admin("patients", "add", "p-0002", "--by", "physio1\n")
    assert code == 2 and "--by" in err
    code, _, err = admin(*edit[:2], "p-0001\n", *edit[3:-1], "2", "--set", "age=50")
    assert code == 2 and "patient" in err

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


def test_a_patient_added_with_a_threshold_has_it_recorded_with_who_and_when(
    careteam_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``patients add --set threshold_rise_c=…`` (the --set was ignored on add) writes the
    first threshold to ``threshold_changes`` with who and when, as every later one is (before:
    no row, so the care team's pages showed no decision and the history began at the first
    change); a patient added with the default threshold gets its row too."""
    base = ["admin", "--config", str(tmp_path / "none.toml"), "--url", careteam_url]
    before = time.time()
    add = ("patients", "add", "p-0002", "--name", "Bea", "--by", "dr-a")
    assert main([*base, *add, "--set", "threshold_rise_c=0.6"]) == 0
    assert main([*base, "patients", "add", "p-0003", "--by", "dr-b"]) == 0
    code = main([*base, "patients", "add", "p-0004", "--set", "threshold_rise_c=3", "--by", "x"])
    assert code == 2 and "threshold_rise_c" in capsys.readouterr().err
    with CareStore(url=careteam_url) as store:
        assert store.patient("p-0002").profile.threshold_rise_c == 0.6
        first = latest_decision(store, "p-0002")
        assert first is not None, "no threshold_changes row for a patient added with one"
        assert first["threshold_c"] == 0.6 and first["previous_c"] == 0.5
        assert first["set_by"] == "dr-a" and first["suggestion"] is None
        assert time.strptime(first["set_at"][:19], "%Y-%m-%dT%H:%M:%S")
        default = latest_decision(store, "p-0003")
        assert default is not None and default["threshold_c"] == 0.5
        assert default["set_by"] == "dr-b"
        assert store.latest_thresholds()["p-0002"][0] == 0.6
        assert store.latest_thresholds()["p-0002"][1] >= before - 1
        entry = store.audit(patient="p-0002")[0]
        assert entry.action == "patient.add" and entry.actor == "dr-a"
        with pytest.raises(NotFound):
            store.patient("p-0004")
