"""Alembic migrations of the care-team database (run by :func:`monitor.careteam.store.migrate`)."""
