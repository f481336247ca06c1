"""A durable local queue of MQTT messages that must not be lost (alerts; a gateway's samples).

Messages are written to SQLite when they are produced and deleted only after the broker has
acknowledged them (PUBACK for QoS 1), so a broker outage or a restart of heatmon loses
nothing. A message may carry a ``key`` (an alert's event id): a key that was queued once is
never queued again, so a re-submitted alert does not go out twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

MEMORY = ":memory:"
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
    """Use as a context manager (or call :meth:`close`). Not thread-safe: one event loop."""

    __slots__ = ("_db", "_pending", "path")

    def __init__(self, *, path: Path | str = MEMORY) -> None:
        self.path = str(path)
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        (self._pending,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()

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
        self._pending += queued
        return queued

    def put_many(self, items: Iterable[tuple[str, bytes]], *, qos: int = 1) -> int:
        """Queue several keyless messages in one transaction."""
        rows = [(t, p, qos) for t, p in items]
        with self._db:
            self._db.executemany(
                "INSERT INTO outbox(topic, payload, qos, retain) VALUES (?, ?, ?, 0)", rows
            )
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
        self._pending -= cur.rowcount
