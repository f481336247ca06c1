"""A durable local queue of MQTT messages that must not be lost (alerts; a gateway's samples).

Messages are written to SQLite when they are produced and deleted only after the broker has
acknowledged them (PUBACK for QoS 1), so a broker outage or a restart of heatmon loses
nothing. A message may carry a ``key`` (an alert's event id): a key that was queued once is
never queued again, so a re-submitted alert does not go out twice.

Checkpoints: SQLite copies the write-ahead log into the database (and fsyncs it) every 1,000
pages by default, inside whichever commit crosses that mark: on the event loop, a stall of up
to ~16 ms on this project's CI machine (p99 of a commit 4.3 ms against 0.8 ms without;
``bench/alert_path.py``). An owner that runs on an event loop makes the outbox with
``checkpoint_every`` and calls :meth:`Outbox.checkpoint` in a worker thread when
:attr:`Outbox.checkpoint_due` says so (:class:`~monitor.mqtt.alerts.AlertQueue` does); the
checkpoint then runs on a connection of its own, beside the loop's commits.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

MEMORY = ":memory:"
CHECKPOINT_EVERY_COMMITS = 200
"""With ``checkpoint_every``: commits after which :attr:`Outbox.checkpoint_due` says a
checkpoint is due (an alert's commit writes about two pages; SQLite's own default is every
1,000 pages)."""
KEEP_SENT_KEYS = 100_000
"""Keys of delivered messages remembered for de-duplication (the oldest are forgotten)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    key TEXT
);
CREATE TABLE IF NOT EXISTS seen_keys (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE
);
"""


class OutboxItem(NamedTuple):
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    key: str | None


class Outbox:
    """Use as a context manager (or call :meth:`close`). Not thread-safe: one event loop;
    only :meth:`checkpoint` may run in another thread."""

    __slots__ = ("_checkpoint_every", "_checkpointing", "_commits", "_db", "_pending", "path")

    def __init__(self, *, path: Path | str = MEMORY, checkpoint_every: int | None = None) -> None:
        """With ``checkpoint_every`` (commits, e.g. :data:`CHECKPOINT_EVERY_COMMITS`) SQLite
        does not checkpoint inside a commit; the owner calls :meth:`checkpoint` (in a worker
        thread) when :attr:`checkpoint_due`. Without it SQLite checkpoints as usual."""
        self.path = str(path)
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        (self._pending,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        self._checkpoint_every = checkpoint_every if self.path != MEMORY else None
        if self._checkpoint_every is not None:
            self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._commits = 0
        self._checkpointing = threading.Lock()

    @property
    def checkpoint_due(self) -> bool:
        """Whether the owner should call :meth:`checkpoint` now (only with
        ``checkpoint_every``, and not while one runs)."""
        every = self._checkpoint_every
        return every is not None and self._commits >= every and not self._checkpointing.locked()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database (a passive checkpoint: it waits for
        no reader or writer), on a connection of its own: safe to call from a worker thread
        while the owner's thread commits."""
        if self.path == MEMORY:
            return
        with self._checkpointing:
            self._commits = 0
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                db.close()

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
        self._db.close()

    def __len__(self) -> int:
        """Messages waiting for the broker."""
        return int(self._pending)

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        key: str | None = None,
    ) -> bool:
        """Queue a message; ``False`` (and nothing queued) if ``key`` was queued before."""
        db = self._db
        db.execute("BEGIN")  # one commit (one WAL write) for both rows
        try:
            if key is not None:
                cur = db.execute("INSERT OR IGNORE INTO seen_keys(key) VALUES (?)", (key,))
                if cur.rowcount == 0:
                    db.execute("ROLLBACK")
                    return False
            db.execute(
                "INSERT INTO outbox(topic, payload, qos, retain, key) VALUES (?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), key),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._commits += 1
        self._pending += 1
        return True

    def put_keyed(self, items: Sequence[tuple[str, bytes, str]], *, qos: int = 1) -> int:
        """Queue messages ``(topic, payload, key)`` in one transaction (one commit), each
        as :meth:`put` would (a key queued before is skipped); how many were queued."""
        db = self._db
        queued = 0
        db.execute("BEGIN")
        try:
            for topic, payload, key in items:
                cur = db.execute("INSERT OR IGNORE INTO seen_keys(key) VALUES (?)", (key,))
                if cur.rowcount == 0:
                    continue
                db.execute(
                    "INSERT INTO outbox(topic, payload, qos, retain, key) VALUES (?, ?, ?, 0, ?)",
                    (topic, payload, qos, key),
                )
                queued += 1
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._commits += 1
        self._pending += queued
        return queued

    def put_many(self, items: Iterable[tuple[str, bytes]], *, qos: int = 1) -> int:
        """Queue several keyless messages in one transaction."""
        rows = [(t, p, qos) for t, p in items]
        with self._db:
            self._db.executemany(
                "INSERT INTO outbox(topic, payload, qos, retain) VALUES (?, ?, ?, 0)", rows
            )
        self._commits += 1
        self._pending += len(rows)
        return len(rows)

    def peek(self, limit: int = 100, *, after: int = 0) -> list[OutboxItem]:
        """The oldest ``limit`` messages, oldest first, still queued (with ``after``, those
        queued after the message of that ``seq``)."""
        rows = self._db.execute(
            "SELECT seq, topic, payload, qos, retain, key FROM outbox WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (after, limit),
        ).fetchall()
        return [OutboxItem(s, t, bytes(p), q, bool(r), k) for s, t, p, q, r, k in rows]

    def done(self, seqs: Iterable[int]) -> None:
        """The broker has these: forget them (their keys stay remembered)."""
        ids = [(s,) for s in seqs]
        if not ids:
            return
        db = self._db
        db.execute("BEGIN")  # one commit for the batch
        try:
            cur = db.executemany("DELETE FROM outbox WHERE seq = ?", ids)
            db.execute(
                "DELETE FROM seen_keys WHERE n <= (SELECT max(n) FROM seen_keys) - ?",
                (KEEP_SENT_KEYS,),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._commits += 1
        self._pending -= cur.rowcount
