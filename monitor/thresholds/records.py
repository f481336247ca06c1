"""The values the thresholds store keeps: symptom reports, suggestions and the changes
people made. Times are epoch seconds (UTC); ids are UUIDs as text."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.errors import HeatmonError


def new_id() -> str:
    return str(uuid.uuid4())


class SuggestionError(HeatmonError):
    """A decision that cannot be made: ``status`` 404 (no such suggestion for this
    patient) or 409 (already decided or replaced by a newer one)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredReport:
    """A symptom report as kept for learning: the estimated rise and its sd at that moment,
    and the threshold in force."""

    id: str
    patient: str
    session: str
    time: float
    rise_c: float | None
    rise_sd_c: float | None
    threshold_c: float | None
    received: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Draft:
    """A suggestion before it is stored (made by :mod:`monitor.engine.learning`)."""

    current_c: float
    suggested_c: float
    onset_mean_c: float
    onset_sd_c: float
    prior_mean_c: float
    n_reports: int
    n_sessions: int
    reason: str
    evidence: tuple[str, ...]
    """Ids of the reports behind it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    id: str
    patient: str
    created: float
    status: str
    current_c: float
    suggested_c: float
    onset_mean_c: float
    onset_sd_c: float
    prior_mean_c: float
    n_reports: int
    n_sessions: int
    reason: str
    decided_by: str | None
    decided_at: float | None
    evidence: tuple[StoredReport, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdChange:
    """A personal threshold a person set (by accepting a suggestion)."""

    id: str
    patient: str
    threshold_c: float
    previous_c: float
    suggestion: str | None
    set_by: str
    set_at: float


Suggest = Callable[[Sequence[StoredReport], float | None], Draft | None]
"""Given a patient's reports and the personal threshold in force (``None``: the configured
one), the suggestion the evidence supports, if any."""
