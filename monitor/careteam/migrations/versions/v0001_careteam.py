"""The care team: patients, caregivers, assignments, patient links, the append-only audit
log, and the personal-threshold tables of monitor/thresholds/.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_APPEND_ONLY_PG = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(80)),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "caregivers",
        sa.Column("login", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text),
        sa.Column("invite_digest", sa.String(64)),
        sa.Column("invite_expires", sa.Float),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.CheckConstraint("role IN ('admin', 'clinician', 'caregiver')", name="caregivers_role"),
    )
    op.create_table(
        "assignments",
        sa.Column("login", sa.String(64), sa.ForeignKey("caregivers.login"), primary_key=True),
        sa.Column("patient", sa.String(64), sa.ForeignKey("patients.id"), primary_key=True),
    )
    op.create_table(
        "patient_links",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("patient", sa.String(64), sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("patient", sa.String(64)),
        sa.Column("version", sa.Integer),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("before", sa.Text),
        sa.Column("after", sa.Text),
        sa.Column("detail", sa.String(200)),
        sa.CheckConstraint("outcome IN ('ok', 'refused')", name="audit_outcome"),
    )
    op.create_index("audit_patient", "audit", ["patient", "id"])
    op.create_index("audit_subject", "audit", ["kind", "subject", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_APPEND_ONLY_PG)
        op.execute(
            "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        )
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{what.lower()} BEFORE {what} ON audit "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )

    # The personal-threshold tables, as monitor/thresholds/store.py has always made them
    # (it may have made them in this file already: it shares the SQLite file).
    if sa.inspect(op.get_bind()).has_table("symptom_reports"):
        return
    op.create_table(
        "symptom_reports",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("patient", sa.Text, nullable=False),
        sa.Column("session", sa.Text, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("rise_c", sa.Float),
        sa.Column("rise_sd_c", sa.Float),
        sa.Column("threshold_c", sa.Float),
        sa.Column("received", sa.Float, nullable=False),
    )
    op.create_index("symptom_reports_patient", "symptom_reports", ["patient", "time"])
    op.create_table(
        "suggestions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("patient", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("current_c", sa.Float, nullable=False),
        sa.Column("suggested_c", sa.Float, nullable=False),
        sa.Column("onset_mean_c", sa.Float, nullable=False),
        sa.Column("onset_sd_c", sa.Float, nullable=False),
        sa.Column("prior_mean_c", sa.Float, nullable=False),
        sa.Column("n_reports", sa.Integer, nullable=False),
        sa.Column("n_sessions", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_at", sa.Float),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'rejected', 'superseded')",
            name="suggestions_status",
        ),
    )
    op.create_index("suggestions_patient", "suggestions", ["patient", "created"])
    op.create_table(
        "suggestion_evidence",
        sa.Column("suggestion", sa.Text, sa.ForeignKey("suggestions.id"), primary_key=True),
        sa.Column("report", sa.Text, sa.ForeignKey("symptom_reports.id"), primary_key=True),
    )
    op.create_table(
        "threshold_changes",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("patient", sa.Text, nullable=False),
        sa.Column("threshold_c", sa.Float, nullable=False),
        sa.Column("previous_c", sa.Float, nullable=False),
        sa.Column("suggestion", sa.Text, sa.ForeignKey("suggestions.id")),
        sa.Column("set_by", sa.Text, nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
    )
    op.create_index("threshold_changes_patient", "threshold_changes", ["patient", "set_at"])


def downgrade() -> None:
    for table in (
        "threshold_changes",
        "suggestion_evidence",
        "suggestions",
        "symptom_reports",
        "audit",
        "patient_links",
        "assignments",
        "caregivers",
        "patients",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
