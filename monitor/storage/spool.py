"""A durable, bounded, append-only spool of line-protocol batches.

Every batch the InfluxDB sink forms is appended here first and delivered from here,
oldest first; so a batch survives an InfluxDB outage and a restart of heatmon, and
delivery order is the order in which the points were produced.

Layout under ``directory``: segment files ``seg-<seq>.lp`` holding records
(``HMSP`` magic, payload length, point count, CRC-32, then the payload: lines joined by
``\\n``), and ``position`` (the first undelivered record: ``<seq> <offset>``). The
position is saved at most once a second, so after a crash a few delivered batches may
be sent again; that is harmless because every point has a fixed time and tag set and
InfluxDB overwrites it (see :mod:`monitor.storage.lineprotocol`).

A torn record at the end of the newest segment (a crash during a write) is cut off on
open, with a warning. The spool is bounded in bytes: it warns as it fills (50 %, 80 %,
95 %) and, when full, drops the oldest segment, as Telegraf's buffer drops its oldest
metrics, counting and logging every point dropped.

This module keeps the order, the position and the bound; the files' format, their scan
and recovery are in :mod:`monitor.storage.segments`, the records appended lately (served
from memory) in :mod:`monitor.storage.recent`, the fill-level warnings in
:mod:`monitor.storage.fill`.

All methods are synchronous and thread-safe; the sink calls them through
``asyncio.to_thread`` so the event loop never waits on the disk (:meth:`Spool.read_cached`
and :meth:`Spool.commit_in_memory` run on it, never waiting).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import BinaryIO

from monitor.storage.fill import FillWarnings
from monitor.storage.recent import NotCached, RecentRecords
from monitor.storage.segments import (
    Chunk,
    Record,
    SpoolError,
    encode_record,
    fsync_directory,
    read_record,
    recover,
    save_position,
    scan,
    segment_name,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
"""Default bound of the spool on disk."""
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024
"""A segment is closed and a new one started beyond this size."""
POSITION_SAVE_INTERVAL_S = 1.0
"""The delivered position is written to disk at most this often (and on close)."""


class Spool:
    """Segment files of line-protocol batches; see the module docstring."""

    def __init__(
        self,
        *,
        directory: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
    ) -> None:
        if max_bytes < 2 * segment_bytes:
            segment_bytes = max(4096, max_bytes // 4)
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        self._read: tuple[int, int] = (0, 0)
        self._writer: BinaryIO | None = None
        self._writer_seq = -1
        self._pending_points = 0
        self._cache = RecentRecords()
        self._position_saved_at = 0.0
        self._position_dirty = False
        self._fill = FillWarnings(directory)
        self.dropped_points = 0
        self._opened = False

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Scan the directory, cut a torn tail, and resume from the saved position."""
        with self._lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise SpoolError(f"{self.directory}: cannot create spool: {err}") from err
            found = recover(self.directory)
            self._sizes.update(found.sizes)
            self._pending_points += found.points
            self._read = found.read
            self._writer_seq = found.writer_seq
            self._opened = True
            if self._pending_points:
                log.warning(
                    "InfluxDB spool %s holds %d points from before; they will be sent first",
                    self.directory,
                    self._pending_points,
                )

    def close(self) -> None:
        with self._lock:
            self._save_position(force=True)
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            self._opened = False

    # -- state -----------------------------------------------------------------------------

    @property
    def pending_points(self) -> int:
        return self._pending_points

    @property
    def disk_bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def pending_bytes(self) -> int:
        return max(0, self.disk_bytes - (self._read[1] if self._read[0] in self._sizes else 0))

    @property
    def empty(self) -> bool:
        return self._pending_points == 0

    # -- writing ---------------------------------------------------------------------------

    def append(self, payload: bytes, points: int) -> None:
        """Append one batch durably (flushed, and fsynced unless ``fsync=False``)."""
        record = encode_record(payload, points)
        with self._lock:
            if not self._opened:
                raise SpoolError("spool is not open")
            self._make_room(len(record))
            writer = self._writer_for(len(record))
            offset = self._sizes[self._writer_seq]
            writer.write(record)
            writer.flush()
            if self.fsync:
                os.fsync(writer.fileno())
            end = (self._writer_seq, offset + len(record))
            self._sizes[self._writer_seq] = end[1]
            self._pending_points += points
            self._cache.add((self._writer_seq, offset), payload, points, end)
            self._warn_fill()

    def _writer_for(self, size: int) -> BinaryIO:
        current = self._sizes.get(self._writer_seq)
        if current is None or (current > 0 and current + size > self.segment_bytes):
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if current is not None:
                self._writer_seq += 1
            self._writer_seq = max(self._writer_seq, 0)
            self._sizes[self._writer_seq] = 0
        if self._writer is None:
            path = self.directory / segment_name(self._writer_seq)
            self._writer = path.open("ab")
            if self._sizes[self._writer_seq] == 0 and self.fsync:
                fsync_directory(self.directory)
        return self._writer

    def _make_room(self, size: int) -> None:
        while self.disk_bytes + size > self.max_bytes and len(self._sizes) > 0:
            oldest = min(self._sizes)
            if oldest == self._writer_seq:
                if self._writer is not None:  # close the active segment so it can go
                    self._writer.close()
                    self._writer = None
                self._writer_seq += 1
            start = self._read[1] if self._read[0] == oldest else 0
            _, lost = scan(self.directory / segment_name(oldest), start=start, last=False)
            self._remove_segment(oldest)
            self._pending_points -= lost
            self.dropped_points += lost
            nxt = min(self._sizes) if self._sizes else self._writer_seq
            self._read = (nxt, 0)
            self._evict_delivered()
            self._position_dirty = True
            self._save_position(force=True)
            log.error(
                "InfluxDB spool %s is full (%d bytes): dropped its oldest %d points "
                "(%d dropped in all); InfluxDB has been unreachable too long",
                self.directory,
                self.max_bytes,
                lost,
                self.dropped_points,
            )

    def _warn_fill(self) -> None:
        self._fill.update(
            disk_bytes=self.disk_bytes,
            max_bytes=self.max_bytes,
            pending_points=self._pending_points,
        )

    # -- reading ---------------------------------------------------------------------------

    def read(self, *, max_points: int, after: tuple[int, int] | None = None) -> Chunk | None:
        """The oldest undelivered records (at least one, then up to ``max_points``); with
        ``after`` (a chunk's ``end``), the ones after it (a batch sent while the ones
        before it are still being written)."""
        with self._lock:
            return self._read_chunk(max_points, after, disk=True)

    def read_cached(
        self, *, max_points: int, after: tuple[int, int] | None = None
    ) -> tuple[bool, Chunk | None]:
        """As :meth:`read`, but never waiting (for the lock, held by an append's fsync) or
        reading the disk: ``(True, chunk or None)`` when the records are in memory (the
        usual case while the sender keeps up), ``(False, None)`` when :meth:`read` must be
        called (in a thread). The sender calls this on the event loop: a hand-off to a
        thread for every batch cost the loop more than the read itself."""
        if not self._lock.acquire(blocking=False):
            return False, None
        try:
            return True, self._read_chunk(max_points, after, disk=False)
        except NotCached:
            return False, None
        finally:
            self._lock.release()

    def _read_chunk(
        self, max_points: int, after: tuple[int, int] | None, *, disk: bool
    ) -> Chunk | None:
        payloads: list[bytes] = []
        points = 0
        pos = self._read if after is None or after < self._read else after
        first_at: float | None = None
        while True:
            rec = self._record_at(pos, disk=disk)
            if rec is None:
                break
            payload, count, end, appended_at = rec
            if payloads and points + count > max_points:
                break
            if not payloads:
                first_at = appended_at
            payloads.append(payload)
            points += count
            pos = end
            if points >= max_points:
                break
        if not payloads:
            return None
        return Chunk(b"\n".join(payloads), points, len(payloads), pos, first_at)

    def _record_at(self, pos: tuple[int, int], *, disk: bool = True) -> Record | None:
        """The record at ``pos`` (None past the last one); ``disk=False``: from the cache
        alone, raising :class:`NotCached` if it is only on disk."""
        seq, offset = pos
        cached = self._cache.get(pos)
        if cached is not None:
            return cached
        size = self._sizes.get(seq)
        if size is None:
            return None
        if offset >= size:
            later = [s for s in self._sizes if s > seq]
            if not later:
                return None
            return self._record_at((min(later), 0), disk=disk)
        if not disk:
            raise NotCached
        path = self.directory / segment_name(seq)
        record = read_record(path, offset)
        if record is None:
            log.error(
                "InfluxDB spool segment %s is corrupt at byte %d; skipping its rest", path, offset
            )
            self._sizes[seq] = offset
            return self._record_at((seq, offset))
        payload, count, next_offset = record
        return payload, count, (seq, next_offset), None

    def commit(self, chunk: Chunk) -> None:
        """Mark ``chunk`` delivered; delete segments that are fully delivered."""
        with self._lock:
            self._advance(chunk)
            self._save_position(force=False)
            if self._fill.may_clear(disk_bytes=self.disk_bytes, max_bytes=self.max_bytes):
                self._warn_fill()

    def commit_in_memory(self, chunk: Chunk) -> bool:
        """:meth:`commit` on the event loop when it needs neither the disk (no segment to
        delete, the position not due to be saved) nor to wait for the lock; False when
        :meth:`commit` must be called (in a thread). Like :meth:`read_cached`, it saves the
        loop a hand-off to a thread for nearly every batch."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if (
                self._fill.warned
                or time.monotonic() - self._position_saved_at >= POSITION_SAVE_INTERVAL_S
                or any(self._delivered_by(seq, chunk.end) for seq in self._sizes)
            ):
                return False
            self._advance(chunk)
            return True
        finally:
            self._lock.release()

    # -- helpers ---------------------------------------------------------------------------

    def _advance(self, chunk: Chunk) -> None:
        """Move the read position past ``chunk``: delete the segments it completes, drop
        its records from the cache; the position is saved by the caller (or later)."""
        self._read = chunk.end
        self._pending_points -= chunk.points
        for seq in sorted(self._sizes):
            if self._delivered_by(seq, chunk.end):
                self._remove_segment(seq)
        if self._read[0] not in self._sizes and self._sizes:
            self._read = (min(self._sizes), 0)
        self._evict_delivered()
        self._position_dirty = True

    def _delivered_by(self, seq: int, end: tuple[int, int]) -> bool:
        """Whether segment ``seq`` is fully delivered once everything before ``end`` is."""
        return seq < end[0] or (
            seq == end[0] and seq != self._writer_seq and end[1] >= self._sizes[seq]
        )

    def _evict_delivered(self) -> None:
        """Drop cached records before the read position (delivered or dropped). Only here:
        a read that looks past its last record must not evict it, or the record is sent
        again without its append time (and so without waiting for more points)."""
        self._cache.evict_before(self._read)

    def _remove_segment(self, seq: int) -> None:
        if seq == self._writer_seq and self._writer is not None:
            self._writer.close()
            self._writer = None
        self._sizes.pop(seq, None)
        (self.directory / segment_name(seq)).unlink(missing_ok=True)
        self._position_dirty = True

    def _save_position(self, *, force: bool) -> None:
        if not self._position_dirty:
            return
        now = time.monotonic()
        if not force and now - self._position_saved_at < POSITION_SAVE_INTERVAL_S:
            return
        save_position(self.directory, self._read, fsync=self.fsync)
        self._position_saved_at = now
        self._position_dirty = False
