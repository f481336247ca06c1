"""Inbound MQTT payloads (samples, symptom reports, acknowledgements) decoded and checked
by :class:`PayloadCodec` against the JSON Schemas in ``monitor/mqtt/schemas/`` and the
bounds of :mod:`monitor.mqtt.payloads`; it raises :class:`~monitor.errors.InputError` with a
reason a person can act on: not JSON, too big, wrong schema, wrong unit, impossible value,
patient id that is not a pseudonym or that differs from the topic's.
"""

from __future__ import annotations

import json
import math
import time as _time
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from monitor.errors import InputError
from monitor.model import Sample, SampleKind, iso_utc, parse_time
from monitor.mqtt.fastdecode import TAG_RULE, FastSampleDecoder, unstorable_tag
from monitor.mqtt.payloads import (
    MAX_FUTURE_S,
    MAX_PAST_S,
    MAX_TIME_S,
    MIN_TIME_S,
    SCHEMA_NAMES,
    SCHEMA_VERSION,
)
from monitor.mqtt.strictjson import MAX_PAYLOAD_BYTES, parse_json


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
            device, source = str(item.get("device", "")), str(item.get("source", "mqtt"))
            for name, text in (("device", device), ("source", source)):
                if unstorable_tag(text):
                    raise InputError(f"{at}{name}: {TAG_RULE}", where=where)
            contact = item.get("sensor_contact")
            out.append(
                Sample(
                    patient=patient,
                    kind=SampleKind(item["kind"]),
                    value=float(item["value"]),
                    time=t,
                    device=device,
                    source=source,
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
