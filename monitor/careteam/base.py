"""The care-team store's foundation: the engine (SQLite or PostgreSQL), the migrations,
one transaction a change, and the audit entry every change appends."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Column, Connection, Engine, Row, Table, create_engine, event, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from monitor.careteam import schema as t
from monitor.careteam.records import AuditEntry, CareTeamError, Conflict, dumps, loads
from monitor.errors import ConfigError, HeatmonError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
MAX_AUDIT = 500
"""At most this many audit entries are returned at once."""
LINK_TOKEN_BYTES = 24


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def migrate(engine: Engine) -> None:
    """Bring the database up to the newest schema (Alembic ``upgrade head``)."""
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Take the write lock at once: two writers never deadlock on an upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def open_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False})
            _sqlite_pragmas(engine)
            return engine
        if url.startswith("postgresql"):
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except (SQLAlchemyError, ImportError) as err:
        raise ConfigError(
            f"careteam.url: cannot open the database ({type(err).__name__}); the URL is not shown"
        ) from err
    raise ConfigError("careteam.url: must be sqlite:///PATH or postgresql://…")


def storable(text: str) -> str:
    """``text`` as every database keeps it: control characters (PostgreSQL refuses NUL)
    and lone surrogates (no driver encodes them) become ``?``; an audit entry of a refused
    attempt must not fail on what the client sent."""
    return "".join(
        "?" if ord(c) < 32 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 else c
        for c in text
    )


def audit_entry_of(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=int(row.id),
        at=float(row.at),
        actor=row.actor,
        action=row.action,
        kind=row.kind,
        subject=row.subject,
        patient=row.patient,
        version=row.version,
        outcome=row.outcome,
        before=loads(row.before),
        after=loads(row.after),
        detail=row.detail,
    )


def open_migrated(url: str, *, what: str) -> Engine:
    """:func:`open_engine` and :func:`migrate`; a database that cannot be opened or migrated
    (not a database, unreachable, written by a newer heatmon) is a :class:`HeatmonError`
    that names ``what``."""
    engine = open_engine(url)
    try:
        migrate(engine)
    except SQLAlchemyError as err:
        engine.dispose()
        raise HeatmonError(f"{what}: cannot migrate the database: {err}") from err
    return engine


def identity(engine: Engine) -> str:
    """The store's random id, made the first time it is asked for (two processes asking at
    once get the same one): the same id means the same database, however its URL is
    spelled."""
    row = t.store_identity.c
    query = select(row.id).where(row.name == "store")
    with engine.connect() as conn:
        found = conn.execute(query).scalar_one_or_none()
    if found is not None:
        return str(found)
    with contextlib.suppress(IntegrityError), engine.begin() as conn:
        values = {"name": "store", "id": uuid.uuid4().hex, "created": time.time()}
        conn.execute(insert(t.store_identity).values(**values))
    with engine.connect() as conn:
        return str(conn.execute(query).scalar_one())


class StoreBase:
    """Opens (and migrates) the database; one transaction a change."""

    def __init__(self, *, url: str, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.clock = clock
        self.engine = open_migrated(url, what="care-team store")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One change: everything in it, audit entry included, commits or none does."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except CareTeamError:
            raise
        except IntegrityError as err:
            raise Conflict("that already exists or refers to something missing") from err
        except SQLAlchemyError as err:
            raise HeatmonError(f"care-team store: {type(err).__name__}") from err

    def audit_entry(
        self,
        conn: Connection,
        *,
        actor: str,
        action: str,
        kind: str,
        subject: str,
        patient: str | None = None,
        version: int | None = None,
        before: Any = None,
        after: Any = None,
        outcome: str = "ok",
        detail: str | None = None,
    ) -> None:
        conn.execute(
            insert(t.audit).values(
                at=self.clock(),
                actor=actor,
                action=action,
                kind=kind,
                subject=storable(subject),
                patient=None if patient is None else storable(patient),
                version=version,
                outcome=outcome,
                before=dumps(before),
                after=dumps(after),
                detail=None if detail is None else storable(detail[:200]),
            )
        )

    def check_version(
        self, conn: Connection, *, kind: str, subject: str, current: Any, based_on: int
    ) -> None:
        """An edit of ``subject`` based on version ``based_on`` while ``current`` (the
        record read in this transaction: a ``version`` and ``to_json()``) is newer is a
        :class:`Conflict` that carries the current record and the edits made since."""
        if current.version != based_on:
            raise Conflict(
                f"{kind} {subject!r} was changed since version {based_on} "
                f"(now version {current.version}); reload and try again",
                current=current.to_json(),
                changes=self.changes_since(conn, kind, subject, based_on),
            )

    def update_versioned(
        self,
        conn: Connection,
        *,
        table: Table,
        key: Column[Any],
        kind: str,
        subject: str,
        current: Any,
        based_on: int,
        values: dict[str, Any],
    ) -> int:
        """Write ``values`` and the next version over the row of ``subject`` (at ``key``)
        whose version is ``based_on``, after :meth:`check_version`; a row changed by another
        transaction between the read and this write is a :class:`Conflict` too. Returns
        the new version."""
        self.check_version(conn, kind=kind, subject=subject, current=current, based_on=based_on)
        version = int(current.version) + 1
        done = conn.execute(
            table.update()
            .where(key == subject, table.c.version == based_on)
            .values(**values, version=version)
        )
        if done.rowcount != 1:  # another transaction between our read and write
            raise Conflict(f"{kind} {subject!r} was changed meanwhile; reload")
        return version

    def changes_since(self, conn: Connection, kind: str, subject: str, version: int) -> list[Any]:
        rows = conn.execute(
            select(t.audit)
            .where(
                t.audit.c.kind == kind,
                t.audit.c.subject == subject,
                t.audit.c.outcome == "ok",
                t.audit.c.version > version,
            )
            .order_by(t.audit.c.id)
            .limit(50)
        )
        return [audit_entry_of(r).to_json() for r in rows]
