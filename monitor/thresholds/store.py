"""The durable record of symptom onsets, threshold suggestions and people's decisions.

One store, through SQLAlchemy Core on the tables of :mod:`monitor.careteam.schema` (made by
the care team's Alembic migrations): a SQLite file of its own (``<data_dir>/thresholds.sqlite``
by default, WAL, ``synchronous=FULL``), the care team's SQLite file, or the care team's
PostgreSQL when several web instances share it. One transaction per change (a report and its
suggestion, a decision and its threshold change), so a crash keeps every change that returned
and none that did not. Patient ids are pseudonyms; no note text is stored here.

A SQLite file written by an earlier heatmon (its own ``CREATE TABLE`` script, the same tables
and columns) is taken over as it is: the migration finds the tables there and adds the rest.

Ties in time are broken by id (PostgreSQL has no ``rowid``); ids are random UUIDs, so two rows
with the very same time come in an arbitrary but stable order. Thread-safe: the service calls
it from a worker thread, the CLI directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Row, insert, select, union, update

from monitor.careteam import schema as t
from monitor.careteam.base import identity, open_migrated, sqlite_url
from monitor.thresholds.records import (
    StoredReport,
    Suggest,
    Suggestion,
    SuggestionError,
    ThresholdChange,
    new_id,
)

log = logging.getLogger(__name__)

MAX_LIST = 200
"""At most this many suggestions or changes are returned at once."""
MAX_REPORTS = 1000
"""Learning reads at most this many of a patient's most recent reports (a patient who
presses "I feel symptoms" many times a session cannot make a change slow)."""

R, S, E, C = t.symptom_reports, t.suggestions, t.suggestion_evidence, t.threshold_changes

Within = Callable[[Connection, ThresholdChange | None], None]
"""Called inside a decision's transaction with the change it made (``None``: a rejection),
to write more in the same transaction (the care team's record and audit entry, when both
stores share a database); what it raises undoes the whole decision."""


def _report(row: Row[Any]) -> StoredReport:
    return StoredReport(
        id=row.id,
        patient=row.patient,
        session=row.session,
        time=float(row.time),
        rise_c=None if row.rise_c is None else float(row.rise_c),
        rise_sd_c=None if row.rise_sd_c is None else float(row.rise_sd_c),
        threshold_c=None if row.threshold_c is None else float(row.threshold_c),
        received=float(row.received),
    )


def _change(row: Row[Any]) -> ThresholdChange:
    return ThresholdChange(
        id=row.id,
        patient=row.patient,
        threshold_c=float(row.threshold_c),
        previous_c=float(row.previous_c),
        suggestion=row.suggestion,
        set_by=row.set_by,
        set_at=float(row.set_at),
    )


class ThresholdStore:
    """Use as a context manager (or call :meth:`close`). Give ``url`` (``sqlite:///PATH`` or
    ``postgresql://…``) or ``path`` (a SQLite file)."""

    def __init__(self, *, url: str | None = None, path: Path | str | None = None) -> None:
        if (url is None) == (path is None):
            raise TypeError("ThresholdStore: give url or path, not both")
        self.path = None if path is None else Path(path)
        self.url = sqlite_url(self.path) if self.path is not None else str(url)
        self.engine = open_migrated(self.url, what="thresholds store")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def identity(self) -> str:
        """This store's random id (the same database gives the same id, however its URL is
        spelled): cluster workers compare theirs, which must be one."""
        return identity(self.engine)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- writes (one transaction each) ------------------------------------------------

    def add_report(self, report: StoredReport, *, suggest: Suggest) -> Suggestion | None:
        with self._tx() as conn:
            if conn.execute(select(R.c.id).where(R.c.id == report.id)).first() is None:
                conn.execute(
                    insert(R).values(
                        id=report.id,
                        patient=report.patient,
                        session=report.session,
                        time=report.time,
                        rise_c=report.rise_c,
                        rise_sd_c=report.rise_sd_c,
                        threshold_c=report.threshold_c,
                        received=report.received,
                    )
                )
            reports = self._reports(conn, report.patient)
            personal = self._current(conn, report.patient)
            draft = suggest(reports, None if personal is None else personal.threshold_c)
            conn.execute(
                update(S)
                .where(S.c.patient == report.patient, S.c.status == "pending")
                .values(status="superseded")
            )
            if draft is None:
                return None
            sid = new_id()
            conn.execute(
                insert(S).values(
                    id=sid,
                    patient=report.patient,
                    created=report.received,
                    status="pending",
                    current_c=draft.current_c,
                    suggested_c=draft.suggested_c,
                    onset_mean_c=draft.onset_mean_c,
                    onset_sd_c=draft.onset_sd_c,
                    prior_mean_c=draft.prior_mean_c,
                    n_reports=draft.n_reports,
                    n_sessions=draft.n_sessions,
                    reason=draft.reason,
                )
            )
            if draft.evidence:
                conn.execute(
                    insert(E), [{"suggestion": sid, "report": rid} for rid in draft.evidence]
                )
            return self._suggestion(conn, sid)

    def decide(
        self,
        suggestion_id: str,
        *,
        patient: str,
        accept: bool,
        by: str,
        at: float,
        within: Within | None = None,
    ) -> tuple[Suggestion, ThresholdChange | None]:
        with self._tx() as conn:
            # Lock the row: two instances deciding at once cannot both succeed.
            locked = select(S.c.id).where(S.c.id == suggestion_id).with_for_update()
            conn.execute(locked)
            found = self._suggestion(conn, suggestion_id)
            if found is None or found.patient != patient:
                raise SuggestionError("no such suggestion for this patient", status=404)
            if found.status != "pending":
                raise SuggestionError(
                    f"this suggestion is {found.status} already; reload to see the current one",
                    status=409,
                )
            status = "accepted" if accept else "rejected"
            conn.execute(
                update(S)
                .where(S.c.id == suggestion_id)
                .values(status=status, decided_by=by, decided_at=at)
            )
            change: ThresholdChange | None = None
            if accept:
                personal = self._current(conn, patient)
                change = ThresholdChange(
                    id=new_id(),
                    patient=patient,
                    threshold_c=found.suggested_c,
                    previous_c=found.current_c if personal is None else personal.threshold_c,
                    suggestion=suggestion_id,
                    set_by=by,
                    set_at=at,
                )
                self._insert_change(conn, change)
            if within is not None:
                within(conn, change)
        log.info("threshold suggestion %s by a caregiver", status)
        return replace(found, status=status, decided_by=by, decided_at=at), change

    def reset(
        self,
        patient: str,
        *,
        configured_c: float,
        by: str,
        at: float,
        within: Within | None = None,
    ) -> ThresholdChange | None:
        with self._tx() as conn:
            personal = self._current(conn, patient)
            if personal is None or personal.threshold_c == configured_c:
                return None
            conn.execute(
                update(S)
                .where(S.c.patient == patient, S.c.status == "pending")
                .values(status="superseded")
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
            self._insert_change(conn, change)
            if within is not None:
                within(conn, change)
        return change

    @staticmethod
    def _insert_change(conn: Connection, change: ThresholdChange) -> None:
        conn.execute(
            insert(C).values(
                id=change.id,
                patient=change.patient,
                threshold_c=change.threshold_c,
                previous_c=change.previous_c,
                suggestion=change.suggestion,
                set_by=change.set_by,
                set_at=change.set_at,
            )
        )

    # -- reads --------------------------------------------------------------------------

    def reports(self, patient: str) -> list[StoredReport]:
        with self.engine.connect() as conn:
            return self._reports(conn, patient)

    def suggestion(self, suggestion_id: str) -> Suggestion | None:
        with self.engine.connect() as conn:
            return self._suggestion(conn, suggestion_id)

    def suggestions(
        self, patient: str, *, status: str | None = None, limit: int = 20
    ) -> list[Suggestion]:
        limit = max(1, min(limit, MAX_LIST))
        query = select(S.c.id).where(S.c.patient == patient)
        if status is not None:
            query = query.where(S.c.status == status)
        query = query.order_by(S.c.created.desc(), S.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            found = [self._suggestion(conn, sid) for (sid,) in conn.execute(query)]
        return [s for s in found if s is not None]

    def current(self, patient: str) -> ThresholdChange | None:
        with self.engine.connect() as conn:
            return self._current(conn, patient)

    def currents(self) -> dict[str, ThresholdChange]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(C).order_by(C.c.set_at, C.c.id))
            return {row.patient: _change(row) for row in rows}

    def changes(self, patient: str, *, limit: int = 20) -> list[ThresholdChange]:
        limit = max(1, min(limit, MAX_LIST))
        query = (
            select(C)
            .where(C.c.patient == patient)
            .order_by(C.c.set_at.desc(), C.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_change(row) for row in conn.execute(query)]

    def integrity(self) -> str:
        """The database's own check: SQLite's ``integrity_check`` of the file (``"ok"`` or
        what is wrong); a server checks itself, so reachable means ``"ok"``."""
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar())
            conn.execute(select(1))
        return "ok"

    def patients(self) -> list[str]:
        query = union(select(R.c.patient), select(S.c.patient)).order_by("patient")
        with self.engine.connect() as conn:
            return [str(p) for (p,) in conn.execute(query)]

    # -- within a transaction -----------------------------------------------------------

    @staticmethod
    def _reports(conn: Connection, patient: str) -> list[StoredReport]:
        rows = conn.execute(
            select(R)
            .where(R.c.patient == patient)
            .order_by(R.c.time.desc(), R.c.id.desc())
            .limit(MAX_REPORTS)
        )
        return [_report(row) for row in reversed(list(rows))]

    @staticmethod
    def _current(conn: Connection, patient: str) -> ThresholdChange | None:
        row = conn.execute(
            select(C)
            .where(C.c.patient == patient)
            .order_by(C.c.set_at.desc(), C.c.id.desc())
            .limit(1)
        ).first()
        return None if row is None else _change(row)

    @staticmethod
    def _suggestion(conn: Connection, suggestion_id: str) -> Suggestion | None:
        row = conn.execute(select(S).where(S.c.id == suggestion_id)).first()
        if row is None:
            return None
        evidence = conn.execute(
            select(R)
            .join(E, E.c.report == R.c.id)
            .where(E.c.suggestion == suggestion_id)
            .order_by(R.c.time)
        )
        return Suggestion(
            id=row.id,
            patient=row.patient,
            created=float(row.created),
            status=row.status,
            current_c=float(row.current_c),
            suggested_c=float(row.suggested_c),
            onset_mean_c=float(row.onset_mean_c),
            onset_sd_c=float(row.onset_sd_c),
            prior_mean_c=float(row.prior_mean_c),
            n_reports=int(row.n_reports),
            n_sessions=int(row.n_sessions),
            reason=row.reason,
            decided_by=row.decided_by,
            decided_at=None if row.decided_at is None else float(row.decided_at),
            evidence=tuple(_report(r) for r in evidence),
        )
