"""The care-team database's tables (SQLAlchemy Core). The migrations in ``migrations/``
create exactly these; ``tests/test_careteam_store.py`` checks that they agree.

Times are UTC epoch seconds (float); patient ids are pseudonyms; no password, token or
note text is ever stored in clear (argon2 hashes, SHA-256 digests).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ROLES = ("admin", "clinician", "caregiver")

patients = Table(
    "patients",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("display_name", String(80)),
    # the PatientProfile as JSON (thresholds included)
    Column("profile", Text, nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

caregivers = Table(
    "caregivers",
    metadata,
    Column("login", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text),
    Column("invite_digest", String(64)),
    Column("invite_expires", Float),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    CheckConstraint("role IN ('admin', 'clinician', 'caregiver')", name="caregivers_role"),
)

assignments = Table(
    "assignments",
    metadata,
    Column("login", String(64), ForeignKey("caregivers.login"), primary_key=True),
    Column("patient", String(64), ForeignKey("patients.id"), primary_key=True),
)

patient_links = Table(
    "patient_links",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("patient", String(64), ForeignKey("patients.id"), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("patient", String(64)),
    Column("version", Integer),
    Column("outcome", String(8), nullable=False),
    Column("before", Text),
    Column("after", Text),
    Column("detail", String(200)),
    CheckConstraint("outcome IN ('ok', 'refused')", name="audit_outcome"),
)
Index("audit_patient", audit.c.patient, audit.c.id)
Index("audit_subject", audit.c.kind, audit.c.subject, audit.c.id)

# -- the personal-threshold tables (monitor/thresholds/store.py writes them) ---------------

symptom_reports = Table(
    "symptom_reports",
    metadata,
    Column("id", Text, primary_key=True),
    Column("patient", Text, nullable=False),
    Column("session", Text, nullable=False),
    Column("time", Float, nullable=False),
    Column("rise_c", Float),
    Column("rise_sd_c", Float),
    Column("threshold_c", Float),
    Column("received", Float, nullable=False),
)
Index("symptom_reports_patient", symptom_reports.c.patient, symptom_reports.c.time)

suggestions = Table(
    "suggestions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("patient", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("status", Text, nullable=False),
    Column("current_c", Float, nullable=False),
    Column("suggested_c", Float, nullable=False),
    Column("onset_mean_c", Float, nullable=False),
    Column("onset_sd_c", Float, nullable=False),
    Column("prior_mean_c", Float, nullable=False),
    Column("n_reports", Integer, nullable=False),
    Column("n_sessions", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", Float),
    CheckConstraint(
        "status IN ('pending', 'accepted', 'rejected', 'superseded')", name="suggestions_status"
    ),
)
Index("suggestions_patient", suggestions.c.patient, suggestions.c.created)

suggestion_evidence = Table(
    "suggestion_evidence",
    metadata,
    Column("suggestion", Text, ForeignKey("suggestions.id"), primary_key=True),
    Column("report", Text, ForeignKey("symptom_reports.id"), primary_key=True),
)

threshold_changes = Table(
    "threshold_changes",
    metadata,
    Column("id", Text, primary_key=True),
    Column("patient", Text, nullable=False),
    Column("threshold_c", Float, nullable=False),
    Column("previous_c", Float, nullable=False),
    Column("suggestion", Text, ForeignKey("suggestions.id")),
    Column("set_by", Text, nullable=False),
    Column("set_at", Float, nullable=False),
)
Index("threshold_changes_patient", threshold_changes.c.patient, threshold_changes.c.set_at)

store_identity = Table(
    "store_identity",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("id", String(64), nullable=False),
    Column("created", Float, nullable=False),
)
"""One row (``name = "store"``): the store's random id (:func:`~monitor.careteam.base.identity`)."""
