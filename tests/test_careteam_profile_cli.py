"""``heatmon profile accept`` / ``reset`` with the care-team store (SQLite and a real
PostgreSQL): the care team's pages show the threshold heatmon uses, with who decided and
when, and only a caregiver the store allows to decide for the patient may be named."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection

from monitor.careteam.base import sqlite_url
from monitor.careteam.decisions import latest_decision, record_decision
from monitor.careteam.store import CareStore
from monitor.cli import main
from monitor.config import load_config
from monitor.profile import PatientProfile
from monitor.thresholds.location import open_store, shared_url, store_path
from monitor.thresholds.records import ThresholdChange
from tests.careteam_helpers import ADMIN, NEW, build_team_stack, seed_admin
from tests.test_careteam_thresholds import SUGGESTED_C, Client, seed_suggestion

pytestmark = pytest.mark.timeout(120)

CLINICIAN = "dr-ng"


def write_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "heatmon.toml"
    config.write_text(
        f'[monitor]\ndata_dir = "{tmp_path / "var"}"\n[careteam]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return config


def seed_team(url: str) -> None:
    """NEW in the store; dr-ng (clinician) and bob (caregiver) assigned to NEW; dr-x a
    clinician of other patients; dr-off a clinician of NEW, disabled."""
    seed_admin(url)
    with CareStore(url=url) as store:
        store.add_patient(PatientProfile(id=NEW), by="setup")
        store.add_patient(PatientProfile(id="p-other"), by="setup")
        for login, role, patient in (
            (CLINICIAN, "clinician", NEW),
            ("bob", "caregiver", NEW),
            ("dr-x", "clinician", "p-other"),
            ("dr-off", "clinician", NEW),
            (ADMIN, "admin", NEW),
        ):
            if login != ADMIN:
                store.add_caregiver(login, role, by="setup", password_hash="$argon2id$x")
            store.assign(login, patient, by="setup")
        store.update_caregiver("dr-off", based_on=1, by="setup", disabled=True)


def profile(config: Path, *args: str) -> int:
    return main(["profile", "--config", str(config), *args])


def changes_and_audit(url: str, config: Path) -> tuple[int, int, str]:
    """How many threshold changes and audit entries, and the suggestion's status."""
    cfg = load_config(config)
    with open_store(path=store_path(cfg), url=shared_url(cfg)) as thresholds:
        n_changes = len(thresholds.changes(NEW))
        status = thresholds.suggestions(NEW)[0].status
    with CareStore(url=url) as store:
        n_audit = len(store.audit(limit=500))
    return n_changes, n_audit, status


async def test_a_threshold_decided_on_the_command_line_is_what_the_care_team_sees(
    careteam_url: str, tmp_path: Path
) -> None:
    """The record on /team and GET /api/team/patients/{patient} kept 0.5 °C after
    ``heatmon profile accept`` made 0.45 °C the threshold in force."""
    await asyncio.to_thread(seed_team, careteam_url)
    suggestion = await asyncio.to_thread(seed_suggestion, careteam_url)
    config = write_config(tmp_path, careteam_url)
    stack = build_team_stack(careteam_url, poll_s=0.1)
    async with stack.monitor:
        admin = Client(stack)
        try:
            await admin.log_in_as_admin()
            code = await asyncio.to_thread(profile, config, "accept", suggestion, "--by", CLINICIAN)
            assert code == 0
            status, record = await admin.get(f"/api/team/patients/{NEW}")
            assert status == 200, record
            assert record["profile"]["threshold_rise_c"] == SUGGESTED_C, record  # type: ignore[index]
            decision = record["threshold"]
            assert isinstance(decision, dict), record
            assert decision["threshold_c"] == SUGGESTED_C and decision["set_by"] == CLINICIAN
            assert decision["suggestion"] == suggestion and decision["set_at"]
            entry = record["audit"][0]  # type: ignore[index]
            assert entry["action"] == "threshold.accept_suggestion", entry
            assert entry["actor"] == CLINICIAN and entry["after"] == {"threshold_rise_c": 0.45}
            status, listing = await admin.get("/api/team/patients")
            row = next(p for p in listing["patients"] if p["id"] == NEW)  # type: ignore[attr-defined]
            assert row["profile"]["threshold_rise_c"] == SUGGESTED_C, row
            for _ in range(50):  # the running engine follows within poll_s
                engine_profile = stack.monitor.engine.profile(NEW)
                if engine_profile is not None and engine_profile.threshold_rise_c == SUGGESTED_C:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the engine did not take the accepted threshold")

            code = await asyncio.to_thread(profile, config, "reset", NEW, "--by", CLINICIAN)
            assert code == 0
            status, record = await admin.get(f"/api/team/patients/{NEW}")
            assert record["profile"]["threshold_rise_c"] == 0.5, record  # type: ignore[index]
            assert record["threshold"]["set_by"] == CLINICIAN, record  # type: ignore[index]
            assert record["threshold"]["suggestion"] is None, record  # type: ignore[index]
            entry = record["audit"][0]  # type: ignore[index]
            assert entry["action"] == "threshold.reset" and entry["actor"] == CLINICIAN, entry
            # an edit based on the version before the command is refused with what changed
            status, body = await admin.post(
                f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.4}}
            )
            assert status == 409, body
        finally:
            await admin.http.close()


