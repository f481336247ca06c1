"""A sliding-window limit per key: failed logins per name and address (the dashboard),
symptom reports per patient (the dashboard, MQTT, cluster mode)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger(__name__)

LOG_EVERY_N_LIMITED = 100
"""After the first, only every n-th symptom report over the limit is logged (each counted)."""
MAX_LIMITER_KEYS = 10_000
"""Keys (login names, addresses, patients) counted at most; past it the keys whose window
has passed are forgotten first, a lockout in force last (:meth:`WindowLimiter._evict`)."""


class WindowLimiter:
    """At most ``max_events`` per key within ``window_s``: :meth:`note` counts one,
    :meth:`retry_after` says how long until the next is allowed."""

    __slots__ = ("_clock", "_events", "_max", "_window_s")

    def __init__(
        self, *, max_events: int, window_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._max = max_events
        self._window_s = window_s
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float] | None:
        times = self._events.get(key)
        if times is None:
            return None
        horizon = self._clock() - self._window_s
        while times and times[0] < horizon:
            times.popleft()
        if not times:
            del self._events[key]
            return None
        return times

    def retry_after(self, *keys: str) -> float:
        """Seconds until another event is allowed for every key (0 when allowed now)."""
        wait = 0.0
        for key in keys:
            times = self._recent(key)
            if times is not None and len(times) >= self._max:
                wait = max(wait, times[0] + self._window_s - self._clock())
        return wait

    def note(self, *keys: str) -> None:
        """Count one event for each key (a failed login, a symptom report taken)."""
        now = self._clock()
        for key in keys:
            times = self._events.setdefault(key, deque(maxlen=self._max))
            times.append(now)
            self._events.move_to_end(key)
        if len(self._events) > MAX_LIMITER_KEYS:
            self._evict()

    def _evict(self) -> None:
        """Down to 90 % of :data:`MAX_LIMITER_KEYS` (so this runs once in many notes):
        first the keys whose window has passed, then the oldest under their limit, and
        only then keys at their limit. A flood of failures under other names (many
        addresses) therefore cannot push out, and so lift, a lockout in force."""
        events = self._events
        target = MAX_LIMITER_KEYS * 9 // 10
        horizon = self._clock() - self._window_s
        for done in (
            lambda times: not times or times[-1] < horizon,
            lambda times: len(times) < self._max,
        ):
            for key in [k for k, times in events.items() if done(times)]:
                if len(events) <= target:
                    return
                del events[key]
        while len(events) > MAX_LIMITER_KEYS:
            events.popitem(last=False)

    def forget(self, *keys: str) -> None:
        """Start the keys' counts afresh (a successful login)."""
        for key in keys:
            self._events.pop(key, None)


class SymptomLimit:
    """Symptom reports a patient's gateway or app may send a minute (``[sinks.mqtt]
    symptoms_per_minute``), for the inputs that take them from MQTT or NATS: one over the
    limit is dropped by policy, counted and logged (the first, then every n-th; never who),
    so a flooding device neither fills storage nor skews the threshold learning. (The
    dashboard answers 429 with its own :class:`WindowLimiter`.)"""

    __slots__ = ("_input", "_window", "limited", "per_minute")

    def __init__(
        self, *, per_minute: int, input_name: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.per_minute = per_minute
        self._input = input_name
        self._window = WindowLimiter(max_events=per_minute, window_s=60.0, clock=clock)
        self.limited = 0
        """Reports dropped so far."""

    def over(self, patient: str) -> bool:
        """Whether a report for ``patient`` now is over the limit (then counted in
        :attr:`limited` and logged): the caller drops it."""
        if self._window.retry_after(patient) <= 0:
            return False
        self.limited += 1
        if self.limited == 1 or self.limited % LOG_EVERY_N_LIMITED == 0:
            log.warning(
                "%s: symptom report #%d over the limit of %d a minute for one patient "
                "(symptoms_per_minute); dropped (counted as symptoms_limited)",
                self._input,
                self.limited,
                self.per_minute,
            )
        return True

    def taken(self, patient: str) -> None:
        """A report for ``patient`` was taken: it counts toward the limit (a refused one
        costs nothing)."""
        self._window.note(patient)
