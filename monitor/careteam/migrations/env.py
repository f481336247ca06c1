"""Alembic's environment: always called from :func:`monitor.careteam.store.migrate`, which
hands over an open connection (no ``alembic.ini``, no URL in a file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from monitor.careteam.schema import metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run the care-team migrations through monitor.careteam.store.migrate")
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


run()
