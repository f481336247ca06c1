"""Sample validation: implausible or broken input becomes a flag and a count, never a crash
and never a silent drop.

Ranges: heart rate 30–230 bpm, skin temperature 20–43 °C, core temperature 34–42 °C,
battery 0–100 %. Heart-rate artefacts: 0 bpm (strap off), no-contact, and a sudden doubling
or halving against the recent level (a beat-detection artefact). Timestamps: a repeat of a
recent timestamp of the same stream is a ``duplicate`` (a copy sent or delivered again: QoS 1
redelivery, a gateway re-sending a batch whose PUBACK it lost), an earlier one never seen is
out of order, one more than ``GAP_S`` after the previous is accepted and flagged as
following a gap. Which times are recent: the last ``RECENT_TIMES`` of the stream.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from types import MappingProxyType

from monitor.model import SampleFlag, SampleKind

GAP_S = 10.0
RANGES: Mapping[SampleKind, tuple[float, float]] = MappingProxyType(
    {
        SampleKind.HEART_RATE: (30.0, 230.0),
        SampleKind.SKIN_TEMP: (20.0, 43.0),
        SampleKind.CORE_TEMP: (34.0, 42.0),
        SampleKind.BATTERY: (0.0, 100.0),
    }
)
DOUBLING_BANDS = ((1.8, 2.2), (0.45, 0.55))
"""Ratios to the recent heart rate that look like a doubled or halved beat count."""
DOUBLING_MIN_JUMP_BPM = 35.0
HR_REF_WEIGHT = 0.2
"""Weight of a new accepted heart rate in the running reference."""
ARTEFACT_RESET_COUNT = 15
"""After this many artefacts in a row the new level is believed (it is real, not a glitch)."""
RECENT_TIMES = 128
"""Timestamps a stream remembers to recognise a copy (about 2 min at 1 Hz: a gateway batch
of 250 samples of two kinds sent again); a copy older than that is flagged
``out_of_order``. 1 KB a stream, in a ring of doubles."""


class KindValidator:
    """Validates the samples of one kind from one device, in arrival order."""

    __slots__ = ("_artefacts", "_hi", "_is_hr", "_last_time", "_lo", "_next", "_recent", "_ref")

    def __init__(self, kind: SampleKind) -> None:
        self._lo, self._hi = RANGES[kind]
        self._is_hr = kind is SampleKind.HEART_RATE
        self._last_time = -math.inf
        self._ref = 0.0
        self._artefacts = 0
        self._recent = array("d")
        self._next = 0

    def check(self, value: float, time: float, contact: bool | None = None) -> SampleFlag:
        last = self._last_time
        if time <= last:
            if time == last or time in self._recent:
                return SampleFlag.DUPLICATE
            return SampleFlag.OUT_OF_ORDER
        self._last_time = time
        recent = self._recent
        if len(recent) < RECENT_TIMES:
            recent.append(time)
        else:
            recent[self._next] = time
            self._next = (self._next + 1) % RECENT_TIMES
        if value != value or value in (math.inf, -math.inf):  # NaN check without a call
            return SampleFlag.INVALID
        gap = time - last > GAP_S
        if self._is_hr:
            if contact is False:
                return SampleFlag.NO_CONTACT
            if value == 0.0:
                return SampleFlag.ZERO
        if value < self._lo or value > self._hi:
            return SampleFlag.OUT_OF_RANGE
        if self._is_hr:
            ref = self._ref
            if ref > 0.0 and not gap and abs(value - ref) >= DOUBLING_MIN_JUMP_BPM:
                ratio = value / ref
                for lo, hi in DOUBLING_BANDS:
                    if lo <= ratio <= hi:
                        self._artefacts += 1
                        if self._artefacts < ARTEFACT_RESET_COUNT:
                            return SampleFlag.DOUBLED
                        self._ref = value
                        break
            self._artefacts = 0
            self._ref = value if (ref == 0.0 or gap) else ref + HR_REF_WEIGHT * (value - ref)
        return SampleFlag.GAP if gap and last != -math.inf else SampleFlag.OK
