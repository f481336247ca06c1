"""Learning a patient's own onset rise from their "I feel symptoms" reports (pure: no I/O,
no clock).

Each report carries the estimated rise of core temperature at that moment and the
estimate's standard deviation. The first report of a session is that session's *onset*:
the rise at which this person felt symptoms that day. Across sessions the onsets are combined
with a prior centred on the clinician's configured threshold (a conjugate normal model, see
``docs/physiology.md`` § "Personal thresholds"), giving the patient's onset rise with its
uncertainty. :func:`evaluate` *suggests* a personal threshold only when the evidence
supports one; it never changes anything. A person accepts or rejects a suggestion
(:mod:`monitor.thresholds`); the engine never changes a threshold on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

PRIOR_SD_C = 0.15
"""Spread of onset rises between people: the prior puts 95 % of them within ±0.3 °C of the
configured threshold (0.2–0.8 °C around the default 0.5 °C)."""
BETWEEN_SD_C = 0.10
"""Day-to-day spread of one person's onset rise (fatigue, time of day, hydration, the
moment they notice and press), added to each report's own estimation error."""
DEFAULT_REPORT_SD_C = 0.15
"""A report's estimation error when the estimate came without one."""
MIN_REPORT_SD_C = 0.02
"""No estimate is trusted to better than this, whatever the estimator says."""
MIN_REPORTS = 3
"""Onsets (first reports of a session) needed before anything is suggested."""
MIN_SESSIONS = 2
"""...and they must come from at least this many sessions."""
MAX_POSTERIOR_SD_C = 0.08
"""A suggestion needs the onset rise known to within this standard deviation."""
MIN_CHANGE_C = 0.05
"""A suggestion must differ from the threshold in force by at least this much."""
FLOOR_C = 0.30
"""Nothing below this is ever suggested: below about +0.3 °C the estimate's own error and
the normal variation of core temperature at rest would make "cool down now" come at the
start of almost every session."""
CEILING_C = 1.0
"""Nothing above this is ever suggested: a threshold past +1 °C would let the rise go far
beyond what the literature reports for Uhthoff symptoms."""
SAFETY_Z = 1.0
"""The suggestion is the onset estimate less this many posterior sds (its lower 84 % bound):
the less certain the estimate, the earlier the alert. It is made only when it lies on the
same side of the threshold in force as the estimate itself."""
MAX_ONSETS = 20
"""Only the most recent sessions count: MS changes over months."""
RISE_RANGE_C = (-0.5, 2.5)
"""Rises outside this range are not plausible estimates and are ignored."""
STEP_C = 0.01
"""Suggestions are rounded to this."""
Z95 = 1.96


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """One "I feel symptoms" report: the estimated rise (°C) and its sd at that moment."""

    session: str
    time: float
    rise_c: float | None
    sd_c: float | None = None
    id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Posterior:
    """The patient's onset rise: normal with ``mean_c`` and ``sd_c``."""

    mean_c: float
    sd_c: float
    n_reports: int
    n_sessions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """The constants above, as one value (tests and a study may change them)."""

    prior_sd_c: float = PRIOR_SD_C
    between_sd_c: float = BETWEEN_SD_C
    default_report_sd_c: float = DEFAULT_REPORT_SD_C
    min_reports: int = MIN_REPORTS
    min_sessions: int = MIN_SESSIONS
    max_posterior_sd_c: float = MAX_POSTERIOR_SD_C
    min_change_c: float = MIN_CHANGE_C
    floor_c: float = FLOOR_C
    ceiling_c: float = CEILING_C
    max_onsets: int = MAX_ONSETS
    safety_z: float = SAFETY_Z


DEFAULT_RULES = Rules()


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """What the evidence says. ``suggested_c`` is ``None`` unless it supports a change;
    ``reason`` says why (or why not) in words a caregiver reads."""

    posterior: Posterior
    onsets: tuple[Report, ...]
    suggested_c: float | None
    reason: str


def _usable(report: Report) -> bool:
    r = report.rise_c
    return r is not None and math.isfinite(r) and RISE_RANGE_C[0] <= r <= RISE_RANGE_C[1]


