"""Detection metrics for one session, from the engine's estimates and the measured core.

Pure functions on plain sequences; :mod:`monitor.evaluate.run` feeds them. Definitions (also
in docs/research.md):

* **true rise**: measured core minus its mean over the session's rest period (the first
  ``BASELINE_S``), linearly interpolated between readings; no value further than
  ``MAX_TRUTH_GAP_S`` from a reading.
* **crossing**: the first moment the true rise reaches the patient's threshold.
* **cool-down episode**: consecutive estimates at level ``cool_down``.
* **lead**: crossing time minus the start of the episode in effect at the crossing (≥ 0), or,
  if none, minus the start of the first episode after it (negative = late). **Detected in
  time** when lead ≥ 0; **sensitivity** = detected in time / sessions with a crossing.
* **false cool-down**: an episode during which, and for ``FALSE_WINDOW_S`` after its start,
  the true rise stayed below threshold − ``LOW_MARGIN_C``.
* **minutes in cool-down while low**: estimate steps at ``cool_down`` whose true rise was
  below threshold − ``LOW_MARGIN_C``.
* **errors**: estimated minus true rise (and absolute core), over the estimates after the rest
  period that have a true value; **coverage**: share of those with the true rise inside the
  estimate ± 1.96 SD.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

BASELINE_S = 120.0
LOW_MARGIN_C = 0.15
FALSE_WINDOW_S = 15 * 60.0
MAX_TRUTH_GAP_S = 120.0
Z95 = 1.959964
COOL_DOWN = "cool_down"


@dataclass(slots=True)
class SessionScore:
    patient: str
    session: str
    threshold_c: float
    start: float
    stop: float
    exercise_hours: float
    max_true_rise_c: float | None
    crossing: float | None
    """Epoch seconds of the first crossing of the threshold (None: never reached)."""
    lead_min: float | None
    """Minutes the alert came before the crossing (negative = late; None = none at all)."""
    episodes: list[tuple[float, float]] = field(default_factory=list)
    false_cool_downs: int = 0
    cool_down_low_min: float = 0.0
    n_errors: int = 0
    sum_err_rise: float = 0.0
    sum_sq_err_rise: float = 0.0
    sum_err_core: float = 0.0
    sum_sq_err_core: float = 0.0
    n_covered: int = 0

    @property
    def detected_in_time(self) -> bool:
        return self.lead_min is not None and self.lead_min >= 0.0

    @property
    def rmse_rise_c(self) -> float | None:
        return math.sqrt(self.sum_sq_err_rise / self.n_errors) if self.n_errors else None

    @property
    def bias_rise_c(self) -> float | None:
        return self.sum_err_rise / self.n_errors if self.n_errors else None

    @property
    def rmse_core_c(self) -> float | None:
        return math.sqrt(self.sum_sq_err_core / self.n_errors) if self.n_errors else None

    @property
    def bias_core_c(self) -> float | None:
        return self.sum_err_core / self.n_errors if self.n_errors else None

    @property
    def coverage(self) -> float | None:
        return self.n_covered / self.n_errors if self.n_errors else None


class Truth:
    """Measured core readings of one session, as a function of time."""

    __slots__ = ("baseline", "times", "values")

    def __init__(self, times: Sequence[float], values: Sequence[float], *, start: float) -> None:
        self.times: array[float] = array("d", times)
        self.values: array[float] = array("d", values)
        rest = [v for t, v in zip(self.times, self.values, strict=True) if t < start + BASELINE_S]
        if rest:
            self.baseline: float | None = sum(rest) / len(rest)
        else:
            self.baseline = self.values[0] if self.values else None

    def core_at(self, t: float) -> float | None:
        times = self.times
        i = bisect.bisect_left(times, t)
        if i < len(times) and times[i] == t:
            return self.values[i]
        if i == 0 or i == len(times):
            near = times[0] if i == 0 else times[-1]
            if not times or abs(near - t) > MAX_TRUTH_GAP_S:
                return None
            return self.values[0] if i == 0 else self.values[-1]
        t0, t1 = times[i - 1], times[i]
        if min(t - t0, t1 - t) > MAX_TRUTH_GAP_S:
            return None
        v0, v1 = self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def rise_at(self, t: float) -> float | None:
        core = self.core_at(t)
        if core is None or self.baseline is None:
            return None
        return core - self.baseline

    def crossing(self, threshold: float, *, after: float) -> float | None:
        """First time the rise reaches ``threshold`` (interpolated between readings)."""
        base = self.baseline
        if base is None:
            return None
        prev_t: float | None = None
        prev_r = 0.0
        for t, v in zip(self.times, self.values, strict=True):
            r = v - base
            if t >= after and r >= threshold:
                if prev_t is None or t - prev_t > MAX_TRUTH_GAP_S or r == prev_r:
                    return t
                return prev_t + (threshold - prev_r) / (r - prev_r) * (t - prev_t)
            prev_t, prev_r = t, r
        return None

    def max_rise(self, start: float, stop: float) -> float | None:
        base = self.baseline
        if base is None:
            return None
        inside = [
            v - base for t, v in zip(self.times, self.values, strict=True) if start <= t <= stop
        ]
        for edge in (start, stop):
            r = self.rise_at(edge)
            if r is not None:
                inside.append(r)
        return max(inside) if inside else None


def cool_down_episodes(
    times: Sequence[float], levels: Sequence[str], step_s: float
) -> list[tuple[float, float]]:
    """(start, end) of each run of ``cool_down`` estimates; end = last such estimate + step."""
    episodes: list[tuple[float, float]] = []
    start: float | None = None
    last = 0.0
    for t, level in zip(times, levels, strict=True):
        if level == COOL_DOWN:
            if start is None:
                start = t
            last = t
        elif start is not None:
            episodes.append((start, last + step_s))
            start = None
    if start is not None:
        episodes.append((start, last + step_s))
    return episodes


def score_session(
    *,
    patient: str,
    session: str,
    threshold_c: float,
    times: Sequence[float],
    est_rise: Sequence[float],
    est_core: Sequence[float],
    est_sd: Sequence[float],
    levels: Sequence[str],
    truth: Truth,
    start: float,
    step_s: float = 10.0,
) -> SessionScore:
    """Score one session. ``times`` … ``levels`` are the engine's estimates in time order."""
    stop = times[-1] if times else start
    after = start + BASELINE_S
    episodes = cool_down_episodes(times, levels, step_s)
    crossing = truth.crossing(threshold_c, after=after)
    lead: float | None = None
    if crossing is not None:
        for a, b in episodes:
            if a <= crossing < b:
                lead = (crossing - a) / 60.0
                break
        else:
            later = [a for a, _ in episodes if a > crossing]
            if later:
                lead = (crossing - later[0]) / 60.0
    score = SessionScore(
        patient=patient,
        session=session,
        threshold_c=threshold_c,
        start=start,
        stop=stop,
        exercise_hours=max(0.0, stop - after) / 3600.0,
        max_true_rise_c=truth.max_rise(after, stop),
        crossing=crossing,
        lead_min=lead,
        episodes=episodes,
    )
    low = threshold_c - LOW_MARGIN_C
    for a, b in episodes:
        peak = truth.max_rise(a, max(b, a + FALSE_WINDOW_S))
        if peak is not None and peak < low:
            score.false_cool_downs += 1
    for i, t in enumerate(times):
        if t < after:
            continue
        rise = truth.rise_at(t)
        core = truth.core_at(t)
        if rise is None or core is None:
            continue
        if levels[i] == COOL_DOWN and rise < low:
            score.cool_down_low_min += step_s / 60.0
        e = est_rise[i] - rise
        ec = est_core[i] - core
        score.n_errors += 1
        score.sum_err_rise += e
        score.sum_sq_err_rise += e * e
        score.sum_err_core += ec
        score.sum_sq_err_core += ec * ec
        if abs(e) <= Z95 * est_sd[i]:
            score.n_covered += 1
    return score
