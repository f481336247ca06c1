"""Personal thresholds through the real service: symptom reports from sessions run by the
engine are stored with their rise, a suggestion appears only with enough evidence, a
decision is recorded with who and when, an accepted threshold is used by the running
engine, and all of it survives a restart. Also the store's transactions and
``heatmon profile``."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import EngineConfig, parse_config
from monitor.engine import MonitorEngine
from monitor.engine.risk import RiskStateMachine
from monitor.errors import ConfigError, InputError
from monitor.model import Level
from monitor.profile import PatientProfile
from monitor.service import Monitor, build_monitor
from monitor.thresholds.learner import ThresholdLearner, make_draft
from monitor.thresholds.records import StoredReport, SuggestionError, new_id
from monitor.thresholds.store import ThresholdStore
from tests.threshold_helpers import feed_session, session_with_symptoms

DAY_S = 86_400.0
T0 = 1_780_000_000.0
PATIENT = "p-learn"
WAIT_S = 30.0


@asynccontextmanager
async def running(path: Path, *, poll_s: float = 5.0) -> AsyncIterator[Monitor]:
    profiles = {PATIENT: PatientProfile(id=PATIENT)}
    learner = ThresholdLearner(path=path, profiles=profiles, poll_s=poll_s)
    engine = MonitorEngine(profiles=profiles, config=EngineConfig())
    learner.attach(engine)
    async with Monitor(engine=engine, sinks=[learner]) as monitor:
        yield monitor


def learner_of(monitor: Monitor) -> ThresholdLearner:
    (learner,) = [s for s in monitor.sinks if isinstance(s, ThresholdLearner)]
    return learner


async def stored(learner: ThresholdLearner, count: int) -> None:
    async def wait() -> None:
        while learner.counters.get("reports_stored", 0) < count:
            learner.stored.clear()
            await learner.stored.wait()

    await asyncio.wait_for(wait(), WAIT_S)


async def test_reports_over_sessions_lead_to_a_suggestion_that_a_person_accepts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "thresholds.sqlite"
    async with running(path) as monitor:
        learner = learner_of(monitor)
        rises = []
        for k, target in enumerate((0.34, 0.36)):
            report = await session_with_symptoms(
                monitor, PATIENT, start=T0 + k * DAY_S, rise_c=target
            )
            assert report.core_delta_c is not None
            rises.append(report.core_delta_c)
        await stored(learner, 2)
        # Two sessions: not enough evidence, nothing suggested.
        assert learner.store.suggestions(PATIENT) == []
        kept = learner.store.reports(PATIENT)
        assert [r.rise_c for r in kept] == pytest.approx(rises)
        assert all(r.rise_sd_c is not None and 0 < r.rise_sd_c < 0.3 for r in kept)
        assert all(r.threshold_c == 0.5 for r in kept)

        report = await session_with_symptoms(monitor, PATIENT, start=T0 + 2 * DAY_S, rise_c=0.38)
        await stored(learner, 3)
        (suggestion,) = learner.store.suggestions(PATIENT)
        assert suggestion.status == "pending"
        assert suggestion.current_c == 0.5
        assert 0.30 <= suggestion.suggested_c < 0.45, "toward the reported rises"
        assert [r.session for r in suggestion.evidence] == [
            f"{PATIENT}-{int(T0 + k * DAY_S)}" for k in range(3)
        ]
        # Nothing changed by itself.
        assert monitor.engine.profile(PATIENT).threshold_rise_c == 0.5  # type: ignore[union-attr]

        # A caregiver accepts: recorded with who, used at once by the running engine.
        decided, change = await learner.decide(PATIENT, suggestion.id, accept=True, by="carol")
        assert decided.status == "accepted" and decided.decided_by == "carol"
        assert change is not None and change.previous_c == 0.5
        assert monitor.engine.profile(PATIENT).threshold_rise_c == suggestion.suggested_c  # type: ignore[union-attr]
        with pytest.raises(SuggestionError) as err:
            await learner.decide(PATIENT, suggestion.id, accept=False, by="dave")
        assert err.value.status == 409
        _, state = await feed_session(monitor, PATIENT, start=T0 + 3 * DAY_S, rise_c=0.2)
        assert state.threshold_rise_c == suggestion.suggested_c

    # After a restart: the threshold is in use before any sample, the history is intact.
    async with running(path) as monitor:
        learner = learner_of(monitor)
        assert monitor.engine.profile(PATIENT).threshold_rise_c == suggestion.suggested_c  # type: ignore[union-attr]
        (kept_suggestion,) = learner.store.suggestions(PATIENT)
        assert (kept_suggestion.status, kept_suggestion.decided_by) == ("accepted", "carol")
        assert len(learner.store.reports(PATIENT)) == 3
        _, state = await feed_session(monitor, PATIENT, start=T0 + 4 * DAY_S, rise_c=0.1)
        assert state.threshold_rise_c == suggestion.suggested_c


def report(patient: str, session: str, rise: float) -> StoredReport:
    return StoredReport(
        id=new_id(),
        patient=patient,
        session=session,
        time=T0,
        rise_c=rise,
        rise_sd_c=0.05,
        threshold_c=0.5,
        received=T0,
    )


def test_a_failed_change_leaves_nothing_half_written(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    with ThresholdStore(path=path) as store:

        def broken(reports: object, personal: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        with pytest.raises(sqlite3.OperationalError):
            store.add_report(report("p-1", "s1", 0.4), suggest=broken)
        assert store.reports("p-1") == []
        store.add_report(report("p-1", "s1", 0.4), suggest=lambda r, p: None)
    with ThresholdStore(path=path) as store:
        assert len(store.reports("p-1")) == 1
        with pytest.raises(SuggestionError) as err:
            store.decide(new_id(), patient="p-1", accept=True, by="carol", at=T0)
        assert err.value.status == 404


EARLIER_FILE = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE symptom_reports (id TEXT PRIMARY KEY, patient TEXT NOT NULL, session TEXT NOT NULL,
    time REAL NOT NULL, rise_c REAL, rise_sd_c REAL, threshold_c REAL, received REAL NOT NULL);
CREATE INDEX symptom_reports_patient ON symptom_reports (patient, time);
CREATE TABLE suggestions (id TEXT PRIMARY KEY, patient TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected', 'superseded')),
    current_c REAL NOT NULL, suggested_c REAL NOT NULL, onset_mean_c REAL NOT NULL,
    onset_sd_c REAL NOT NULL, prior_mean_c REAL NOT NULL, n_reports INTEGER NOT NULL,
    n_sessions INTEGER NOT NULL, reason TEXT NOT NULL, decided_by TEXT, decided_at REAL);
CREATE INDEX suggestions_patient ON suggestions (patient, created);
CREATE TABLE suggestion_evidence (suggestion TEXT NOT NULL REFERENCES suggestions (id),
    report TEXT NOT NULL REFERENCES symptom_reports (id), PRIMARY KEY (suggestion, report));
CREATE TABLE threshold_changes (id TEXT PRIMARY KEY, patient TEXT NOT NULL,
    threshold_c REAL NOT NULL, previous_c REAL NOT NULL,
    suggestion TEXT REFERENCES suggestions (id), set_by TEXT NOT NULL, set_at REAL NOT NULL);
CREATE INDEX threshold_changes_patient ON threshold_changes (patient, set_at);
INSERT INTO symptom_reports VALUES ('r1', 'p-old', 's1', 1e9, 0.41, 0.05, 0.5, 1e9);
INSERT INTO suggestions VALUES ('g1', 'p-old', 1e9, 'accepted', 0.5, 0.42, 0.41, 0.04, 0.5,
    3, 3, 'three sessions', 'carol', 1e9 + 60);
INSERT INTO suggestion_evidence VALUES ('g1', 'r1');
INSERT INTO threshold_changes VALUES ('c1', 'p-old', 0.42, 0.5, 'g1', 'carol', 1e9 + 60);
"""
"""A thresholds file as heatmon wrote it before the store moved to the care team's
migrations (its own CREATE TABLE script)."""


