"""The hot path of inbound gateway samples: one typed pass with msgspec, explicit checks.

A gateway's message (a single sample or a batch of up to 1,000) is decoded straight into
typed structs that mirror ``schemas/sample.json`` and ``schemas/sample_batch.json`` (the
published contract): unknown keys, wrong types, too long strings, too many items and
``rr_intervals`` out of range fail in msgspec's C decoder; the value range of each kind,
its unit and the time bounds are checked here explicitly. The typed decoder cannot nest
deeper than the schema does, so no separate depth scan is needed; the size limit is
checked before decoding.

This path only ever *accepts*. Whatever it does not accept returns ``None`` and
:class:`~monitor.mqtt.codec.PayloadCodec` takes the payload again through strict JSON
and the JSON Schemas (jsonschema explains), so the reasons a client reads are the ones the
schemas give, word for word, and a payload that passes here would pass there too.
"""

from __future__ import annotations

import math
import re
from types import MappingProxyType
from typing import Annotated, Literal

import msgspec

from monitor.model import Sample, SampleKind, parse_time

MIN_TIME_S = 946_684_800.0
MAX_TIME_S = 4_102_444_800.0
MAX_BATCH = 1000

_KINDS = MappingProxyType({kind.value: kind for kind in SampleKind})
_BOUNDS = MappingProxyType(
    {
        "heart_rate": ("bpm", 0.0, 300.0),
        "skin_temp": ("degC", 0.0, 50.0),
        "core_temp": ("degC", 25.0, 45.0),
        "battery": ("percent", 0.0, 100.0),
    }
)
"""Per kind (as in the schemas' ``allOf``): the unit and the inclusive value range."""

_UNSTORABLE_TAG = re.compile(r"[\x00-\x1f\x7f]|\\\Z")
"""What a ``device`` or ``source`` may not hold: a control character (a line break ends a
line of InfluxDB's line protocol, where both are tags) or a final backslash (it would
escape the separator after it)."""
TAG_RULE = "holds a control character (a line break, NUL, …) or ends with a backslash"
"""Why a ``device`` or ``source`` is refused (the words the error gives)."""


def unstorable_tag(text: str) -> bool:
    """Whether ``text`` (a sample's ``device`` or ``source``) cannot be stored as a tag."""
    return _UNSTORABLE_TAG.search(text) is not None


_Patient = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
_TimeText = Annotated[str, msgspec.Meta(min_length=10, max_length=40)]
_TimeNumber = Annotated[float, msgspec.Meta(ge=MIN_TIME_S, lt=MAX_TIME_S)]
_Rr = Annotated[float, msgspec.Meta(ge=0.2, le=3.0)]


class _Item(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["heart_rate", "skin_temp", "core_temp", "battery"]
    value: float
    unit: Annotated[str, msgspec.Meta(max_length=16)]
    time: _TimeNumber | _TimeText
    patient: _Patient | msgspec.UnsetType = msgspec.UNSET
    device: Annotated[str, msgspec.Meta(max_length=64)] = ""
    source: Annotated[str, msgspec.Meta(max_length=32)] = "mqtt"
    rr_intervals: Annotated[tuple[_Rr, ...], msgspec.Meta(max_length=64)] = ()
    sensor_contact: bool | None = None


class _Single(_Item, forbid_unknown_fields=True, kw_only=True):
    v: Literal[1]


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    v: Literal[1]
    samples: Annotated[list[_Item], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class FastSampleDecoder:
    """Decodes what a well-behaved gateway sends, or says ``None`` (let the schemas speak)."""

    __slots__ = ("_batch", "_single")

    def __init__(self) -> None:
        self._batch = msgspec.json.Decoder(_Batch)
        self._single = msgspec.json.Decoder(_Single)

    def decode(
        self, payload: bytes, *, patient: str, limit: float, earliest: float = MIN_TIME_S
    ) -> list[Sample] | None:
        """The samples of ``payload`` for ``patient``, each checked (kind's unit and range,
        a finite time between 2000 (or ``earliest``) and ``limit``); ``None`` if anything
        is not right."""
        items: list[_Item]
        try:
            if b'"samples"' in payload:
                items = self._batch.decode(payload).samples
            else:
                items = [self._single.decode(payload)]
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None
        out: list[Sample] = []
        append = out.append
        kinds = _KINDS
        bounds = _BOUNDS
        hi_time = min(limit, MAX_TIME_S)
        lo_time = max(earliest, MIN_TIME_S)
        tags = ("", "mqtt")  # the last device and source found storable
        for item in items:
            if (item.device, item.source) != tags:
                if unstorable_tag(item.device) or unstorable_tag(item.source):
                    return None
                tags = (item.device, item.source)
            unit, lo, hi = bounds[item.kind]
            value = item.value
            if item.unit != unit or not lo <= value <= hi:
                return None
            claimed = item.patient
            if claimed is not msgspec.UNSET and claimed != patient:
                return None
            t = item.time
            if isinstance(t, str):
                try:
                    t = parse_time(t)
                except (ValueError, OverflowError):
                    return None  # the full path words the error
            if not (lo_time <= t <= hi_time and t < MAX_TIME_S and math.isfinite(value)):
                return None
            append(
                Sample(
                    patient,
                    kinds[item.kind],
                    value,
                    t,
                    item.device,
                    item.source,
                    item.rr_intervals,
                    item.sensor_contact,
                )
            )
        return out
