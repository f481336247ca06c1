"""Retry and backoff live here, in one place, with named constants and jitter.

Every reconnect loop in heatmon (wearables, MQTT, InfluxDB) uses :class:`Backoff`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

BASE_DELAY_S = 0.5
"""First wait after a failure."""
MAX_DELAY_S = 30.0
"""Longest wait between two attempts."""
FACTOR = 2.0
"""Each failure multiplies the wait by this."""
JITTER = 0.25
"""The wait is spread by ± this fraction, so many clients do not retry in step."""


class Backoff:
    """Exponential backoff with jitter. ``next_delay()`` after a failure, ``reset()`` after
    a success."""

    __slots__ = ("_attempt", "_base", "_factor", "_jitter", "_max", "_rng")

    def __init__(
        self,
        *,
        base_s: float = BASE_DELAY_S,
        max_s: float = MAX_DELAY_S,
        factor: float = FACTOR,
        jitter: float = JITTER,
        rng: random.Random | None = None,
    ) -> None:
        if base_s <= 0 or max_s < base_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 < base_s <= max_s, factor >= 1, 0 <= jitter < 1")
        self._base = base_s
        self._max = max_s
        self._factor = factor
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt

    def next_delay(self) -> float:
        raw = min(self._max, self._base * self._factor**self._attempt)
        self._attempt += 1
        spread = raw * self._jitter
        return max(0.0, raw + self._rng.uniform(-spread, spread))

    def reset(self) -> None:
        self._attempt = 0

    def delays(self) -> Iterator[float]:
        while True:
            yield self.next_delay()
