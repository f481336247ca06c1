"""The alert-level state machine: ok → caution → cool_down, and back with hysteresis.

Rules (see ``docs/architecture.md`` § Engine):

* A level goes **up** at once: ``cool_down`` when the estimated rise is at or past the
  threshold, or forecast to reach it within the lead time; ``caution`` when it is past
  ``threshold − margin`` or forecast to reach the threshold within the horizon.
* A level comes **down** only after it has been held ``min_dwell_s``, only when the rise
  is ``hysteresis_c`` below the line that raised it (and the forecast is quiet), and never
  while the rise is still climbing, so noise cannot make it flap.
* After an episode (any level above ``ok``) a separate *recovered* notice comes once the rise
  is below ``recovered_c``, with the minutes it took from the alert.
"""

from __future__ import annotations

from typing import NamedTuple

from monitor.model import Level

HYSTERESIS_C = 0.1
MIN_DWELL_S = 60.0
RECOVERED_C = 0.15
FORECAST_RELEASE_FACTOR = 1.5
"""A forecast that raised a level must move this many times further out to release it."""


class RiskUpdate(NamedTuple):
    level: Level
    previous: Level
    changed: bool
    recovered_after_min: float | None


class RiskStateMachine:
    __slots__ = (
        "_caution_c",
        "_episode_start",
        "_horizon_min",
        "_hyst_c",
        "_lead_min",
        "_min_dwell_s",
        "_recovered_c",
        "_threshold_c",
        "level",
        "since",
    )

    def __init__(
        self,
        *,
        threshold_c: float,
        caution_c: float,
        horizon_min: float,
        lead_min: float,
        hysteresis_c: float = HYSTERESIS_C,
        min_dwell_s: float = MIN_DWELL_S,
        recovered_c: float = RECOVERED_C,
    ) -> None:
        if not 0 <= caution_c <= threshold_c:
            raise ValueError("need 0 <= caution_c <= threshold_c")
        self._threshold_c = threshold_c
        self._caution_c = caution_c
        self._horizon_min = horizon_min
        self._lead_min = lead_min
        self._hyst_c = hysteresis_c
        self._min_dwell_s = min_dwell_s
        self._recovered_c = min(recovered_c, max(caution_c - hysteresis_c, 0.0))
        self.level = Level.OK
        self.since: float | None = None
        self._episode_start: float | None = None

    def set_thresholds(self, *, threshold_c: float, caution_c: float) -> None:
        """A person changed the threshold (an accepted personal threshold): the level and
        its episode carry on; the next step judges against the new lines."""
        if not 0 <= caution_c <= threshold_c:
            raise ValueError("need 0 <= caution_c <= threshold_c")
        self._threshold_c = threshold_c
        self._caution_c = caution_c
        self._recovered_c = min(RECOVERED_C, max(caution_c - self._hyst_c, 0.0))

    def _target(self, delta: float, mtt: float | None, *, release: bool) -> Level:
        h = self._hyst_c if release else 0.0
        f = FORECAST_RELEASE_FACTOR if release else 1.0
        if delta >= self._threshold_c - h or (mtt is not None and mtt <= self._lead_min * f):
            return Level.COOL_DOWN
        if delta >= self._caution_c - h or (mtt is not None and mtt <= self._horizon_min * f):
            return Level.CAUTION
        return Level.OK

    def update(
        self,
        now: float,
        delta: float,
        minutes_to_threshold: float | None,
        *,
        rising: bool = False,
    ) -> RiskUpdate:
        """Take the estimated rise at ``now``. ``rising`` (the rise is still climbing)
        holds the level: it never comes down while the core is still warming."""
        previous = self.level
        if self.since is None:
            self.since = now
        up = self._target(delta, minutes_to_threshold, release=False)
        new = previous
        if up.rank > previous.rank:
            new = up
        elif not rising and now - self.since >= self._min_dwell_s:
            down = self._target(delta, minutes_to_threshold, release=True)
            if down.rank < previous.rank:
                new = down
        recovered_after: float | None = None
        if new is not previous:
            self.level = new
            self.since = now
            if previous is Level.OK:
                self._episode_start = now
        if self.level is Level.OK and self._episode_start is not None and delta < self._recovered_c:
            recovered_after = (now - self._episode_start) / 60.0
            self._episode_start = None
        return RiskUpdate(self.level, previous, new is not previous, recovered_after)

    @property
    def in_episode(self) -> bool:
        return self._episode_start is not None

    @property
    def recovered_c(self) -> float:
        return self._recovered_c
