"""InfluxDB line protocol for everything heatmon stores: one function per model type.

Both write paths (v1 ``/write`` and v2 ``/api/v2/write``) send the text built here, so the
schema lives in one place (documented in ``docs/data-model.md``):

============  =====================================  ==========================================
measurement   tags                                   fields
============  =====================================  ==========================================
vitals        patient, kind, device, source          value, flag, accepted, sensor_contact,
                                                     rr_intervals_s, rr_count
thermal       patient, session, estimator            core_temp_c, core_temp_sd_c, core_delta_c,
                                                     baseline_core_c, threshold_rise_c,
                                                     minutes_to_threshold, minutes_to_recovery,
                                                     strain_index, level,
                                                     level_rank, quality, heart_rate_bpm,
                                                     skin_temp_c, measured_core_c
alerts        patient, session, kind                 event_id, level, level_rank,
                                                     previous_level, quality, core_delta_c,
                                                     message, advice, requires_ack,
                                                     minutes_to_threshold, recovery_minutes
alert_acks    patient                                event_id, by
sessions      patient, session                       activity, environment, start_s, stop_s,
                                                     duration_s, open
symptoms      patient, session                       note, core_delta_c
============  =====================================  ==========================================

Rules that make replay idempotent and the schema stable:

- Every point's time is the model's own time (never "now"), rounded to whole microseconds,
  and its tag set is fixed by the model; writing the same point twice overwrites it.
- A field always has the same type: floats are written as floats (``1.0``, never ``1``),
  the few integers with the ``i`` suffix, booleans as ``true``/``false``. Non-finite floats
  and ``None`` are left out (an absent field), never written as a different type.
- Tags are identifiers only (pseudonymous patient id, device, session, and small enums);
  values are fields. What the engine concluded about a reading (its ``flag``) is a value:
  the same reading is the same point however it was flagged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Literal

from monitor.errors import InputError
from monitor.model import (
    Acknowledgement,
    Event,
    Sample,
    SampleFlag,
    SampleKind,
    SessionRecord,
    SymptomReport,
    ThermalState,
)

Precision = Literal["ns", "us", "ms", "s"]
PRECISIONS: tuple[Precision, ...] = ("ns", "us", "ms", "s")

FieldValue = float | int | bool | str

VITALS = "vitals"
THERMAL = "thermal"
ALERTS = "alerts"
ALERT_ACKS = "alert_acks"
SESSIONS = "sessions"
SYMPTOMS = "symptoms"
MEASUREMENTS: tuple[str, ...] = (VITALS, THERMAL, ALERTS, ALERT_ACKS, SESSIONS, SYMPTOMS)

_MEASUREMENT_ESCAPES = MappingProxyType(str.maketrans({",": r"\,", " ": r"\ "}))
_KEY_ESCAPES = MappingProxyType(str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="}))
_STRING_ESCAPES = MappingProxyType(str.maketrans({"\\": "\\\\", '"': '\\"'}))
_FORBIDDEN_IN_NAMES = ("\n", "\r")
_PLAIN = re.compile(r"[^ ,=\\\n\r]+").fullmatch
"""Names that need neither escaping nor a check."""


def _check_name(value: str, what: str) -> None:
    if not value:
        raise InputError(f"{what} is empty", where="line protocol")
    for bad in _FORBIDDEN_IN_NAMES:
        if bad in value:
            raise InputError(f"{what} {value!r} contains a line break", where="line protocol")
    if value.endswith("\\"):
        # InfluxDB's parser reads a trailing backslash as escaping the separator after it.
        raise InputError(f"{what} {value!r} ends with a backslash", where="line protocol")


def escape_measurement(name: str) -> str:
    _check_name(name, "measurement")
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(value: str, what: str = "tag") -> str:
    """Tag keys, tag values and field keys: escape comma, space and equals sign.

    Backslashes are written as they are (InfluxDB 1.x/2.x keep them literally in tags);
    a value that ends in a backslash or holds a line break cannot be written and raises
    :class:`InputError`.
    """
    if value and _PLAIN(value) is not None:  # the common case, checked in C
        return value
    _check_name(value, what)
    return value.translate(_KEY_ESCAPES)


def escape_string_field(value: str) -> str:
    """A string field value, with its quotes: backslash and double quote are escaped."""
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def format_field(value: FieldValue) -> str | None:
    """Text of one field value, or None when it cannot be stored (NaN, infinity)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return repr(value)
    return escape_string_field(value)


