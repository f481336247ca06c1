"""A patient's profile: the thresholds and facts the engine needs, set with a clinician.

Defaults come from the literature summarised in ``docs/physiology.md``: a core rise of
about 0.5 °C is the figure most often cited as enough to bring on Uhthoff symptoms.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from monitor.strict import StrictModel

PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Pseudonymous ids: letters, digits, ``.``, ``_``, ``-``; safe in MQTT topics and URLs."""
LOGIN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
"""A person's login (a caregiver in ``[web]``, an MQTT user in the ACL, who decided or
acknowledged): a patient id's characters and ``@``. Never ``patient:self``, the dashboard's
word for a patient answering their own prompt."""


class Activity(StrEnum):
    STRENGTH = "strength"
    AEROBIC = "aerobic"
    BALANCE = "balance"
    FLEXIBILITY = "flexibility"


class HeatSensitivity(StrEnum):
    """What the clinician knows of the patient's heat sensitivity. It changes the model, not
    only the threshold (see docs/physiology.md, "Heat-sensitive patients")."""

    NONE = "none"
    UHTHOFF_HISTORY = "uhthoff_history"
    """Symptoms with heat before; sweating not known to be impaired: warned earlier."""
    IMPAIRED_SWEATING = "impaired_sweating"
    """Sweats less (tested or observed): the model loses heat more slowly, warned earlier."""


THRESHOLD_ABOVE_C = 0.1
"""A threshold rise must be above this (°C)."""
THRESHOLD_MAX_C = 2.0
"""... and at most this (°C)."""


class PatientProfile(StrictModel):
    """Per-patient settings. ``id`` is a pseudonym; ``display_name`` never leaves the UI."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=PATIENT_ID_PATTERN)
    display_name: str | None = Field(default=None, max_length=80)
    threshold_rise_c: float = Field(default=0.5, gt=THRESHOLD_ABOVE_C, le=THRESHOLD_MAX_C)
    caution_margin_c: float = Field(default=0.2, ge=0.0, le=1.0)
    forecast_horizon_min: float = Field(default=10.0, ge=0.0, le=60.0)
    cool_down_lead_min: float = Field(default=5.0, ge=0.0, le=30.0)
    age: int = Field(default=45, ge=10, le=110)
    resting_hr_bpm: float | None = Field(default=None, ge=30, le=120)
    max_hr_bpm: float | None = Field(default=None, ge=80, le=230)
    baseline_core_c: float | None = Field(default=None, ge=35.5, le=38.0)
    medical_clearance: bool = True
    unwell_today: bool = False
    activity: Activity = Activity.AEROBIC
    heat_sensitivity: HeatSensitivity = HeatSensitivity.NONE

    @model_validator(mode="after")
    def _check_hr(self) -> PatientProfile:
        if (
            self.resting_hr_bpm is not None
            and self.max_hr_bpm is not None
            and self.resting_hr_bpm >= self.max_hr_bpm
        ):
            raise ValueError("resting_hr_bpm must be below max_hr_bpm")
        if self.caution_margin_c >= self.threshold_rise_c:
            raise ValueError("caution_margin_c must be smaller than threshold_rise_c")
        return self

    @property
    def effective_max_hr(self) -> float:
        """Profile value, else age-predicted maximum (Tanaka et al. 2001: 208 − 0.7 × age)."""
        return self.max_hr_bpm if self.max_hr_bpm is not None else 208.0 - 0.7 * self.age

    @property
    def effective_threshold_c(self) -> float:
        """The cool-down threshold; "unwell / relapse today" tightens it by a fifth."""
        return self.threshold_rise_c * (0.8 if self.unwell_today else 1.0)

    @property
    def caution_at_c(self) -> float:
        return self.effective_threshold_c - self.caution_margin_c
