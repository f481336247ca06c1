"""The spool's cache of recent records: what was appended lately stays in memory (up to
:data:`CACHE_BYTES`), so the sender reads it on the event loop, without a thread and
without reading it back from disk. The order, the bounds and the position are the spool's
(:mod:`monitor.storage.spool`), the files' format :mod:`monitor.storage.segments`'."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from monitor.errors import HeatmonError
from monitor.storage.segments import Record

CACHE_BYTES = 16 * 1024 * 1024
"""Recently appended records are kept in memory up to this size, to be sent without
reading them back from disk."""


class NotCached(HeatmonError):
    """A record :meth:`Spool.read_cached` would have to read from disk."""


@dataclass(slots=True)
class CachedRecord:
    pos: tuple[int, int]
    payload: bytes
    points: int
    end: tuple[int, int]
    appended_at: float


class RecentRecords:
    """The records appended lately, oldest first, at most ``max_bytes`` of payload. Not
    thread-safe by itself: the spool calls it under its lock."""

    __slots__ = ("_bytes", "_records", "max_bytes")

    def __init__(self, *, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._records: deque[CachedRecord] = deque()
        self._bytes = 0

    def add(self, pos: tuple[int, int], payload: bytes, points: int, end: tuple[int, int]) -> None:
        """Keep the record just appended at ``pos`` (ending at ``end``), if it fits."""
        if self._bytes + len(payload) <= self.max_bytes:
            self._records.append(CachedRecord(pos, payload, points, end, time.monotonic()))
            self._bytes += len(payload)

    def get(self, pos: tuple[int, int]) -> Record | None:
        """The record at ``pos`` with its append time, if it is in memory."""
        for cached in self._records:
            if cached.pos == pos:
                return cached.payload, cached.points, cached.end, cached.appended_at
            if cached.pos > pos:
                break
        return None

    def evict_before(self, pos: tuple[int, int]) -> None:
        """Drop the records before ``pos`` (the spool's read position)."""
        while self._records and self._records[0].pos < pos:
            self._bytes -= len(self._records.popleft().payload)
