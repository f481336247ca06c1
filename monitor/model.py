"""The values that flow through heatmon: samples in, thermal state and events out.

Times are UTC epoch seconds (``float``) everywhere inside heatmon; they are turned into
ISO 8601 only at the edges (files, JSON, dashboards). Patient ids are pseudonyms: a
real name never enters a :class:`Sample`, a :class:`ThermalState` or an :class:`Event`.
"""

from __future__ import annotations

import math
import time as _time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple


class SampleKind(StrEnum):
    HEART_RATE = "heart_rate"
    SKIN_TEMP = "skin_temp"
    CORE_TEMP = "core_temp"
    BATTERY = "battery"


UNITS: dict[SampleKind, str] = {
    SampleKind.HEART_RATE: "bpm",
    SampleKind.SKIN_TEMP: "degC",
    SampleKind.CORE_TEMP: "degC",
    SampleKind.BATTERY: "percent",
}


class Sample(NamedTuple):
    """One reading of one sensor at one instant.

    ``value`` is in the kind's unit (see :data:`UNITS`): bpm, °C or percent.
    ``rr_intervals`` (seconds) only come with heart-rate samples, when the strap sends them.
    """

    patient: str
    kind: SampleKind
    value: float
    time: float
    device: str = ""
    source: str = ""
    rr_intervals: tuple[float, ...] = ()
    sensor_contact: bool | None = None

    @property
    def unit(self) -> str:
        return UNITS[self.kind]


class Level(StrEnum):
    """The alert level a patient sees; ordered by urgency."""

    OK = "ok"
    CAUTION = "caution"
    COOL_DOWN = "cool_down"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]


_LEVEL_RANK = {Level.OK: 0, Level.CAUTION: 1, Level.COOL_DOWN: 2}


class Quality(StrEnum):
    """Data quality, reported beside the level and never hidden."""

    GOOD = "good"
    NO_DATA = "no_data"
    SENSOR_OFF = "sensor_off"
    STALE = "stale"


class SampleFlag(StrEnum):
    """Why a sample was not used by the estimator (or, for ``GAP``, what preceded it)."""

    OK = "ok"
    INVALID = "invalid"  # NaN or infinite
    OUT_OF_RANGE = "out_of_range"
    ZERO = "zero"  # heart rate 0: strap off the skin
    NO_CONTACT = "no_contact"  # the strap says it has no skin contact
    DOUBLED = "doubled"  # heart rate doubled or halved by a beat-detection artefact
    DUPLICATE = "duplicate"  # same timestamp as the previous sample of this kind
    OUT_OF_ORDER = "out_of_order"
    FUTURE = "future"  # ahead of the monitor's clock (a gateway's clock runs fast)
    GAP = "gap"  # accepted, but the previous sample of this kind is long ago

    @property
    def accepted(self) -> bool:
        return self in (SampleFlag.OK, SampleFlag.GAP)


class EventKind(StrEnum):
    LEVEL = "level"  # the alert level changed
    RECOVERED = "recovered"  # the rise is gone after a caution/cool_down episode
    QUALITY = "quality"  # the data-quality state changed


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalState:
    """The engine's derived view of one patient at one instant."""

    patient: str
    time: float
    session: str
    level: Level
    quality: Quality
    core_temp_c: float
    core_temp_sd_c: float
    core_delta_c: float
    baseline_core_c: float
    threshold_rise_c: float
    heart_rate_bpm: float | None
    skin_temp_c: float | None
    measured_core_c: float | None
    minutes_to_threshold: float | None
    minutes_to_recovery: float | None
    strain_index: float | None
    estimator: str
    filter_sd_c: float | None = None
    """The estimator's own SD without the model's per-person error (``core_temp_sd_c`` is the
    band shown): what personal-threshold learning weighs a symptom report by."""

    def json_fields(self) -> dict[str, object]:
        """The state's values as the dashboard and MQTT show them (rounded; a missing or
        non-finite value is ``None``): the one mapping both build on (``patient`` and
        ``time`` are added by each in its own form)."""
        return {
            "session": self.session,
            "level": self.level.value,
            "quality": self.quality.value,
            "core_temp_c": _rounded(self.core_temp_c, 3),
            "core_temp_sd_c": _rounded(self.core_temp_sd_c, 3),
            "core_delta_c": _rounded(self.core_delta_c, 3),
            "baseline_core_c": _rounded(self.baseline_core_c, 3),
            "threshold_rise_c": _rounded(self.threshold_rise_c, 3),
            "heart_rate_bpm": _rounded(self.heart_rate_bpm, 1),
            "skin_temp_c": _rounded(self.skin_temp_c, 2),
            "measured_core_c": _rounded(self.measured_core_c, 2),
            "minutes_to_threshold": _rounded(self.minutes_to_threshold, 1),
            "minutes_to_recovery": _rounded(self.minutes_to_recovery, 1),
            "strain_index": _rounded(self.strain_index, 2),
            "estimator": self.estimator,
        }


def _rounded(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something a person should hear about: a level change, a recovery, a quality change.

    ``id`` is stable for the same event (patient, kind and a per-patient sequence number),
    so that a sink that delivers twice can drop the copy.
    """

    id: str
    patient: str
    time: float
    session: str
    kind: EventKind
    level: Level
    previous_level: Level
    quality: Quality
    core_delta_c: float
    message: str
    advice: tuple[str, ...] = ()
    requires_ack: bool = False
    minutes_to_threshold: float | None = None
    recovery_minutes: float | None = None

    def to_json_dict(self) -> dict[str, object]:
        """The JSON form used by files, MQTT and the web (keys of the replay contract first)."""
        return {
            "time": iso_utc(self.time),
            "patient": self.patient,
            "level": self.level.value,
            "core_delta_c": round(self.core_delta_c, 3),
            "message": self.message,
            "id": self.id,
            "session": self.session,
            "kind": self.kind.value,
            "previous_level": self.previous_level.value,
            "quality": self.quality.value,
            "advice": list(self.advice),
            "requires_ack": self.requires_ack,
            "minutes_to_threshold": _round_or_none(self.minutes_to_threshold, 1),
            "recovery_minutes": _round_or_none(self.recovery_minutes, 1),
        }


def _round_or_none(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_YEAR_10000 = 253_402_300_800.0


def iso_utc(epoch_s: float) -> str:
    """``2024-05-17T12:30:00.250Z`` (milliseconds only when not whole seconds)."""
    if 0 <= epoch_s < _YEAR_10000 and epoch_s % 1 == 0:  # window ends: the common case
        return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(epoch_s))
    dt = datetime.fromtimestamp(epoch_s, tz=UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Parse ISO 8601 UTC (``...Z`` or ``+00:00``) or epoch seconds into epoch seconds.

    Raises ``ValueError`` for anything else, including ISO times without a zone.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty time")
    first = text[0]
    if first.isdigit() and ("-" not in text and ":" not in text):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"time {text!r} is not finite")
        return value
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone; heatmon wants UTC (…Z)")
    return dt.timestamp()


@dataclass(frozen=True, slots=True, kw_only=True)
class SymptomReport:
    """ "I feel symptoms now", from the patient, with the estimated rise at that moment."""

    patient: str
    time: float
    session: str
    core_delta_c: float | None
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Acknowledgement:
    """A caregiver acknowledged an alert. ``by`` is the caregiver's login, not a patient id."""

    patient: str
    event_id: str
    time: float
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRecord:
    """A workout session: opened by the first sample, closed after a quiet spell or at stop."""

    patient: str
    session: str
    start: float
    stop: float | None
    activity: str
    environment: str = ""
