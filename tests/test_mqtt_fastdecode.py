"""The typed hot path of gateway samples (monitor/mqtt/fastdecode.py) against the JSON
Schemas: what it accepts, the schemas accept with the same samples; what the schemas refuse,
it refuses too (so the client always reads the schema's reason)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import InputError
from monitor.model import Sample, SampleKind
from monitor.mqtt import payloads
from monitor.mqtt.codec import PayloadCodec
from monitor.mqtt.fastdecode import FastSampleDecoder

NOW = 1_700_000_000.0
LIMIT = NOW + payloads.MAX_FUTURE_S
CODEC = PayloadCodec()
FAST = FastSampleDecoder()


def _item(i: int = 0, **over: Any) -> dict[str, Any]:
    doc = payloads.sample_dict(
        Sample("p1", SampleKind.HEART_RATE, 70.0 + i, NOW - 100 + i, "strap", "gw", (0.8,), True)
    )
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not ...}


def _both(body: bytes) -> tuple[list[Sample] | None, list[Sample] | str]:
    fast = FAST.decode(body, patient="p1", limit=LIMIT)
    try:
        slow: list[Sample] | str = CODEC.decode_samples_by_schema(
            body, patient="p1", where="t", now=NOW
        )
    except InputError as err:
        slow = err.reason
    return fast, slow


def test_a_gateway_batch_takes_the_fast_path_with_the_same_samples() -> None:
    body = payloads.encode_batch([_item(i) for i in range(20)])
    fast, slow = _both(body)
    assert fast is not None and len(fast) == 20
    assert fast == slow
    assert CODEC.decode_samples(body, patient="p1", where="t", now=NOW) == slow


def test_a_single_sample_and_iso_times_take_the_fast_path() -> None:
    single = json.dumps({"v": 1, **_item(time="2023-11-14T22:11:40Z")}).encode()
    fast, slow = _both(single)
    assert fast is not None and fast == slow


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"value": 301.0}, "value"),
        ({"unit": "degC"}, "unit"),
        ({"kind": "pressure"}, "kind"),
        ({"patient": "someone-else"}, "differs from the topic's patient"),
        ({"time": NOW + 3600}, "in the future"),
        ({"time": 12.0}, "time"),
        ({"rr_intervals": [5.0]}, "rr_intervals"),
        ({"extra": 1}, "extra"),
        ({"device": None}, "device"),
        ({"time": "yesterday-ish"}, "time"),
        ({"sensor_contact": "yes"}, "sensor_contact"),
    ],
)
def test_what_the_schema_refuses_falls_back_and_gets_its_reason(
    change: dict[str, Any], reason: str
) -> None:
    body = payloads.encode_batch([_item(0), _item(1, **change)])
    fast, slow = _both(body)
    assert fast is None
    assert isinstance(slow, str) and reason in slow
    with pytest.raises(InputError) as err:
        CODEC.decode_samples(body, patient="p1", where="t", now=NOW)
    assert err.value.reason == slow


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80),
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=3),
)
_keys = st.sampled_from(
    [
        "kind",
        "value",
        "unit",
        "time",
        "patient",
        "device",
        "source",
        "rr_intervals",
        "sensor_contact",
        "v",
        "other",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    changes=st.lists(st.tuples(st.integers(0, 2), _keys, _values), max_size=3),
    drops=st.lists(st.tuples(st.integers(0, 2), _keys), max_size=2),
    kind=st.sampled_from(["heart_rate", "skin_temp", "core_temp", "battery"]),
)
def test_the_fast_path_never_accepts_what_the_schemas_refuse(
    changes: list[tuple[int, str, Any]], drops: list[tuple[int, str]], kind: str
) -> None:
    units = {"heart_rate": "bpm", "skin_temp": "degC", "core_temp": "degC", "battery": "percent"}
    items = [_item(i, kind=kind, unit=units[kind], value=30.0) for i in range(3)]
    for n, key, value in changes:
        items[n][key] = value
    for n, key in drops:
        items[n].pop(key, None)
    body = json.dumps({"v": 1, "samples": items}).encode()
    fast, slow = _both(body)
    if fast is not None:
        assert fast == slow
    if isinstance(slow, str):
        assert fast is None
