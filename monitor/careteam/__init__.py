"""The care-team store: patients, caregivers, assignments, patient links, threshold
suggestions and the append-only audit log in one database (SQLite by default, PostgreSQL
when configured), through SQLAlchemy Core with Alembic migrations. See docs/careteam.md."""