def test_a_file_written_by_an_earlier_heatmon_keeps_every_decision(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(EARLIER_FILE)
    db.close()
    with ThresholdStore(path=path) as store:
        assert store.integrity() == "ok"
        assert [r.id for r in store.reports("p-old")] == ["r1"]
        current = store.current("p-old")
        assert current is not None and (current.threshold_c, current.set_by) == (0.42, "carol")
        (accepted,) = store.suggestions("p-old")
        assert accepted.status == "accepted" and [r.id for r in accepted.evidence] == ["r1"]
        # and it goes on: a new report is kept beside the old ones
        store.add_report(report("p-old", "s2", 0.4), suggest=lambda r, p: None)
    with ThresholdStore(path=path) as store:
        assert len(store.reports("p-old")) == 2


def test_the_engine_refuses_a_threshold_the_profile_does_not_allow() -> None:
    engine = MonitorEngine(profiles={PATIENT: PatientProfile(id=PATIENT)})
    with pytest.raises(InputError):
        engine.set_threshold(PATIENT, 0.15)  # not above the caution margin (0.2)
    assert engine.profile(PATIENT).threshold_rise_c == 0.5  # type: ignore[union-attr]


async def test_profile_command_lists_and_decides_and_the_service_applies_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "thresholds.sqlite"
    async with running(path, poll_s=0.2) as monitor:
        learner = learner_of(monitor)
        for k, target in enumerate((0.33, 0.35, 0.37)):
            await session_with_symptoms(monitor, PATIENT, start=T0 + k * DAY_S, rise_c=target)
        await stored(learner, 3)
        (suggestion,) = learner.store.suggestions(PATIENT)

        assert main(["profile", "--store", str(path), "suggestions", PATIENT]) == 0
        out = capsys.readouterr().out
        assert "threshold in force +0.50 °C" in out
        assert f"pending    {suggestion.id}  suggest {suggestion.suggested_c:+.2f} °C" in out
        assert out.count("symptoms at +0.3") == 3

        assert (
            main(["profile", "--store", str(path), "accept", suggestion.id, "--by", "dr-ng"]) == 0
        )
        assert "accepted by dr-ng" in capsys.readouterr().out
        # The running service picks the decision up from the store.
        learner.applied.clear()
        await asyncio.wait_for(learner.applied.wait(), WAIT_S)
        assert monitor.engine.profile(PATIENT).threshold_rise_c == suggestion.suggested_c  # type: ignore[union-attr]

        assert main(["profile", "--store", str(path), "reject", suggestion.id, "--by", "x"]) == 2
        assert "accepted already" in capsys.readouterr().err
        assert main(["profile", "--store", str(path), "accept", suggestion.id, "--by", "a b"]) == 2
        # a line break after a valid name passed re.match's "$" and was recorded as who decided
        assert main(["profile", "--store", str(path), "reset", PATIENT, "--by", "dr-ng\n"]) == 2
        assert main(["profile", "--store", str(path), "reset", PATIENT + "\n", "--by", "x"]) == 2
        assert main(["profile", "--store", str(path), "suggestions", PATIENT, "--json"]) == 0
        assert '"set_by": "dr-ng"' in capsys.readouterr().out

        # Back to the configured threshold: also a recorded decision, also applied live.
        learner.applied.clear()
        assert main(["profile", "--store", str(path), "reset", PATIENT, "--by", "dr-ng"]) == 0
        assert "→ +0.50 °C (configured) by dr-ng" in capsys.readouterr().out
        await asyncio.wait_for(learner.applied.wait(), WAIT_S)
        assert monitor.engine.profile(PATIENT).threshold_rise_c == 0.5  # type: ignore[union-attr]
        assert [c.set_by for c in learner.store.changes(PATIENT)] == ["dr-ng", "dr-ng"]
        assert main(["profile", "--store", str(path), "reset", PATIENT, "--by", "dr-ng"]) == 0
        assert "in force already" in capsys.readouterr().out


async def test_the_configured_service_applies_stored_thresholds_at_start(tmp_path: Path) -> None:
    path = tmp_path / "var" / "thresholds.sqlite"
    with ThresholdStore(path=path) as store:
        for k, rise in enumerate((0.33, 0.35, 0.37)):
            store.add_report(
                report(PATIENT, f"s{k}", rise),
                suggest=lambda reports, personal: make_draft(
                    reports, personal, profile=PatientProfile(id=PATIENT)
                ),
            )
        (suggestion,) = store.suggestions(PATIENT, status="pending")
        store.decide(suggestion.id, patient=PATIENT, accept=True, by="carol", at=T0)
    config = parse_config(
        {
            "monitor": {"data_dir": str(tmp_path / "var")},
            "patients": [{"id": PATIENT}],
            "sinks": {"thresholds": {}},
        },
        environ={},
    )
    monitor = build_monitor(config)
    async with monitor:
        assert learner_of(monitor).path == path
        profile = monitor.engine.profile(PATIENT)
        assert profile is not None and profile.threshold_rise_c == suggestion.suggested_c
    with pytest.raises(ConfigError, match=r"sinks\.thresholds\.poll_s"):
        build_monitor(parse_config({"sinks": {"thresholds": {"poll_s": -1}}}, environ={}))


def test_a_new_threshold_changes_the_next_judgement_and_keeps_the_episode() -> None:
    risk = RiskStateMachine(threshold_c=0.5, caution_c=0.3, horizon_min=10, lead_min=5)
    assert risk.update(0.0, 0.40, None).level is Level.CAUTION
    risk.set_thresholds(threshold_c=0.38, caution_c=0.18)
    update = risk.update(10.0, 0.40, None)
    assert (update.level, update.previous, update.changed) == (Level.COOL_DOWN, Level.CAUTION, True)
    assert risk.in_episode
    with pytest.raises(ValueError):
        risk.set_thresholds(threshold_c=0.2, caution_c=0.3)


CRASH_WRITER = """
import sys
from monitor.profile import PatientProfile
from monitor.thresholds.learner import make_draft
from monitor.thresholds.records import StoredReport, new_id
from monitor.thresholds.store import ThresholdStore

store = ThresholdStore(path=sys.argv[1])
profile = PatientProfile(id="p-crash")
k = 0
while True:
    rid = new_id()
    report = StoredReport(id=rid, patient="p-crash", session=f"s{k}", time=1e9 + k,
                          rise_c=0.3 + (k % 5) * 0.01, rise_sd_c=0.05, threshold_c=0.5,
                          received=1e9 + k)
    store.add_report(report, suggest=lambda r, p: make_draft(r, p, profile=profile))
    print(rid, flush=True)
    k += 1
"""


async def test_a_killed_writer_loses_no_change_that_returned(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASH_WRITER, str(path), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    committed: list[str] = []
    async with asyncio.timeout(WAIT_S):
        while len(committed) < 40:
            committed.append((await proc.stdout.readline()).decode().strip())
    proc.kill()  # SIGKILL: no cleanup, maybe in the middle of a transaction
    await proc.wait()
    with ThresholdStore(path=path) as store:
        assert store.integrity() == "ok"
        kept = {r.id for r in store.reports("p-crash")}
        assert set(committed) <= kept
        pending = store.suggestions("p-crash", status="pending")
        assert len(pending) <= 1, "a report and its suggestion are one transaction"
        assert pending and len(pending[0].evidence) >= 3


def test_a_store_that_is_no_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "thresholds.sqlite"
    path.write_bytes(b"not a database, only text\n" * 200)
    assert main(["profile", "--store", str(path), "suggestions", "p-7f3a"]) == 2
    err = capsys.readouterr().err
    assert "thresholds store: cannot migrate the database" in err and "Traceback" not in err


def test_a_stores_identity_names_the_database_not_its_url(tmp_path: Path) -> None:
    """Cluster workers compare these ids (monitor/cluster/peers.py): one database, however
    its path is spelled, gives one id, made once and kept; another database another."""
    from monitor.thresholds.store import ThresholdStore

    (tmp_path / "a").mkdir()
    with ThresholdStore(path=tmp_path / "a" / "t.sqlite") as first:
        made = first.identity()
        assert first.identity() == made
    spelled = f"sqlite:///{tmp_path}/a/../a/t.sqlite"
    with ThresholdStore(url=spelled) as again:
        assert again.identity() == made
    with ThresholdStore(path=tmp_path / "b.sqlite") as other:
        assert other.identity() != made
