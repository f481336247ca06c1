"""The care-team store: one database (SQLite file by default, PostgreSQL when configured)
reached through SQLAlchemy Core, its schema made and upgraded by Alembic migrations.

Every change is one transaction that also appends its audit entry (who, what, before,
after, when), so a crash leaves the old state or the new one, never a mix, and never a
change without its entry. Edits of patients and caregivers carry the version they were
based on; an edit based on an older version is refused with the edits made since
(:class:`~monitor.careteam.records.Conflict`), never silently overwritten. The audit table
refuses UPDATE and DELETE (a trigger), so it is append-only for everyone.

Thread-safe (SQLAlchemy's pool): the dashboard calls it from worker threads.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from monitor.careteam import schema as t
from monitor.careteam.base import audit_entry_of
from monitor.careteam.caregivers import CaregiverMixin
from monitor.careteam.records import (
    AuditEntry,
    Conflict,
    Invalid,
    LinkRecord,
    NotFound,
    PatientRecord,
)
from monitor.profile import PatientProfile
from monitor.web.auth import token_digest

log = logging.getLogger(__name__)

MAX_AUDIT = 500
"""At most this many audit entries are returned at once."""
LINK_TOKEN_BYTES = 24
DEFAULT_THRESHOLD_C: float = PatientProfile.model_fields["threshold_rise_c"].default
"""The threshold of a patient without a profile: the ``previous_c`` of a new patient's first
``threshold_changes`` row."""


def _patient(row: Row[Any]) -> PatientRecord:
    profile = PatientProfile.model_validate_json(row.profile)
    return PatientRecord(
        id=row.id,
        profile=profile,
        archived=bool(row.archived),
        version=int(row.version),
        updated_at=float(row.updated_at),
    )


def _check_text(profile: PatientProfile) -> None:
    """The display name must be storable everywhere (PostgreSQL refuses NUL, no database
    takes a lone surrogate) and printable (no control characters)."""
    name = profile.display_name or ""
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in name):
        raise Invalid("display_name: no control characters or lone surrogates")


def _profile_json(profile: PatientProfile) -> dict[str, Any]:
    return profile.model_dump(mode="json")


def log_threshold(
    conn: Connection,
    profile: PatientProfile,
    before_c: float,
    *,
    by: str,
    at: float,
    new: bool = False,
) -> None:
    """A threshold a person typed goes into ``threshold_changes`` too, in the same
    transaction, unless the latest change there already holds it (an accepted suggestion,
    which the dashboard then writes here). The ``thresholds`` sink applies the latest of
    these at every start: without this row, a restart brought back an older accepted
    suggestion over the threshold the clinician set afterwards. ``new``: the patient was
    just added, so the first threshold they get is recorded too, even if it equals
    ``before_c`` (the default), with who added them and when."""
    latest = conn.execute(
        select(t.threshold_changes.c.threshold_c)
        .where(t.threshold_changes.c.patient == profile.id)
        .order_by(t.threshold_changes.c.set_at.desc(), t.threshold_changes.c.id.desc())
        .limit(1)
    ).first()
    in_force = before_c if latest is None else float(latest.threshold_c)
    if in_force == profile.threshold_rise_c and not (new and latest is None):
        return
    conn.execute(
        insert(t.threshold_changes).values(
            id=str(uuid.uuid4()),
            patient=profile.id,
            threshold_c=profile.threshold_rise_c,
            previous_c=in_force,
            suggestion=None,
            set_by=by,
            set_at=at,
        )
    )


class CareStore(CaregiverMixin):
    """Use as a context manager (or call :meth:`close`)."""

    def note(
        self,
        *,
        actor: str,
        action: str,
        kind: str,
        subject: str,
        patient: str | None,
        after: Any = None,
    ) -> None:
        """An audit entry for a change kept elsewhere (a rejected threshold suggestion)."""
        with self.transaction() as conn:
            self.audit_entry(
                conn,
                actor=actor,
                action=action,
                kind=kind,
                subject=subject[:64],
                patient=patient,
                after=after,
            )

    def refused(
        self,
        *,
        actor: str,
        action: str,
        kind: str,
        subject: str,
        patient: str | None,
        detail: str,
        after: Any = None,
    ) -> None:
        """Log an attempt the rules refused (e.g. a plain caregiver changing a threshold);
        ``after``: e.g. how many refusals the entry stands for."""
        with self.transaction() as conn:
            self.audit_entry(
                conn,
                actor=actor,
                action=action,
                kind=kind,
                subject=subject,
                patient=patient,
                outcome="refused",
                detail=detail,
                after=after,
            )

    # -- patients -------------------------------------------------------------------------

    def patients(self, *, archived: bool = False) -> list[PatientRecord]:
        query = select(t.patients).order_by(t.patients.c.id)
        if not archived:
            query = query.where(t.patients.c.archived.is_(False))
        with self.engine.connect() as conn:
            return [_patient(r) for r in conn.execute(query)]

    def patient(self, patient: str) -> PatientRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.patients).where(t.patients.c.id == patient)).first()
        if row is None:
            raise NotFound(f"no patient {patient!r}")
        return _patient(row)

    def add_patient(self, profile: PatientProfile, *, by: str) -> PatientRecord:
        _check_text(profile)
        now = self.clock()
        with self.transaction() as conn:
            exists = conn.execute(select(t.patients.c.id).where(t.patients.c.id == profile.id))
            if exists.first() is not None:
                raise Conflict(f"pseudonym {profile.id!r} is already taken")
            conn.execute(
                insert(t.patients).values(
                    id=profile.id,
                    display_name=profile.display_name,
                    profile=profile.model_dump_json(),
                    archived=False,
                    version=1,
                    updated_at=now,
                )
            )
            log_threshold(conn, profile, DEFAULT_THRESHOLD_C, by=by, at=now, new=True)
            self.audit_entry(
                conn,
                actor=by,
                action="patient.add",
                kind="patient",
                subject=profile.id,
                patient=profile.id,
                version=1,
                after=_profile_json(profile),
            )
        return PatientRecord(profile.id, profile, False, 1, now)

    def update_patient(
        self,
        patient: str,
        changes: Mapping[str, Any],
        *,
        based_on: int,
        by: str,
        action: str = "patient.edit",
        archived: bool | None = None,
    ) -> PatientRecord:
        """Apply ``changes`` (profile fields) to the version ``based_on``; 409 with the
        edits made since if someone else got there first; 422 if the result is invalid."""
        now = self.clock()
        with self.transaction() as conn:
            row = conn.execute(select(t.patients).where(t.patients.c.id == patient)).first()
            if row is None:
                raise NotFound(f"no patient {patient!r}")
            old = _patient(row)
            self.check_version(
                conn, kind="patient", subject=patient, current=old, based_on=based_on
            )
            if "id" in changes:
                raise Invalid("the pseudonym of a patient cannot be changed")
            merged = _profile_json(old.profile) | dict(changes)
            try:
                profile = PatientProfile.model_validate(merged)
            except ValueError as err:
                raise Invalid(first_error(err)) from err
            _check_text(profile)
            new_archived = old.archived if archived is None else archived
            version = self.update_versioned(
                conn,
                table=t.patients,
                key=t.patients.c.id,
                kind="patient",
                subject=patient,
                current=old,
                based_on=based_on,
                values={
                    "display_name": profile.display_name,
                    "profile": profile.model_dump_json(),
                    "archived": new_archived,
                    "updated_at": now,
                },
            )
            before = {k: v for k, v in _profile_json(old.profile).items() if k in merged}
            after = _profile_json(profile)
            diff_before = {k: before[k] for k in after if before.get(k) != after[k]}
            diff_after = {k: after[k] for k in diff_before}
            if archived is not None and archived != old.archived:
                diff_before["archived"], diff_after["archived"] = old.archived, archived
            if profile.threshold_rise_c != old.profile.threshold_rise_c:
                log_threshold(conn, profile, old.profile.threshold_rise_c, by=by, at=now)
            self.audit_entry(
                conn,
                actor=by,
                action=action,
                kind="patient",
                subject=patient,
                patient=patient,
                version=version,
                before=diff_before,
                after=diff_after,
            )
        return PatientRecord(patient, profile, new_archived, version, now)

    # -- patient links --------------------------------------------------------------------

    def issue_link(self, patient: str, *, by: str) -> tuple[LinkRecord, str]:
        """A new link token for ``patient``'s phone (only its digest is kept)."""
        token = secrets.token_urlsafe(LINK_TOKEN_BYTES)
        link = LinkRecord(str(uuid.uuid4()), patient, by, self.clock(), None)
        with self.transaction() as conn:
            row = conn.execute(select(t.patients).where(t.patients.c.id == patient)).first()
            if row is None or row.archived:
                raise NotFound(f"no active patient {patient!r}")
            conn.execute(
                insert(t.patient_links).values(
                    id=link.id,
                    patient=patient,
                    digest=token_digest(token),
                    created_by=by,
                    created_at=link.created_at,
                )
            )
            self.audit_entry(
                conn,
                actor=by,
                action="link.issue",
                kind="link",
                subject=link.id,
                patient=patient,
                after={"link": link.id},
            )
        return link, token

    def revoke_link(self, link_id: str, *, by: str) -> LinkRecord:
        now = self.clock()
        with self.transaction() as conn:
            row = conn.execute(select(t.patient_links).where(t.patient_links.c.id == link_id))
            found = row.first()
            if found is None:
                raise NotFound("no such patient link")
            if found.revoked_at is not None:
                raise Conflict("that link is already revoked")
            conn.execute(
                update(t.patient_links)
                .where(t.patient_links.c.id == link_id)
                .values(revoked_at=now)
            )
            self.audit_entry(
                conn,
                actor=by,
                action="link.revoke",
                kind="link",
                subject=link_id,
                patient=found.patient,
                before={"active": True},
                after={"active": False},
            )
        return LinkRecord(link_id, found.patient, found.created_by, found.created_at, now)

    def links(self, patient: str | None = None) -> list[LinkRecord]:
        query = select(t.patient_links).order_by(t.patient_links.c.created_at)
        if patient is not None:
            query = query.where(t.patient_links.c.patient == patient)
        with self.engine.connect() as conn:
            return [
                LinkRecord(r.id, r.patient, r.created_by, r.created_at, r.revoked_at)
                for r in conn.execute(query)
            ]

    def latest_thresholds(self) -> dict[str, tuple[float, float]]:
        """patient → (threshold, when) of the newest personal-threshold decision
        (``threshold_changes``: a suggestion accepted anywhere, a reset, a typed threshold)."""
        c = t.threshold_changes.c
        query = select(c.patient, c.threshold_c, c.set_at).order_by(c.set_at, c.id)
        with self.engine.connect() as conn:
            return {r.patient: (float(r.threshold_c), float(r.set_at)) for r in conn.execute(query)}

    def active_link_digests(self) -> dict[str, tuple[str, str]]:
        """digest → (link id, patient) of every link not revoked, of patients not archived."""
        query = (
            select(t.patient_links.c.digest, t.patient_links.c.id, t.patient_links.c.patient)
            .join(t.patients, t.patients.c.id == t.patient_links.c.patient)
            .where(t.patient_links.c.revoked_at.is_(None), t.patients.c.archived.is_(False))
        )
        with self.engine.connect() as conn:
            return {r.digest: (r.id, r.patient) for r in conn.execute(query)}

    # -- the audit log --------------------------------------------------------------------

    def audit(
        self,
        *,
        patient: str | None = None,
        patients: frozenset[str] | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first; ``patients`` restricts to entries about those patients."""
        query = select(t.audit).order_by(t.audit.c.id.desc()).limit(max(1, min(limit, MAX_AUDIT)))
        if patient is not None:
            query = query.where(t.audit.c.patient == patient)
        if patients is not None:
            query = query.where(t.audit.c.patient.in_(sorted(patients)))
        if before_id is not None:
            query = query.where(t.audit.c.id < before_id)
        with self.engine.connect() as conn:
            return [audit_entry_of(r) for r in conn.execute(query)]

    def marker(self) -> int:
        """The newest audit entry's id: every change appends one, so a changed marker means
        something changed (how other instances learn of a change)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(t.audit.c.id), 0))).scalar_one())


def first_error(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        parts = []
        for e in errors():
            where = ".".join(str(p) for p in e.get("loc", ())) or "profile"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        if parts:
            return "; ".join(parts)
    return str(err)
