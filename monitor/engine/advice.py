"""Plain-language messages and cool-down advice.

Advice targets **core** temperature: skin cooling alone did not prevent heat-sensitive
symptoms when core temperature rose (English et al. 2025), so the advice leads with rest,
cold drinks and cooling of the torso. Symptoms from heat are temporary and generally subside
within an hour of cooling (see ``docs/physiology.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from monitor.model import Level, Quality
from monitor.profile import Activity, PatientProfile

_CAUTION_ADVICE = (
    "Ease off: lower the intensity for a few minutes.",
    "Sip a cold drink.",
    "Use a fan or move somewhere cooler.",
)
_COOL_DOWN_ADVICE = (
    "Stop the exercise and sit down somewhere cool.",
    "Drink something cold: cold fluids cool you from the inside.",
    "Put a cooling vest, ice pack or cold wet towel on your chest and neck.",
    "Rest until heatmon says you are back to baseline.",
)
_COOLING_ADVICE = (
    "Keep resting somewhere cool.",
    "Keep sipping a cold drink.",
)
_STRENGTH_HINT = "Take longer rests between sets."
_UNWELL_HINT = "You marked yourself unwell today: keep to light exercise, nothing strenuous."
_CLEARANCE_HINT = "Strenuous exercise needs your clinician's clearance first."


def _extra(profile: PatientProfile) -> tuple[str, ...]:
    extra: list[str] = []
    if profile.unwell_today:
        extra.append(_UNWELL_HINT)
    if not profile.medical_clearance:
        extra.append(_CLEARANCE_HINT)
    return tuple(extra)


def level_message(
    level: Level,
    delta_c: float,
    minutes_to_threshold: float | None,
    profile: PatientProfile,
    *,
    falling: bool = False,
) -> tuple[str, tuple[str, ...]]:
    """The message and advice for entering ``level`` (``falling``: from a higher level)."""
    rise = f"+{max(delta_c, 0.0):.1f} °C"
    limit = profile.effective_threshold_c
    if falling and level is Level.CAUTION:
        message = (
            f"Cooling down: core estimated up {rise} and no longer climbing. Keep resting and "
            "cooling until heatmon says you are back to baseline."
        )
        return message, _COOLING_ADVICE + _extra(profile)
    if falling and level is Level.OK:
        message = (
            f"Nearly there: core estimated up {rise}. Stay cool and take it gently; heatmon "
            "will tell you when you are back to baseline."
        )
        return message, _extra(profile)
    if level is Level.COOL_DOWN:
        if delta_c >= limit:
            where = f"up {rise}, at or past your limit of +{limit:.1f} °C"
        else:
            soon = f" within about {minutes_to_threshold:.0f} min" if minutes_to_threshold else ""
            where = f"up {rise} and rising fast toward your limit of +{limit:.1f} °C{soon}"
        message = (
            f"Cool down now. Your core temperature is estimated {where}. Any symptoms from "
            "heat are temporary and ease as you cool."
        )
        return message, _COOL_DOWN_ADVICE + _extra(profile)
    if level is Level.CAUTION:
        when = (
            f" and may reach your limit in about {minutes_to_threshold:.0f} min"
            if minutes_to_threshold is not None
            else ""
        )
        message = f"Getting warm: core estimated up {rise}{when}. Take it easier."
        advice: tuple[str, ...] = _CAUTION_ADVICE
        if profile.activity is Activity.STRENGTH:
            advice = (*advice, _STRENGTH_HINT)
        return message, advice + _extra(profile)
    return f"You're fine (core estimated {rise}). Carry on at a comfortable pace.", _extra(profile)


def recovered_message(minutes: float) -> str:
    return (
        f"You're back to baseline after {minutes:.0f} min. "
        "If you feel well, you may carry on gently."
    )


QUALITY_MESSAGES: Mapping[Quality, str] = MappingProxyType(
    {
        Quality.GOOD: "Sensor data is coming in normally again.",
        Quality.NO_DATA: (
            "No heart-rate data yet: check that the chest strap is on and connected."
        ),
        Quality.SENSOR_OFF: (
            "The heart-rate sensor reports no skin contact: moisten and refit the strap."
        ),
        Quality.STALE: (
            "No fresh data for a while: the wearable may be out of range or switched off."
        ),
    }
)
