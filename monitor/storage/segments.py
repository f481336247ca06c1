"""The spool's files on disk (``monitor/storage/spool.py`` keeps the order and the bounds,
``monitor/storage/recent.py`` the cache of recent records): segment names and the segments
in a directory, the record format (written by :func:`encode_record`, read back by
:func:`read_record`), a scan that cuts a torn tail, a directory's recovery after a restart
(:func:`recover`), the delivered position and the directory's fsync."""

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


def segment_name(seq: int) -> str:
    return f"seg-{seq:012d}.lp"


def segment_seqs(directory: Path) -> list[int]:
    """The sequence numbers of the segment files in ``directory``, in order."""
    return sorted(
        int(p.name[4:16])
        for p in directory.glob("seg-*.lp")
        if p.name[4:16].isdigit() and len(p.name) == 19
    )


def encode_record(payload: bytes, points: int) -> bytes:
    """One record as it is appended to a segment: the header, then the payload."""
    return HEADER.pack(MAGIC, len(payload), points, zlib.crc32(payload)) + payload


def read_record(path: Path, offset: int) -> tuple[bytes, int, int] | None:
    """The record at ``offset`` of the segment at ``path``: (payload, points, offset of the
    next record); None when it is corrupt (wrong magic, short, or a CRC mismatch)."""
    with path.open("rb") as f:
        f.seek(offset)
        head = f.read(HEADER.size)
        magic, length, count, crc = HEADER.unpack(head)
        payload = f.read(length)
    if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
        return None
    return payload, count, offset + HEADER.size + length


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


@dataclass(frozen=True, slots=True)
class Recovered:
    """What :func:`recover` found in a spool directory."""

    read: tuple[int, int]
    """The first undelivered record."""
    sizes: dict[int, int]
    """Per segment left, its length up to the end of its last whole record."""
    points: int
    """Points not delivered yet."""
    writer_seq: int
    """The segment to append to (the newest)."""


def recover(directory: Path) -> Recovered:
    """Open a spool directory after a restart: delete the segments before the saved
    position, cut a torn tail off the newest segment (:func:`scan`) and count what is left
    to deliver."""
    seqs = segment_seqs(directory)
    read = load_position(directory)
    for seq in seqs:
        if seq < read[0]:
            (directory / segment_name(seq)).unlink(missing_ok=True)
    seqs = [s for s in seqs if s >= read[0]]
    if seqs and read[0] < seqs[0]:
        read = (seqs[0], 0)
    if not seqs:
        read = (read[0], 0)
    sizes: dict[int, int] = {}
    pending = 0
    for n, seq in enumerate(seqs):
        path = directory / segment_name(seq)
        valid_end, points = scan(
            path, start=read[1] if seq == read[0] else 0, last=n == len(seqs) - 1
        )
        sizes[seq] = valid_end
        pending += points
    writer_seq = seqs[-1] if seqs else read[0]
    if seqs and read[1] > sizes[seqs[0]]:
        read = (seqs[0], sizes[seqs[0]])
    return Recovered(read=read, sizes=sizes, points=pending, writer_seq=writer_seq)


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