def timestamp(epoch_s: float, precision: Precision) -> int:
    """Epoch seconds to an integer timestamp, deterministically.

    The time is first rounded to whole microseconds (a float epoch carries no more), so
    the same model time always gives the same timestamp and a replayed point overwrites
    its earlier copy.
    """
    if not math.isfinite(epoch_s):
        raise InputError(f"time {epoch_s!r} is not finite", where="line protocol")
    micros = round(epoch_s * 1_000_000)
    if precision == "ns":
        return micros * 1000
    if precision == "us":
        return micros
    if precision == "ms":
        return round(micros / 1000)
    return round(micros / 1_000_000)


def encode_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue | None],
    time_s: float,
    precision: Precision = "ns",
) -> str:
    """One line of line protocol. Empty tag values and ``None``/non-finite fields are left
    out; tags are sorted by key (what InfluxDB recommends)."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value:
            parts.append(f"{escape_key(key, 'tag key')}={escape_key(value, f'tag {key}')}")
    head = ",".join(parts)
    body = []
    for key, raw in fields.items():
        if raw is None:
            continue
        if type(raw) is float:  # the common case first
            if raw - raw != 0.0:  # NaN or infinity
                continue
            text = repr(raw)
        else:
            formatted = format_field(raw)
            if formatted is None:
                continue
            text = formatted
        body.append(f"{escape_key(key, 'field key')}={text}")
    if not body:
        raise InputError(f"{measurement} point has no storable field", where="line protocol")
    return f"{head} {','.join(body)} {timestamp(time_s, precision)}"


def _opt(value: float | None) -> float | None:
    return None if value is None else float(value)


def sample_line(sample: Sample, flag: SampleFlag, precision: Precision = "ns") -> str:
    """A raw reading in ``vitals``. The flag is a field, not a tag: a sample is one point
    whatever the engine flagged it, so a copy sent or delivered again overwrites it instead
    of adding a point (the engine flags a copy it recognises ``duplicate`` and the sink does
    not store it at all).

    The hottest path of storage, so written out by hand; it gives exactly what
    :func:`encode_line` gives (tested).
    """
    fields = _sample_fields(sample, flag)
    return f"{_sample_head(sample)} {fields} {timestamp(sample.time, precision)}"


def sample_lines(
    samples: Sequence[Sample], flags: Sequence[SampleFlag], precision: Precision = "ns"
) -> list[str | InputError]:
    """:func:`sample_line` of each sample of a batch, or the :class:`InputError` that says
    why one cannot be written. The measurement and tags (the same for all the samples of
    one device and kind in a gateway's message) are escaped once per batch."""
    heads: dict[tuple[str, SampleKind, str, str], str] = {}
    out: list[str | InputError] = []
    append = out.append
    for sample, flag in zip(samples, flags, strict=True):
        key = (sample.patient, sample.kind, sample.device, sample.source)
        try:
            head = heads.get(key)
            if head is None:
                head = heads[key] = _sample_head(sample)
            append(f"{head} {_sample_fields(sample, flag)} {timestamp(sample.time, precision)}")
        except InputError as err:
            append(err)
    return out


def _sample_head(sample: Sample) -> str:
    head = VITALS
    if sample.device:
        head += ",device=" + escape_key(sample.device, "tag device")
    head += ",kind=" + sample.kind.value
    head += ",patient=" + escape_key(sample.patient, "tag patient")
    if sample.source:
        head += ",source=" + escape_key(sample.source, "tag source")
    return head


def _sample_fields(sample: Sample, flag: SampleFlag) -> str:
    value = float(sample.value)
    fields = "" if value - value != 0.0 else "value=" + repr(value) + ","
    fields += 'flag="' + flag.value + '",accepted=' + ("true" if flag.accepted else "false")
    if sample.sensor_contact is not None:
        fields += ",sensor_contact=true" if sample.sensor_contact else ",sensor_contact=false"
    if sample.rr_intervals:
        rr = ",".join(repr(float(x)) for x in sample.rr_intervals)
        fields += f",rr_intervals_s={escape_string_field(rr)},rr_count={len(sample.rr_intervals)}i"
    return fields


def sample_line_generic(sample: Sample, flag: SampleFlag, precision: Precision = "ns") -> str:
    """:func:`sample_line` through :func:`encode_line` (the reference it is tested against)."""
    fields: dict[str, FieldValue | None] = {
        "value": float(sample.value),
        "flag": flag.value,
        "accepted": flag.accepted,
        "sensor_contact": sample.sensor_contact,
    }
    if sample.rr_intervals:
        fields["rr_intervals_s"] = ",".join(repr(float(rr)) for rr in sample.rr_intervals)
        fields["rr_count"] = len(sample.rr_intervals)
    tags = {
        "patient": sample.patient,
        "kind": sample.kind.value,
        "device": sample.device,
        "source": sample.source,
    }
    return encode_line(VITALS, tags, fields, sample.time, precision)


def state_line(state: ThermalState, precision: Precision = "ns") -> str:
    fields: dict[str, FieldValue | None] = {
        "core_temp_c": float(state.core_temp_c),
        "core_temp_sd_c": float(state.core_temp_sd_c),
        "core_delta_c": float(state.core_delta_c),
        "baseline_core_c": float(state.baseline_core_c),
        "threshold_rise_c": float(state.threshold_rise_c),
        "minutes_to_threshold": _opt(state.minutes_to_threshold),
        "minutes_to_recovery": _opt(state.minutes_to_recovery),
        "strain_index": _opt(state.strain_index),
        "level": state.level.value,
        "level_rank": state.level.rank,
        "quality": state.quality.value,
        "heart_rate_bpm": _opt(state.heart_rate_bpm),
        "skin_temp_c": _opt(state.skin_temp_c),
        "measured_core_c": _opt(state.measured_core_c),
    }
    tags = {"patient": state.patient, "session": state.session, "estimator": state.estimator}
    return encode_line(THERMAL, tags, fields, state.time, precision)


def event_line(event: Event, precision: Precision = "ns") -> str:
    fields: dict[str, FieldValue | None] = {
        "event_id": event.id,
        "level": event.level.value,
        "level_rank": event.level.rank,
        "previous_level": event.previous_level.value,
        "quality": event.quality.value,
        "core_delta_c": float(event.core_delta_c),
        "message": event.message,
        "advice": "\n".join(event.advice),
        "requires_ack": event.requires_ack,
        "minutes_to_threshold": _opt(event.minutes_to_threshold),
        "recovery_minutes": _opt(event.recovery_minutes),
    }
    tags = {"patient": event.patient, "session": event.session, "kind": event.kind.value}
    return encode_line(ALERTS, tags, fields, event.time, precision)


def ack_line(ack: Acknowledgement, precision: Precision = "ns") -> str:
    fields: dict[str, FieldValue | None] = {"event_id": ack.event_id, "by": ack.by}
    return encode_line(ALERT_ACKS, {"patient": ack.patient}, fields, ack.time, precision)


def symptom_line(report: SymptomReport, precision: Precision = "ns") -> str:
    fields: dict[str, FieldValue | None] = {
        "note": report.note,
        "core_delta_c": _opt(report.core_delta_c),
    }
    tags = {"patient": report.patient, "session": report.session}
    return encode_line(SYMPTOMS, tags, fields, report.time, precision)


def session_line(record: SessionRecord, precision: Precision = "ns") -> str:
    """A session is one point at its start time; the closing record writes the same point
    again with ``stop_s``/``duration_s`` added, so the two merge into one row."""
    fields: dict[str, FieldValue | None] = {
        "activity": record.activity,
        "environment": record.environment,
        "start_s": float(record.start),
        "open": record.stop is None,
    }
    if record.stop is not None:
        fields["stop_s"] = float(record.stop)
        fields["duration_s"] = float(record.stop - record.start)
    tags = {"patient": record.patient, "session": record.session}
    return encode_line(SESSIONS, tags, fields, record.start, precision)


def record_line(
    record: SymptomReport | Acknowledgement | SessionRecord, precision: Precision = "ns"
) -> str:
    if isinstance(record, SymptomReport):
        return symptom_line(record, precision)
    if isinstance(record, Acknowledgement):
        return ack_line(record, precision)
    return session_line(record, precision)
