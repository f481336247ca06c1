"""Where a patient's 10-s windows end.

The engine steps each patient once per window (``[engine] step_s``). With
``window_phase = "patient"`` (the default) each patient's windows end at an offset of their
own within the step, the same for that patient every run (from a CRC-32 of the id): the
states and alerts of a thousand patients then come spread over every second, not all in
the second after each 10-s mark of the clock (which made every tenth second a burst of
work and delayed the alerts in it). ``"clock"`` ends every window on a multiple of the step
(times easy to read, e.g. to compare with another tool).
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
