"""The spool's files on disk (``monitor/storage/spool.py`` keeps the order, the bounds and
the cache): segment names, the record header, a scan that cuts a torn tail, the delivered
position and the directory's fsync."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import HeatmonError

log = logging.getLogger(__name__)

MAGIC = b"HMSP"
HEADER = struct.Struct("<4sIII")  # magic, payload length, point count, crc32
POSITION_FILE = "position"


class SpoolError(HeatmonError):
    """The spool directory cannot be used."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive records read from the spool, to be sent as one request."""

    payload: bytes
    points: int
    records: int
    end: tuple[int, int]
    first_appended_at: float | None = None
    """``time.monotonic()`` when the first record was appended, if it was appended by this
    process (None for a record read back from disk, e.g. after a restart)."""


Record = tuple[bytes, int, tuple[int, int], float | None]
"""A record read: payload, points, end position, append time (None if read from disk)."""


class NotCached(HeatmonError):
    """A record :meth:`Spool.read_cached` would have to read from disk."""


@dataclass(slots=True)
class CachedRecord:
    pos: tuple[int, int]
    payload: bytes
    points: int
    end: tuple[int, int]
    appended_at: float


def segment_name(seq: int) -> str:
    return f"seg-{seq:012d}.lp"


def scan(path: Path, *, start: int, last: bool) -> tuple[int, int]:
    """(end of the last whole record, points after ``start``) of the segment at ``path``;
    cuts a torn tail (``last``: the segment written last, whose records' CRCs are checked)."""
    points = 0
    offset = 0
    size = path.stat().st_size
    with path.open("rb") as f:
        while offset + HEADER.size <= size:
            f.seek(offset)
            magic, length, count, crc = HEADER.unpack(f.read(HEADER.size))
            if magic != MAGIC or offset + HEADER.size + length > size:
                break
            if last:
                payload = f.read(length)
                if zlib.crc32(payload) != crc:
                    break
            if offset >= start:
                points += count
            offset += HEADER.size + length
    if offset != size:
        log.warning(
            "InfluxDB spool segment %s ends in a torn record (crash during a write); "
            "cutting %d bytes",
            path,
            size - offset,
        )
        with path.open("r+b") as f:
            f.truncate(offset)
    return offset, points


def load_position(directory: Path) -> tuple[int, int]:
    """The delivered position saved in ``directory`` ((0, 0): replay everything)."""
    path = directory / POSITION_FILE
    try:
        seq_text, off_text = path.read_text(encoding="ascii").split()
        return int(seq_text), int(off_text)
    except FileNotFoundError:
        return (0, 0)
    except (OSError, ValueError):
        log.warning("InfluxDB spool position file %s is unreadable; replaying all", path)
        return (0, 0)


def save_position(directory: Path, position: tuple[int, int], *, fsync: bool) -> None:
    """Write the delivered position (a temporary file, fsynced, then renamed over)."""
    path = directory / POSITION_FILE
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="ascii") as f:
        f.write(f"{position[0]} {position[1]}\n")
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    tmp.replace(path)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
