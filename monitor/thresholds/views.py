"""The JSON form of a patient's thresholds, suggestions and decisions: one shape for the
dashboard's API and ``heatmon profile suggestions --json``."""

from __future__ import annotations

from typing import Any

from monitor.engine.learning import DEFAULT_RULES, Rules
from monitor.model import iso_utc
from monitor.profile import PatientProfile
from monitor.thresholds.floor import floor_for
from monitor.thresholds.records import StoredReport, Suggestion, ThresholdChange
from monitor.thresholds.store import ThresholdStore


def report_json(report: StoredReport) -> dict[str, Any]:
    return {
        "id": report.id,
        "session": report.session,
        "time": iso_utc(report.time),
        "epoch": report.time,
        "rise_c": None if report.rise_c is None else round(report.rise_c, 3),
        "rise_sd_c": None if report.rise_sd_c is None else round(report.rise_sd_c, 3),
        "threshold_c": None if report.threshold_c is None else round(report.threshold_c, 3),
    }


def suggestion_json(s: Suggestion) -> dict[str, Any]:
    return {
        "id": s.id,
        "patient": s.patient,
        "status": s.status,
        "created": iso_utc(s.created),
        "current_c": round(s.current_c, 3),
        "suggested_c": round(s.suggested_c, 3),
        "onset_mean_c": round(s.onset_mean_c, 3),
        "onset_sd_c": round(s.onset_sd_c, 3),
        "prior_mean_c": round(s.prior_mean_c, 3),
        "n_reports": s.n_reports,
        "n_sessions": s.n_sessions,
        "reason": s.reason,
        "decided_by": s.decided_by,
        "decided_at": None if s.decided_at is None else iso_utc(s.decided_at),
        "evidence": [report_json(r) for r in s.evidence],
    }


def change_json(c: ThresholdChange) -> dict[str, Any]:
    return {
        "threshold_c": round(c.threshold_c, 3),
        "previous_c": round(c.previous_c, 3),
        "suggestion": c.suggestion,
        "set_by": c.set_by,
        "set_at": iso_utc(c.set_at),
    }


def patient_view(
    store: ThresholdStore,
    profile: PatientProfile,
    *,
    rules: Rules = DEFAULT_RULES,
    limit: int = 20,
    floor_c: float | None = None,
) -> dict[str, Any]:
    """Everything a caregiver needs to decide, for one patient (a blocking read);
    ``floor_c``: the floor of the profile in use now, if it is not ``profile``."""
    current = store.current(profile.id)
    return {
        "patient": profile.id,
        "threshold_c": profile.threshold_rise_c if current is None else current.threshold_c,
        "configured_c": profile.threshold_rise_c,
        "floor_c": floor_for(profile, rules) if floor_c is None else floor_c,
        "suggestions": [suggestion_json(s) for s in store.suggestions(profile.id, limit=limit)],
        "changes": [change_json(c) for c in store.changes(profile.id, limit=limit)],
    }