def onsets(reports: Iterable[Report], *, max_onsets: int = MAX_ONSETS) -> tuple[Report, ...]:
    """The first usable report of each session (its onset), the most recent ``max_onsets``
    sessions, oldest first. Reports without a session or a plausible rise are left out."""
    first: dict[str, Report] = {}
    for report in reports:
        if not report.session or not _usable(report):
            continue
        seen = first.get(report.session)
        if seen is None or report.time < seen.time:
            first[report.session] = report
    ordered = sorted(first.values(), key=lambda r: r.time)
    return tuple(ordered[-max_onsets:]) if max_onsets > 0 else ()


def report_variance(report: Report, rules: Rules = DEFAULT_RULES) -> float:
    """Variance of one onset around the person's true onset rise: the estimate's own error
    plus the day-to-day spread."""
    sd = report.sd_c
    if sd is None or not math.isfinite(sd) or sd <= 0:
        sd = rules.default_report_sd_c
    sd = max(sd, MIN_REPORT_SD_C)
    return sd * sd + rules.between_sd_c**2


def posterior(
    onset_reports: Iterable[Report], *, prior_mean_c: float, rules: Rules = DEFAULT_RULES
) -> Posterior:
    """Conjugate normal update: precision-weighted mean of the prior and the onsets."""
    precision = 1.0 / rules.prior_sd_c**2
    weighted = prior_mean_c * precision
    n = 0
    sessions: set[str] = set()
    for report in onset_reports:
        assert report.rise_c is not None
        w = 1.0 / report_variance(report, rules)
        precision += w
        weighted += w * report.rise_c
        n += 1
        sessions.add(report.session)
    return Posterior(
        mean_c=weighted / precision,
        sd_c=math.sqrt(1.0 / precision),
        n_reports=n,
        n_sessions=len(sessions),
    )


def evaluate(
    reports: Iterable[Report],
    *,
    prior_mean_c: float,
    current_c: float,
    floor_c: float | None = None,
    rules: Rules = DEFAULT_RULES,
) -> Evaluation:
    """Whether the reports support a personal threshold other than ``current_c``.

    ``prior_mean_c`` is the clinician's configured threshold (the prior's centre);
    ``current_c`` the threshold in force; ``floor_c`` may raise (never lower) the floor,
    e.g. to stay above the profile's caution margin.
    """
    floor = rules.floor_c if floor_c is None else max(rules.floor_c, floor_c)
    used = onsets(reports, max_onsets=rules.max_onsets)
    post = posterior(used, prior_mean_c=prior_mean_c, rules=rules)

    def result(suggested: float | None, reason: str) -> Evaluation:
        return Evaluation(posterior=post, onsets=used, suggested_c=suggested, reason=reason)

    if post.n_reports < rules.min_reports:
        return result(None, f"{post.n_reports} of {rules.min_reports} symptom onsets needed so far")
    if post.n_sessions < rules.min_sessions:
        return result(None, f"onsets from {rules.min_sessions} sessions needed")
    if post.sd_c > rules.max_posterior_sd_c:
        return result(
            None,
            f"onset rise still uncertain (sd {post.sd_c:.2f} °C; needs "
            f"{rules.max_posterior_sd_c:.2f} °C or less)",
        )
    # On the 0.01 °C grid, and inside [floor, ceiling] on that grid (rounding never
    # takes a suggestion below the floor).
    low = math.ceil(floor / STEP_C - 1e-9) * STEP_C
    high = max(math.floor(rules.ceiling_c / STEP_C + 1e-9) * STEP_C, low)
    point = post.mean_c - rules.safety_z * post.sd_c
    suggested = round(min(max(round(point / STEP_C) * STEP_C, low), high), 2)
    same_side = (suggested - current_c) * (post.mean_c - current_c) > 0
    if not same_side or abs(suggested - current_c) < rules.min_change_c:
        return result(None, f"onsets agree with the threshold in force ({current_c:+.2f} °C)")
    return result(
        suggested,
        f"symptoms began at {post.mean_c:+.2f} °C (95 % interval ±{Z95 * post.sd_c:.2f}) "
        f"over {post.n_sessions} sessions; suggested {rules.safety_z:g} sd lower, to warn early",
    )