@pytest.mark.parametrize(
    ("login", "why"),
    [
        ("nobody", "not a caregiver"),
        ("bob", "only a clinician"),
        ("dr-x", "not assigned"),
        ("dr-off", "disabled"),
    ],
)
def test_the_command_line_refuses_a_login_the_care_team_does_not_allow_to_decide(
    careteam_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], login: str, why: str
) -> None:
    seed_team(careteam_url)
    suggestion = seed_suggestion(careteam_url)
    config = write_config(tmp_path, careteam_url)
    before = changes_and_audit(careteam_url, config)
    assert before[2] == "pending"
    for args in (("accept", suggestion), ("reject", suggestion), ("reset", NEW)):
        assert profile(config, *args, "--by", login) == 2, args
        err = capsys.readouterr().err
        assert login in err and why in err, err
        assert changes_and_audit(careteam_url, config) == before, args
    with CareStore(url=careteam_url) as store:
        assert store.patient(NEW).profile.threshold_rise_c == 0.5
    assert profile(config, "reject", suggestion, "--by", CLINICIAN) == 0
    n_changes, n_audit, status = changes_and_audit(careteam_url, config)
    assert (n_changes, n_audit, status) == (before[0], before[1] + 1, "rejected")
    with CareStore(url=careteam_url) as store:
        entry = store.audit(limit=1)[0]
    assert entry.action == "suggestion.reject" and entry.actor == CLINICIAN


