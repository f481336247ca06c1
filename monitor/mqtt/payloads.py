"""MQTT payloads: JSON with a schema version (``"v": 1``), checked against the JSON Schemas
in ``monitor/mqtt/schemas/`` (draft 2020-12): the bounds every payload is held to, and the
outbound payloads (states, alerts, status, errors; samples, symptom reports and
acknowledgements as gateways and apps send them).

Inbound payloads are decoded by :class:`monitor.mqtt.codec.PayloadCodec` against the same
schemas and bounds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from monitor import __version__
from monitor.model import Event, EventKind, Sample, ThermalState, iso_utc
from monitor.mqtt.topics import check_patient_id

SCHEMA_VERSION = 1
MAX_BATCH = 1000
"""Samples in one batch (also in the schema)."""
MAX_FUTURE_S = 300.0
"""A time (sample, symptom report, acknowledgement) further ahead of this monitor's clock is
impossible (a broken clock) and is refused."""
MAX_PAST_S = 7 * 86_400.0
"""A time (sample, symptom report, acknowledgement) further behind this monitor's clock is
refused: a gateway whose clock was reset (to its firmware's date, say) would otherwise have
its live samples taken as years old: alerts dated then, the patient shown as stale while
data arrives. A gateway's buffer of a few days still comes in."""
MIN_TIME_S = 946_684_800.0
"""2000-01-01T00:00:00Z: no heatmon input is older (also the schemas' minimum)."""
MAX_TIME_S = 4_102_444_800.0
"""2100-01-01T00:00:00Z: no heatmon input is later (also the schemas' maximum); any time in
between can be written as ISO 8601 and stored."""
SCHEMA_NAMES = (
    "sample",
    "sample_batch",
    "symptom",
    "ack",
    "state",
    "alert",
    "recovered",
    "status",
    "error",
)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_ENCODER = msgspec.json.Encoder()
"""The hot payloads (states, alerts): the same compact JSON as :func:`_dumps` for their
values (finite floats rounded to a few digits: no exponent, no NaN)."""


def _dumps(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


def state_dict(state: ThermalState) -> dict[str, Any]:
    """The ``state`` payload: :meth:`ThermalState.json_fields` (the dashboard's mapping
    too) with the schema version, the patient and the time in ISO 8601."""
    return {
        "v": SCHEMA_VERSION,
        "patient": state.patient,
        "time": iso_utc(state.time),
        **state.json_fields(),
    }


def encode_state(state: ThermalState) -> bytes:
    """The hottest outbound payload (every step of every patient): encoded by msgspec, the
    same compact JSON as :func:`_dumps` (:meth:`ThermalState.json_fields` has no NaN)."""
    return _ENCODER.encode(state_dict(state))


def event_dict(event: Event) -> dict[str, Any]:
    """Alert and recovered payloads: the event's JSON form plus the schema version."""
    return {"v": SCHEMA_VERSION, **event.to_json_dict()}


def encode_event(event: Event) -> bytes:
    """An alert or recovered notice (encoded by msgspec, as :func:`encode_state`)."""
    if not math.isfinite(event.core_delta_c):
        raise ValueError(f"event {event.id}: core_delta_c is not a number")
    return _ENCODER.encode(event_dict(event))


def event_schema(event: Event) -> str:
    return "recovered" if event.kind is EventKind.RECOVERED else "alert"


def encode_status(
    *,
    instance: str,
    online: bool,
    time: float | None = None,
    health: Mapping[str, Any] | None = None,
) -> bytes:
    doc: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "status": "online" if online else "offline",
        "instance": instance,
        "version": __version__,
    }
    if time is not None:
        doc["time"] = iso_utc(time)
    if health is not None and online:
        doc["health"] = str(health.get("status", "ok"))
        doc["failing"] = [str(name) for name in health.get("failing", ())][:50]
    return _dumps(doc)


def encode_error(
    *,
    topic: str,
    reason: str,
    rejected: int,
    time: float,
    patient: str | None = None,
    channel: str | None = None,
) -> bytes:
    return _dumps(
        {
            "v": SCHEMA_VERSION,
            "time": iso_utc(time),
            "topic": topic[:200],
            "channel": channel,
            "patient": patient,
            "reason": reason[:500],
            "rejected": rejected,
        }
    )


def sample_dict(sample: Sample, *, with_version: bool = False) -> dict[str, Any]:
    """A sample in the inbound form (what a gateway publishes)."""
    check_patient_id(sample.patient, where="sample")
    doc: dict[str, Any] = {"v": SCHEMA_VERSION} if with_version else {}
    doc.update(
        patient=sample.patient,
        kind=sample.kind.value,
        value=sample.value,
        unit=sample.unit,
        time=sample.time,
    )
    if sample.device:
        doc["device"] = sample.device[:64]
    if sample.source:
        doc["source"] = sample.source[:32]
    if sample.rr_intervals:
        doc["rr_intervals"] = list(sample.rr_intervals[:64])
    if sample.sensor_contact is not None:
        doc["sensor_contact"] = sample.sensor_contact
    return doc


def encode_sample(sample: Sample) -> bytes:
    return _dumps(sample_dict(sample, with_version=True))


def encode_batch(items: Sequence[Mapping[str, Any]]) -> bytes:
    """A batch of samples already in :func:`sample_dict` form (without ``v``)."""
    if not 0 < len(items) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} samples, not {len(items)}")
    return _dumps({"v": SCHEMA_VERSION, "samples": list(items)})


def encode_symptom(*, time: float, note: str = "") -> bytes:
    doc: dict[str, Any] = {"v": SCHEMA_VERSION, "time": iso_utc(time)}
    if note:
        doc["note"] = note
    return _dumps(doc)


def encode_ack(*, event_id: str, by: str, time: float | None = None) -> bytes:
    doc: dict[str, Any] = {"v": SCHEMA_VERSION, "event_id": event_id, "by": by}
    if time is not None:
        doc["time"] = iso_utc(time)
    return _dumps(doc)
