"""The quarantine file: batches InfluxDB refused (400/422) and points that cannot be
written at all, kept with the reason for a person to look at, never retried.

JSON lines, one record per refused batch: ``time`` (ISO 8601 UTC), ``reason``, ``points``
and ``lines`` (the line protocol). The file is bounded: beyond ``max_bytes`` it is
rotated (``quarantine.jsonl`` → ``quarantine.jsonl.1`` → … → ``.<keep>``, the oldest
deleted), so a stream of bad data cannot fill the disk; a record that alone is larger
than ``max_bytes`` keeps its head, marked ``"truncated": true``. Every rotation is logged.

Synchronous and thread-safe; the sink calls :meth:`QuarantineFile.add` through
``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from monitor.model import iso_utc

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
"""Size of one quarantine file before it is rotated."""
DEFAULT_KEEP = 3
"""Rotated files kept besides the current one."""


class QuarantineFile:
    """A size-capped, rotated JSON-lines file of refused line protocol."""

    def __init__(
        self, *, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotations = 0
        self._lock = threading.Lock()

    def rotated(self, n: int) -> Path:
        """The ``n``-th rotated file (1 is the newest)."""
        return self.path.with_name(f"{self.path.name}.{n}")

    def files(self) -> list[Path]:
        """The current file and the rotated ones that exist, newest first."""
        paths = [self.path, *(self.rotated(n) for n in range(1, self.keep + 1))]
        return [p for p in paths if p.exists()]

    def add(self, *, reason: str, lines: str, points: int) -> None:
        """Append one record (rotating first when it would not fit)."""
        record: dict[str, object] = {
            "time": iso_utc(time.time()),
            "reason": reason,
            "points": points,
            "lines": lines,
        }
        data = _encode(record)
        if len(data) > self.max_bytes:
            record["truncated"] = True
            kept = lines
            # cut in proportion first, then by the bytes still over; each step cuts
            while (excess := len(data := _encode(record)) - self.max_bytes) > 0 and kept:
                proportional = len(kept) * self.max_bytes // len(data)
                kept = kept[: max(0, min(len(kept) - 1, max(len(kept) - excess, proportional)))]
                record["lines"] = kept
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with self.path.open("ab") as f:
                f.write(data)

    def _rotate(self) -> None:
        oldest = self.rotated(self.keep)
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            oldest.unlink(missing_ok=True)
            for n in range(self.keep - 1, 0, -1):
                if self.rotated(n).exists():
                    self.rotated(n).replace(self.rotated(n + 1))
            self.path.replace(self.rotated(1))
        self.rotations += 1
        log.warning(
            "quarantine file %s reached %d bytes: rotated (keeping %d older files; the "
            "oldest quarantined points are deleted)",
            self.path,
            self.max_bytes,
            self.keep,
        )


def _encode(record: dict[str, object]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()