def test_a_suggestion_below_the_floor_of_the_record_is_refused_on_the_command_line(
    careteam_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The care team raised NEW's caution margin to 0.35 °C (floor 0.40 °C): the command
    line checked only the configuration's profile and took 0.32 °C."""
    seed_team(careteam_url)
    with CareStore(url=careteam_url) as store:
        store.update_patient(NEW, {"caution_margin_c": 0.35}, based_on=1, by=CLINICIAN)
    suggestion = seed_suggestion(careteam_url, 0.32)
    config = write_config(tmp_path, careteam_url)
    before = changes_and_audit(careteam_url, config)
    assert profile(config, "accept", suggestion, "--by", CLINICIAN) == 2
    assert "0.40" in capsys.readouterr().err
    assert changes_and_audit(careteam_url, config) == before


def test_a_thresholds_store_of_its_own_still_updates_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[sinks.thresholds] path`` names another file: the record and its audit entry are
    written in the care-team store's own transaction, right after the decision."""
    url = sqlite_url(tmp_path / "careteam.sqlite")
    own = tmp_path / "own-thresholds.sqlite"
    seed_team(url)
    suggestion = seed_suggestion(sqlite_url(own))
    config = write_config(tmp_path, url)
    config.write_text(
        config.read_text(encoding="utf-8") + f'[sinks.thresholds]\npath = "{own}"\n',
        encoding="utf-8",
    )
    assert profile(config, "accept", suggestion, "--by", CLINICIAN) == 0, capsys.readouterr()
    with CareStore(url=url) as store:
        assert store.patient(NEW).profile.threshold_rise_c == SUGGESTED_C
        entry = store.audit(limit=1)[0]
        assert (entry.action, entry.actor) == ("threshold.accept_suggestion", CLINICIAN)
        assert store.latest_thresholds()[NEW][0] == SUGGESTED_C


class Crash(Exception):
    pass


def test_the_decision_and_the_record_commit_together_or_not_at_all(
    careteam_url: str, tmp_path: Path
) -> None:
    """Both stores in one database: a failure after the record and its audit entry are
    written, before the commit, leaves the suggestion pending and the record as it was."""
    seed_team(careteam_url)
    suggestion = seed_suggestion(careteam_url)
    config = write_config(tmp_path, careteam_url)
    before = changes_and_audit(careteam_url, config)
    cfg = load_config(config)
    with (
        open_store(path=store_path(cfg), url=shared_url(cfg)) as thresholds,
        CareStore(url=careteam_url) as team,
    ):

        def write_then_crash(conn: Connection, change: ThresholdChange | None) -> None:
            assert change is not None
            record_decision(
                team,
                conn,
                patient=NEW,
                threshold_c=change.threshold_c,
                by=CLINICIAN,
                action="threshold.accept_suggestion",
                suggestion=suggestion,
            )
            raise Crash

        with pytest.raises(Crash):
            thresholds.decide(
                suggestion, patient=NEW, accept=True, by=CLINICIAN, at=1.0, within=write_then_crash
            )
        assert team.patient(NEW).profile.threshold_rise_c == 0.5
        assert team.patient(NEW).version == 1
    assert changes_and_audit(careteam_url, config) == before


def test_a_reset_goes_back_to_the_threshold_the_care_team_set(
    careteam_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The TOML file says 0.55 °C, the care team typed 0.6 °C, a suggestion of 0.45 °C was
    accepted: ``heatmon profile reset`` goes back to the care team's 0.6 °C (before: the
    file's 0.55 °C, a threshold no clinician of the care team had set)."""
    seed_team(careteam_url)
    with CareStore(url=careteam_url) as store:
        store.update_patient(
            NEW, {"threshold_rise_c": 0.6}, based_on=1, by=CLINICIAN, action="threshold.change"
        )
    suggestion = seed_suggestion(careteam_url)
    config = write_config(tmp_path, careteam_url)
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'[[patients]]\nid = "{NEW}"\nthreshold_rise_c = 0.55\n',
        encoding="utf-8",
    )
    assert profile(config, "accept", suggestion, "--by", CLINICIAN) == 0
    capsys.readouterr()
    assert profile(config, "reset", NEW, "--by", ADMIN) == 0
    out = capsys.readouterr().out
    assert "+0.45 → +0.60 °C (set by the care team)" in out, out
    with CareStore(url=careteam_url) as store:
        assert store.patient(NEW).profile.threshold_rise_c == 0.6
        assert store.latest_thresholds()[NEW][0] == 0.6
        decision = latest_decision(store, NEW)
        assert decision is not None and decision["set_by"] == ADMIN
        assert store.audit(patient=NEW, limit=1)[0].action == "threshold.reset"
    assert profile(config, "reset", NEW, "--by", ADMIN) == 0  # nothing left to reset
    assert "+0.60 °C (set by the care team) is in force already" in capsys.readouterr().out
    # the listing names the same base (before: the file's 0.55 °C as "configured")
    assert profile(config, "suggestions", NEW) == 0
    out = capsys.readouterr().out
    assert "threshold in force +0.60 °C (set by the care team +0.60 °C" in out, out
