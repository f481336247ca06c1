"""The durable record of symptom onsets, threshold suggestions and people's decisions.

One SQLite file (``<data_dir>/thresholds.sqlite`` by default), written one transaction per
change (WAL, ``synchronous=FULL``), so a crash keeps every change that returned and none
that did not. The schema is plain relational SQL with text ids (UUIDs), epoch-second
times and no SQLite-only features beyond the file itself, so that a care-team database can
take it over table by table (see ``docs/thresholds.md``). Patient ids are pseudonyms; no
note text is stored here.

Thread-safe (one lock): the service calls it from a worker thread, the CLI directly.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Self

from monitor.errors import HeatmonError
from monitor.thresholds.records import (
    StoredReport,
    Suggest,
    Suggestion,
    SuggestionError,
    ThresholdChange,
    new_id,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_LIST = 200
"""At most this many suggestions or changes are returned at once."""
MAX_REPORTS = 1000
"""Learning reads at most this many of a patient's most recent reports (a patient who
presses "I feel symptoms" many times a session cannot make a change slow)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS symptom_reports (
    id TEXT PRIMARY KEY,
    patient TEXT NOT NULL,
    session TEXT NOT NULL,
    time REAL NOT NULL,
    rise_c REAL,
    rise_sd_c REAL,
    threshold_c REAL,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS symptom_reports_patient ON symptom_reports (patient, time);
CREATE TABLE IF NOT EXISTS suggestions (
    id TEXT PRIMARY KEY,
    patient TEXT NOT NULL,
    created REAL NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'accepted', 'rejected', 'superseded')),
    current_c REAL NOT NULL,
    suggested_c REAL NOT NULL,
    onset_mean_c REAL NOT NULL,
    onset_sd_c REAL NOT NULL,
    prior_mean_c REAL NOT NULL,
    n_reports INTEGER NOT NULL,
    n_sessions INTEGER NOT NULL,
    reason TEXT NOT NULL,
    decided_by TEXT,
    decided_at REAL
);
CREATE INDEX IF NOT EXISTS suggestions_patient ON suggestions (patient, created);
CREATE TABLE IF NOT EXISTS suggestion_evidence (
    suggestion TEXT NOT NULL REFERENCES suggestions (id),
    report TEXT NOT NULL REFERENCES symptom_reports (id),
    PRIMARY KEY (suggestion, report)
);
CREATE TABLE IF NOT EXISTS threshold_changes (
    id TEXT PRIMARY KEY,
    patient TEXT NOT NULL,
    threshold_c REAL NOT NULL,
    previous_c REAL NOT NULL,
    suggestion TEXT REFERENCES suggestions (id),
    set_by TEXT NOT NULL,
    set_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS threshold_changes_patient ON threshold_changes (patient, set_at);
"""


_SUGGESTION_COLUMNS = (
    "id, patient, created, status, current_c, suggested_c, onset_mean_c, onset_sd_c, "
    "prior_mean_c, n_reports, n_sessions, reason, decided_by, decided_at"
)
_REPORT_COLUMNS = "id, patient, session, time, rise_c, rise_sd_c, threshold_c, received"
_CHANGE_COLUMNS = "id, patient, threshold_c, previous_c, suggestion, set_by, set_at"


class ThresholdStore:
    """Use as a context manager (or call :meth:`close`)."""

    __slots__ = ("_db", "_lock", "path")

    def __init__(self, *, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)  # idempotent; each statement commits by itself
        with self._lock, self._transaction():
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif int(row[0]) > SCHEMA_VERSION:
                raise HeatmonError(
                    f"{self.path}: written by a newer heatmon (schema {row[0]}); upgrade heatmon"
                )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One change: BEGIN IMMEDIATE … COMMIT, or ROLLBACK if anything fails."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes (one transaction each) ------------------------------------------------

    def add_report(self, report: StoredReport, *, suggest: Suggest) -> Suggestion | None:
        """Keep ``report`` and, in the same transaction, bring the patient's pending
        suggestion up to date with the evidence: a new one if ``suggest`` makes one (the
        previous pending one is superseded), none if it does not. Returns the pending
        suggestion after the change."""
        with self._lock, self._transaction():
            self._db.execute(
                f"INSERT OR IGNORE INTO symptom_reports ({_REPORT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    report.id,
                    report.patient,
                    report.session,
                    report.time,
                    report.rise_c,
                    report.rise_sd_c,
                    report.threshold_c,
                    report.received,
                ),
            )
            reports = self._reports(report.patient)
            personal = self._current(report.patient)
            draft = suggest(reports, None if personal is None else personal.threshold_c)
            self._db.execute(
                "UPDATE suggestions SET status = 'superseded' "
                "WHERE patient = ? AND status = 'pending'",
                (report.patient,),
            )
            if draft is None:
                return None
            sid = new_id()
            self._db.execute(
                f"INSERT INTO suggestions ({_SUGGESTION_COLUMNS}) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    sid,
                    report.patient,
                    report.received,
                    draft.current_c,
                    draft.suggested_c,
                    draft.onset_mean_c,
                    draft.onset_sd_c,
                    draft.prior_mean_c,
                    draft.n_reports,
                    draft.n_sessions,
                    draft.reason,
                ),
            )
            self._db.executemany(
                "INSERT INTO suggestion_evidence (suggestion, report) VALUES (?, ?)",
                [(sid, rid) for rid in draft.evidence],
            )
            return self._suggestion(sid)

    def decide(
        self, suggestion_id: str, *, patient: str, accept: bool, by: str, at: float
    ) -> tuple[Suggestion, ThresholdChange | None]:
        """Accept or reject a pending suggestion of ``patient``, recording who and when; an
        acceptance also records the new personal threshold. Raises :class:`SuggestionError`."""
        with self._lock, self._transaction():
            found = self._suggestion(suggestion_id)
            if found is None or found.patient != patient:
                raise SuggestionError("no such suggestion for this patient", status=404)
            if found.status != "pending":
                raise SuggestionError(
                    f"this suggestion is {found.status} already; reload to see the current one",
                    status=409,
                )
            status = "accepted" if accept else "rejected"
            self._db.execute(
                "UPDATE suggestions SET status = ?, decided_by = ?, decided_at = ? WHERE id = ?",
                (status, by, at, suggestion_id),
            )
            change: ThresholdChange | None = None
            if accept:
                personal = self._current(patient)
                change = ThresholdChange(
                    id=new_id(),
                    patient=patient,
                    threshold_c=found.suggested_c,
                    previous_c=found.current_c if personal is None else personal.threshold_c,
                    suggestion=suggestion_id,
                    set_by=by,
                    set_at=at,
                )
                self._insert_change(change)
        log.info("threshold suggestion %s by a caregiver", status)
        return replace(found, status=status, decided_by=by, decided_at=at), change

    def reset(
        self, patient: str, *, configured_c: float, by: str, at: float
    ) -> ThresholdChange | None:
        """Go back to the configured threshold (a person's decision, recorded like any
        other); a pending suggestion is superseded. ``None`` if no personal threshold is in
        force."""
        with self._lock, self._transaction():
            personal = self._current(patient)
            if personal is None or personal.threshold_c == configured_c:
                return None
            self._db.execute(
                "UPDATE suggestions SET status = 'superseded' "
                "WHERE patient = ? AND status = 'pending'",
                (patient,),
            )
            change = ThresholdChange(
                id=new_id(),
                patient=patient,
                threshold_c=configured_c,
                previous_c=personal.threshold_c,
                suggestion=None,
                set_by=by,
                set_at=at,
            )
            self._insert_change(change)
        log.info("personal threshold reset to the configured one by a caregiver")
        return change

    def _insert_change(self, change: ThresholdChange) -> None:
        self._db.execute(
            f"INSERT INTO threshold_changes ({_CHANGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                change.id,
                change.patient,
                change.threshold_c,
                change.previous_c,
                change.suggestion,
                change.set_by,
                change.set_at,
            ),
        )

    # -- reads --------------------------------------------------------------------------

    def reports(self, patient: str) -> list[StoredReport]:
        with self._lock:
            return self._reports(patient)

    def suggestion(self, suggestion_id: str) -> Suggestion | None:
        with self._lock:
            return self._suggestion(suggestion_id)

    def suggestions(
        self, patient: str, *, status: str | None = None, limit: int = 20
    ) -> list[Suggestion]:
        """Newest first, each with the reports behind it."""
        limit = max(1, min(limit, MAX_LIST))
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM suggestions WHERE patient = ? AND (? IS NULL OR status = ?) "
                "ORDER BY created DESC, rowid DESC LIMIT ?",
                (patient, status, status, limit),
            ).fetchall()
            found = [self._suggestion(sid) for (sid,) in rows]
        return [s for s in found if s is not None]

    def current(self, patient: str) -> ThresholdChange | None:
        """The personal threshold in force (the latest change), if any."""
        with self._lock:
            return self._current(patient)

    def currents(self) -> dict[str, ThresholdChange]:
        """Every patient's personal threshold in force."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_CHANGE_COLUMNS} FROM threshold_changes ORDER BY set_at, rowid"
            ).fetchall()
        return {row[1]: _change(row) for row in rows}

    def changes(self, patient: str, *, limit: int = 20) -> list[ThresholdChange]:
        limit = max(1, min(limit, MAX_LIST))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_CHANGE_COLUMNS} FROM threshold_changes WHERE patient = ? "
                "ORDER BY set_at DESC, rowid DESC LIMIT ?",
                (patient, limit),
            ).fetchall()
        return [_change(row) for row in rows]

    def integrity(self) -> str:
        """SQLite's own check of the file: ``"ok"`` or what is wrong."""
        with self._lock:
            row = self._db.execute("PRAGMA integrity_check").fetchone()
        return str(row[0])

    def patients(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT patient FROM symptom_reports UNION SELECT patient FROM suggestions "
                "ORDER BY 1"
            ).fetchall()
        return [str(p) for (p,) in rows]

    # -- under the lock -------------------------------------------------------------------

    def _reports(self, patient: str) -> list[StoredReport]:
        """The most recent :data:`MAX_REPORTS` reports, oldest first."""
        rows = self._db.execute(
            f"SELECT {_REPORT_COLUMNS} FROM symptom_reports WHERE patient = ? "
            "ORDER BY time DESC, rowid DESC LIMIT ?",
            (patient, MAX_REPORTS),
        ).fetchall()
        return [_report(row) for row in reversed(rows)]

    def _current(self, patient: str) -> ThresholdChange | None:
        row = self._db.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM threshold_changes WHERE patient = ? "
            "ORDER BY set_at DESC, rowid DESC LIMIT 1",
            (patient,),
        ).fetchone()
        return None if row is None else _change(row)

    def _suggestion(self, suggestion_id: str) -> Suggestion | None:
        row = self._db.execute(
            f"SELECT {_SUGGESTION_COLUMNS} FROM suggestions WHERE id = ?", (suggestion_id,)
        ).fetchone()
        if row is None:
            return None
        evidence = self._db.execute(
            f"SELECT {', '.join('r.' + c for c in _REPORT_COLUMNS.split(', '))} "
            "FROM suggestion_evidence e JOIN symptom_reports r ON r.id = e.report "
            "WHERE e.suggestion = ? ORDER BY r.time",
            (suggestion_id,),
        ).fetchall()
        return Suggestion(
            id=row[0],
            patient=row[1],
            created=float(row[2]),
            status=row[3],
            current_c=float(row[4]),
            suggested_c=float(row[5]),
            onset_mean_c=float(row[6]),
            onset_sd_c=float(row[7]),
            prior_mean_c=float(row[8]),
            n_reports=int(row[9]),
            n_sessions=int(row[10]),
            reason=row[11],
            decided_by=row[12],
            decided_at=None if row[13] is None else float(row[13]),
            evidence=tuple(_report(r) for r in evidence),
        )


def _report(row: Sequence[object]) -> StoredReport:
    return StoredReport(
        id=str(row[0]),
        patient=str(row[1]),
        session=str(row[2]),
        time=float(row[3]),  # type: ignore[arg-type]
        rise_c=None if row[4] is None else float(row[4]),  # type: ignore[arg-type]
        rise_sd_c=None if row[5] is None else float(row[5]),  # type: ignore[arg-type]
        threshold_c=None if row[6] is None else float(row[6]),  # type: ignore[arg-type]
        received=float(row[7]),  # type: ignore[arg-type]
    )


def _change(row: Sequence[object]) -> ThresholdChange:
    return ThresholdChange(
        id=str(row[0]),
        patient=str(row[1]),
        threshold_c=float(row[2]),  # type: ignore[arg-type]
        previous_c=float(row[3]),  # type: ignore[arg-type]
        suggestion=None if row[4] is None else str(row[4]),
        set_by=str(row[5]),
        set_at=float(row[6]),  # type: ignore[arg-type]
    )
