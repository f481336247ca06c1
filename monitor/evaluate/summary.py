"""Totals over sessions, the targets detection must meet, and the JSON form."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitor.evaluate.metrics import SessionScore


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (as numpy's default), ``q`` in 0–100."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Summary:
    sessions: int
    sessions_crossing: int
    detected_in_time: int
    detected_late: int
    missed: int
    sensitivity: float | None
    lead_median_min: float | None
    lead_p10_min: float | None
    lead_p90_min: float | None
    exercise_hours: float
    false_cool_downs: int
    false_cool_downs_per_hour: float | None
    cool_down_low_min: float
    rmse_rise_c: float | None
    bias_rise_c: float | None
    rmse_core_c: float | None
    bias_core_c: float | None
    coverage_95: float | None
    estimates_scored: int


def summarize(scores: Sequence[SessionScore]) -> Summary:
    crossing = [s for s in scores if s.crossing is not None]
    leads = [s.lead_min for s in crossing if s.lead_min is not None]
    in_time = sum(1 for s in crossing if s.detected_in_time)
    late = sum(1 for s in crossing if s.lead_min is not None and s.lead_min < 0)
    hours = sum(s.exercise_hours for s in scores)
    false = sum(s.false_cool_downs for s in scores)
    n = sum(s.n_errors for s in scores)

    def pooled(total: float) -> float | None:
        return total / n if n else None

    sq_rise = pooled(sum(s.sum_sq_err_rise for s in scores))
    sq_core = pooled(sum(s.sum_sq_err_core for s in scores))
    return Summary(
        sessions=len(scores),
        sessions_crossing=len(crossing),
        detected_in_time=in_time,
        detected_late=late,
        missed=len(crossing) - len(leads),
        sensitivity=in_time / len(crossing) if crossing else None,
        lead_median_min=percentile(leads, 50),
        lead_p10_min=percentile(leads, 10),
        lead_p90_min=percentile(leads, 90),
        exercise_hours=hours,
        false_cool_downs=false,
        false_cool_downs_per_hour=false / hours if hours > 0 else None,
        cool_down_low_min=sum(s.cool_down_low_min for s in scores),
        rmse_rise_c=math.sqrt(sq_rise) if sq_rise is not None else None,
        bias_rise_c=pooled(sum(s.sum_err_rise for s in scores)),
        rmse_core_c=math.sqrt(sq_core) if sq_core is not None else None,
        bias_core_c=pooled(sum(s.sum_err_core for s in scores)),
        coverage_95=pooled(sum(s.n_covered for s in scores)),
        estimates_scored=n,
    )


@dataclass(frozen=True, slots=True)
class Target:
    metric: str
    label: str
    low: float | None
    high: float | None

    def met(self, summary: Summary) -> bool | None:
        value = getattr(summary, self.metric)
        if value is None:
            return None
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


TARGETS: tuple[Target, ...] = (
    Target("sensitivity", "sensitivity (alert no later than the crossing) ≥ 0.97", 0.97, None),
    Target("lead_median_min", "median lead 3–10 min", 3.0, 10.0),
    Target("lead_p90_min", "p90 lead ≤ 15 min", None, 15.0),
    Target("false_cool_downs_per_hour", "false cool-downs ≤ 0.1 per exercise-hour", None, 0.1),
    Target("rmse_rise_c", "RMSE of the rise ≤ 0.25 °C", None, 0.25),
    Target("coverage_95", "95 % band coverage 85–99 %", 0.85, 0.99),
)
"""What issue 9 asks of detection on data no parameter was chosen on."""


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def score_json(score: SessionScore) -> dict[str, Any]:
    return {
        "patient": score.patient,
        "session": score.session,
        "threshold_c": score.threshold_c,
        "exercise_hours": _round(score.exercise_hours),
        "max_true_rise_c": _round(score.max_true_rise_c),
        "crossing": _round(score.crossing),
        "lead_min": _round(score.lead_min),
        "detected_in_time": score.detected_in_time,
        "cool_down_episodes": len(score.episodes),
        "false_cool_downs": score.false_cool_downs,
        "cool_down_low_min": _round(score.cool_down_low_min),
        "rmse_rise_c": _round(score.rmse_rise_c),
        "bias_rise_c": _round(score.bias_rise_c),
        "rmse_core_c": _round(score.rmse_core_c),
        "bias_core_c": _round(score.bias_core_c),
        "coverage_95": _round(score.coverage),
        "estimates_scored": score.n_errors,
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    out = {k: _round(getattr(summary, k)) for k in Summary.__dataclass_fields__}
    out["targets"] = [
        {"target": t.label, "metric": t.metric, "met": t.met(summary)} for t in TARGETS
    ]
    return out
