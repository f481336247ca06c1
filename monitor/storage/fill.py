"""How full the spool is, said to the operator: a warning as it passes 50 %, 80 % and 95 %
of its bound (each once), and a note when it is below half full again. The bound itself
(dropping the oldest segment when full) is the spool's (:mod:`monitor.storage.spool`)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

WARN_FRACTIONS = (0.5, 0.8, 0.95)
"""Fill levels at which the spool warns, loudly."""


class FillWarnings:
    """The fill level last warned about (``warned``: 0.0 when below the first one)."""

    __slots__ = ("directory", "warned")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.warned = 0.0

    def may_clear(self, *, disk_bytes: int, max_bytes: int) -> bool:
        """Whether the spool may have gone below half full since the last warning."""
        return bool(self.warned) and disk_bytes < max_bytes * WARN_FRACTIONS[0]

    def update(self, *, disk_bytes: int, max_bytes: int, pending_points: int) -> None:
        """Warn when the spool reached a higher level than last said, note when it is
        below half full again."""
        fill = disk_bytes / max_bytes
        reached = max((f for f in WARN_FRACTIONS if fill >= f), default=0.0)
        if reached > self.warned:
            log.warning(
                "InfluxDB spool %s is %.0f%% full (%d of %d bytes, %d points waiting); "
                "when full, the oldest points are dropped",
                self.directory,
                fill * 100,
                disk_bytes,
                max_bytes,
                pending_points,
            )
            self.warned = reached
        elif reached == 0.0 and self.warned:
            log.info("InfluxDB spool %s is below half full again", self.directory)
            self.warned = 0.0
