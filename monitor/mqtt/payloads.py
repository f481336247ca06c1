"""MQTT payloads: JSON with a schema version (``"v": 1``), checked against the JSON Schemas
in ``monitor/mqtt/schemas/`` (draft 2020-12).

Inbound payloads (samples, symptoms, acknowledgements) are decoded by :class:`PayloadCodec`,
which raises :class:`~monitor.errors.InputError` with a reason a person can act on: not
JSON, too big, wrong schema, wrong unit, impossible value, patient id that is not a
pseudonym or that differs from the topic's. Outbound payloads are built here too, so the
same module owns both sides of every schema.
"""

from __future__ import annotations

import json
import math
import time as _time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import jsonschema_rs
import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from monitor import __version__
from monitor.errors import InputError
from monitor.model import Event, EventKind, Sample, SampleKind, ThermalState, iso_utc, parse_time
from monitor.mqtt.fastdecode import FastSampleDecoder
from monitor.mqtt.strictjson import MAX_PAYLOAD_BYTES, parse_json
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


def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``monitor/mqtt/schemas/<name>.json``."""
    text = resources.files("monitor.mqtt").joinpath("schemas", f"{name}.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _path(err: ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path]
    return "".join(parts).lstrip(".") or "(payload)"


QUOTE_MAX = 60
"""A reason quotes the offending value only up to this length (never a whole note)."""


def _describe(err: ValidationError) -> str:
    """``path: what is wrong``, without repeating a long value back."""
    value = repr(err.instance)
    if len(value) <= QUOTE_MAX or value not in err.message:
        return f"{_path(err)}: {err.message}"
    limit = err.validator_value
    what = {
        "maxLength": f"is longer than {limit} characters",
        "maxItems": f"has more than {limit} items",
        "minItems": f"has fewer than {limit} items",
    }.get(str(err.validator), f"fails the schema's {err.validator!r} {limit!r}")
    return f"{_path(err)}: {type(err.instance).__name__} {what}"


class PayloadCodec:
    """Validators for every schema, made once per sink or gateway."""

    __slots__ = (
        "_fast",
        "_max_bytes",
        "_max_future_s",
        "_max_past_s",
        "_samples",
        "_validators",
    )

    def __init__(
        self,
        *,
        max_bytes: int = MAX_PAYLOAD_BYTES,
        max_future_s: float = MAX_FUTURE_S,
        max_past_s: float = MAX_PAST_S,
    ) -> None:
        schemas = {name: load_schema(name) for name in SCHEMA_NAMES}
        registry: Registry[Any] = Registry().with_resources(
            (s["$id"], Resource.from_contents(s)) for s in schemas.values()
        )
        self._validators = {
            name: Draft202012Validator(
                s, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            for name, s in schemas.items()
        }
        # jsonschema-rs answers "valid?" fast (the hot path); the reference implementation
        # explains what is wrong when it is not.
        self._fast = {
            name: jsonschema_rs.validator_for(s, validate_formats=True)
            for name, s in schemas.items()
        }
        self._max_bytes = max_bytes
        self._max_future_s = max_future_s
        self._max_past_s = max_past_s
        self._samples = FastSampleDecoder()

    def validate(self, name: str, document: Any, *, where: str) -> None:
        """Raise :class:`InputError` naming the first problem's place in ``document``."""
        if not isinstance(document, dict):
            raise InputError(
                f"payload must be a JSON object, not {type(document).__name__}", where=where
            )
        version = document.get("v")
        if version != SCHEMA_VERSION:
            raise InputError(
                f"schema version v={version!r} is not supported (this monitor speaks v=1)",
                where=where,
            )
        if self._fast[name].is_valid(document):
            return
        error = best_match(self._validators[name].iter_errors(document))
        if error is not None:
            raise InputError(_describe(error), where=where)
        try:
            self._fast[name].validate(document)
        except jsonschema_rs.ValidationError as err:
            raise InputError(str(err.message), where=where) from err

    def check(self, name: str, document: Any) -> list[str]:
        """Every schema violation of ``document`` (for tests and tools)."""
        return [_describe(e) for e in self._validators[name].iter_errors(document)]

    # -- inbound ------------------------------------------------------------------------

    def decode_samples(
        self, payload: bytes, *, patient: str, where: str, now: float | None = None
    ) -> list[Sample]:
        """A single sample (``{"v":1,"kind":...}``) or a batch (``{"v":1,"samples":[...]}``)
        for ``patient`` (the patient of the topic).

        One typed pass (:mod:`monitor.mqtt.fastdecode`) takes what a gateway normally sends;
        anything it does not take goes through strict JSON and the schemas, which accept it
        or say what is wrong."""
        if len(payload) > self._max_bytes:
            raise InputError(
                f"payload of {len(payload)} bytes exceeds {self._max_bytes} bytes", where=where
            )
        limit = self._limit(now)
        fast = self._samples.decode(
            payload,
            patient=patient,
            limit=limit,
            earliest=limit - self._max_future_s - self._max_past_s,
        )
        if fast is not None:
            return fast
        return self.decode_samples_by_schema(payload, patient=patient, where=where, now=now)

    def decode_samples_by_schema(
        self, payload: bytes, *, patient: str, where: str, now: float | None = None
    ) -> list[Sample]:
        """:meth:`decode_samples` through strict JSON and the JSON Schemas only (the
        reference the typed pass is tested against; the source of every error's words)."""
        doc = parse_json(payload, where=where, max_bytes=self._max_bytes)
        if isinstance(doc, dict) and "samples" in doc:
            self.validate("sample_batch", doc, where=where)
            items: Sequence[Mapping[str, Any]] = doc["samples"]
        else:
            self.validate("sample", doc, where=where)
            items = (doc,)
        limit = (now if now is not None else _time.time()) + self._max_future_s
        out: list[Sample] = []
        for n, item in enumerate(items):
            at = f"samples[{n}]." if len(items) > 1 or "samples" in doc else ""
            claimed = item.get("patient")
            if claimed is not None and claimed != patient:
                raise InputError(
                    f"{at}patient {str(claimed)[:70]!r} differs from the topic's patient",
                    where=where,
                )
            t = self._time(item["time"], at=f"{at}time", where=where, limit=limit)
            contact = item.get("sensor_contact")
            out.append(
                Sample(
                    patient=patient,
                    kind=SampleKind(item["kind"]),
                    value=float(item["value"]),
                    time=t,
                    device=str(item.get("device", "")),
                    source=str(item.get("source", "mqtt")),
                    rr_intervals=tuple(float(x) for x in item.get("rr_intervals", ())),
                    sensor_contact=contact if isinstance(contact, bool) else None,
                )
            )
        return out

    def decode_symptom(
        self, payload: bytes, *, where: str, now: float | None = None
    ) -> tuple[float, str]:
        """``(time, note)`` of "I feel symptoms now"."""
        doc = parse_json(payload, where=where, max_bytes=self._max_bytes)
        self.validate("symptom", doc, where=where)
        t = self._time(doc["time"], at="time", where=where, limit=self._limit(now))
        return t, str(doc.get("note", ""))

    def decode_ack(
        self, payload: bytes, *, where: str, now: float | None = None
    ) -> tuple[str, str, float]:
        """``(event_id, by, time)`` of a caregiver's acknowledgement."""
        doc = parse_json(payload, where=where, max_bytes=self._max_bytes)
        self.validate("ack", doc, where=where)
        t = doc.get("time")
        now = now if now is not None else _time.time()
        when = (
            self._time(t, at="time", where=where, limit=self._limit(now)) if t is not None else now
        )
        return str(doc["event_id"]), str(doc["by"]), when

    def _limit(self, now: float | None) -> float:
        """The latest time an input may carry: this monitor's clock plus the allowance."""
        return (now if now is not None else _time.time()) + self._max_future_s

    def _time(self, value: Any, *, at: str, where: str, limit: float) -> float:
        """A time checked before any use: a finite number or ISO 8601 text, between 2000
        and 2100, and at most ``max_future_s`` ahead of this monitor's clock."""
        try:
            t = parse_time(value) if isinstance(value, str) else float(value)
        except (ValueError, OverflowError) as err:
            raise InputError(f"{at}: {str(err)[:100]}", where=where) from err
        if not math.isfinite(t):
            raise InputError(f"{at}: not a finite time", where=where)
        if not MIN_TIME_S <= t < MAX_TIME_S:
            raise InputError(
                f"{at}: {t:.6g} is not a time between 2000 and 2100 (epoch seconds)", where=where
            )
        if t > limit:
            raise InputError(
                f"{at}: {iso_utc(t)} is more than {self._max_future_s:.0f} s in the future "
                f"(this monitor's clock says {iso_utc(limit - self._max_future_s)})",
                where=where,
            )
        now = limit - self._max_future_s
        if t < now - self._max_past_s:
            raise InputError(
                f"{at}: {iso_utc(t)} is more than {self._max_past_s / 86_400:.0f} days in the "
                f"past (this monitor's clock says {iso_utc(now)}; is the sender's clock set?)",
                where=where,
            )
        return t


# -- outbound ---------------------------------------------------------------------------


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
