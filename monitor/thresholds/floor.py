"""The lowest personal threshold a patient may be given, and whether a suggestion still fits
the patient's profile when a person accepts it (the profile may have changed since)."""

from __future__ import annotations

from monitor.engine.learning import DEFAULT_RULES, Rules
from monitor.profile import PatientProfile
from monitor.thresholds.records import SuggestionError

CAUTION_GAP_C = 0.05
"""A suggestion stays at least this far above the profile's caution margin."""


def floor_for(profile: PatientProfile, rules: Rules = DEFAULT_RULES) -> float:
    """The lowest threshold that may be suggested to this patient."""
    return round(max(rules.floor_c, profile.caution_margin_c + CAUTION_GAP_C), 2)


def check_acceptable(suggested_c: float, profile: PatientProfile) -> None:
    """Refuse (409) to accept a threshold the patient's profile as it is now does not allow:
    below :func:`floor_for` (the caution margin may have grown since the suggestion was
    made), or one the engine would refuse. Accepted, it was recorded as in force while the
    engine and the care-team store went on with the old one."""
    floor = floor_for(profile)
    if suggested_c < floor - 1e-9:
        raise SuggestionError(
            f"the suggested {suggested_c:+.2f} °C is below this patient's floor of "
            f"{floor:+.2f} °C (their caution margin is {profile.caution_margin_c:.2f} °C "
            "now); reject it, or set a threshold by hand",
            status=409,
        )
    try:
        PatientProfile.model_validate(profile.model_dump() | {"threshold_rise_c": suggested_c})
    except ValueError as err:
        raise SuggestionError(
            f"the suggested {suggested_c:+.2f} °C is not valid for this patient's profile",
            status=409,
        ) from err
