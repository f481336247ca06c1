"""The store's identity: one random id made the first time it is asked for, so that
processes that must share a store (cluster workers and their thresholds store) can tell
whether they do.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_identity",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_identity")
