"""Where a patient's 10-s windows end.

The engine steps each patient once per window (``[engine] step_s``). By default
(``window_phase = "clock"``) every window ends on a multiple of the step: times easy to
read and to join with other series, and what heatmon has always stored. With
``window_phase = "patient"`` each patient's windows end at an offset of their own within
the step, the same for that patient every run (from a CRC-32 of the id): the states and
alerts of a thousand patients then come spread over every second, not all in the second
after each 10-s mark of the clock, which makes every tenth second a burst of work and
delays the alerts in it (``bench/peer_nodered.py --window-phase patient``; README,
"Benchmarks"). It moves each patient's window grid by a constant, so a steep rise may be
judged a window earlier or later than on the clock's grid.
"""

from __future__ import annotations

import zlib

PHASE_RESOLUTION_S = 0.001
"""Offsets are whole milliseconds."""


def window_phase(patient: str, step_s: float, mode: str) -> float:
    """The offset (s, in ``[0, step_s)``) of ``patient``'s window ends from multiples of
    ``step_s``: 0 with ``mode == "clock"``."""
    if mode == "clock":
        return 0.0
    slots = max(1, int(step_s / PHASE_RESOLUTION_S))
    return (zlib.crc32(patient.encode("utf-8")) % slots) * PHASE_RESOLUTION_S
