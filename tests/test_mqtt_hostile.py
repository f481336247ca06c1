"""Hypothesis against the MQTT input: whatever bytes arrive on whatever topic, the reader
answers with a counted rejection or takes the input, never raises, never meets an error
it did not foresee, and what it takes is storable (times a line of line protocol and
ISO 8601 can hold). The real broker path is in ``test_mqtt_poison.py``; here the reader's
``handle`` (what it calls for every message) is driven directly, thousands of times."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.engine import MonitorEngine
from monitor.model import Acknowledgement, SessionRecord, SymptomReport, iso_utc
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.payloads import MAX_TIME_S, MIN_TIME_S
from monitor.mqtt.sink import MqttSink
from monitor.mqtt.strictjson import nesting_depth
from monitor.plugins import PluginContext
from monitor.profile import PatientProfile
from monitor.service import Monitor
from monitor.storage import lineprotocol as lp
from tests.mqtt_helpers import RecordingSink

pytestmark = pytest.mark.slow

PREFIX = "heatmon/v1"
NOW = 1_790_000_000.0

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([1e308, -1e308, 1e20, 0, -1, 946684800, 4102444800, NOW, NOW + 299]),
)
times = st.one_of(
    numbers,
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.isoformat() + "+00:00"),
    st.text(max_size=50),
    st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1e308", "nan", "-inf"]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
sample_items = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["heart_rate", "skin_temp", "core_temp", "battery", "x"]),
        "value": numbers,
        "unit": st.sampled_from(["bpm", "degC", "percent", ""]),
        "time": times,
    },
    optional={
        "patient": st.sampled_from(["p1", "p2", "p/1", ""]),
        "device": st.text(max_size=70),
        "source": st.text(max_size=40),
        "rr_intervals": st.lists(numbers, max_size=3),
        "sensor_contact": scalars,
    },
)
documents = st.one_of(
    sample_items.map(lambda d: {"v": 1, **d}),
    st.lists(sample_items, max_size=4).map(lambda items: {"v": 1, "samples": items}),
    st.fixed_dictionaries({"v": st.just(1), "time": times}, optional={"note": st.text()}),
    st.fixed_dictionaries(
        {"v": st.just(1), "event_id": st.text(max_size=10), "by": st.text(max_size=10)},
        optional={"time": times},
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    json_values,
)


def encode(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8")


payloads = st.one_of(
    documents.map(encode),
    st.binary(max_size=300),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: b'{"v":1,"a":' * n + b"1" + b"}" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n),
)
topics = st.one_of(
    st.tuples(
        st.sampled_from(["p1", "p2", "p9", "p+", "#", ""]),
        st.sampled_from(["samples", "symptoms", "ack", "state", "errors", "nope"]),
    ).map(lambda pc: f"{PREFIX}/patients/{pc[0]}/{pc[1]}"),
    st.text(max_size=40),
)


class Harness:
    def __init__(self) -> None:
        self.records = RecordingSink()
        engine = MonitorEngine(profiles={p: PatientProfile(id=p) for p in ("p1", "p2")})
        self.monitor = Monitor(engine=engine, sinks=[self.records])
        context = PluginContext(config=None, instance="m1", monitor=self.monitor)
        self.sink = MqttSink(
            options=MqttOptions.model_validate({"topic_prefix": PREFIX}),
            context=context,
            known_patients=("p1", "p2"),
            clock=lambda: NOW,
        )


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages=st.lists(st.tuples(topics, payloads), min_size=1, max_size=8))
def test_the_reader_never_dies_and_every_message_has_one_outcome(
    messages: list[tuple[str, bytes]],
) -> None:
    harness = Harness()
    sink = harness.sink

    async def run() -> None:
        for topic, payload in messages:
            before = dict(sink.counters)
            await sink.handle(topic, payload)  # never raises
            changed = {
                k: sink.counters.get(k, 0) - before.get(k, 0)
                for k in (
                    "rejected",
                    "samples_in",
                    "symptoms_in",
                    "symptoms_repeated",
                    "symptoms_limited",
                    "acks_in",
                    "acks_repeated",
                )
            }
            outcomes = [k for k, n in changed.items() if n]
            assert len(outcomes) == 1, (topic, payload[:80], changed)
            if outcomes == ["rejected"]:
                assert changed["rejected"] == 1

    asyncio.run(run())
    assert sink.counters.get("input_errors", 0) == 0, "an error nobody foresaw"
    for record in harness.records.records:
        check_storable(record)


def check_storable(record: SymptomReport | Acknowledgement | SessionRecord) -> None:
    """What the reader hands on has a time every sink can write."""
    t = record.start if isinstance(record, SessionRecord) else record.time
    assert math.isfinite(t) and MIN_TIME_S <= t < MAX_TIME_S
    assert t <= NOW + 300, "never more than 5 min ahead"
    iso_utc(t)
    lp.record_line(record)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


awkward_text = st.text(alphabet='[]{}"\\ab', max_size=8)
nested = st.recursive(
    st.none() | st.integers() | awkward_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(awkward_text, inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=nested)
def test_nesting_depth_is_found_without_parsing_whatever_the_strings_hold(value: Any) -> None:
    """The depth limit is checked before parsing; brackets, quotes and backslashes inside
    strings never fool it."""
    assert nesting_depth(json.dumps(value).encode()) == depth_of(value)


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("device", "w\n1"),
        ("device", "w1\\"),
        ("device", "w\x001"),
        ("device", "w\r1"),
        ("source", "s\n"),
        ("source", "ble\\"),
    ],
)
@pytest.mark.parametrize("batch", [False, True])
def test_a_sample_whose_device_or_source_cannot_be_stored_is_refused(
    field: str, text: str, batch: bool
) -> None:
    """A device or source with a line break or a trailing backslash cannot be a tag in
    InfluxDB's line protocol: the input took it (into the engine and its alerts, PUBACKed),
    and storage then quarantined every such point, one error in the log each. Refused at
    the input, naming the field, counted."""
    harness = Harness()
    sink = harness.sink
    item = {"kind": "heart_rate", "value": 70, "unit": "bpm", "time": NOW, field: text}
    doc = {"v": 1, "samples": [item]} if batch else {"v": 1, **item}

    async def run() -> None:
        await sink.handle(f"{PREFIX}/patients/p1/samples", json.dumps(doc).encode())

    asyncio.run(run())
    assert sink.counters.get("samples_in", 0) == 0
    assert sink.counters.get("rejected", 0) == 1
    reason = json.loads(sink._errors[-1][1])["reason"]
    assert field in reason, reason
    good = Harness()
    item[field] = "polar-h10.A1_B2 x"
    asyncio.run(
        good.sink.handle(f"{PREFIX}/patients/p1/samples", json.dumps(item | {"v": 1}).encode())
    )
    assert good.sink.counters.get("samples_in", 0) == 1


def test_a_topic_whose_patient_is_no_pseudonym_is_not_repeated_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A gateway set up with raw ids (names, clinic numbers) publishes on
    ``…/patients/Hans Mueller/samples``: the rejection was logged with the name twice, in
    the topic and in the reason. A patient segment that is no pseudonym is left out of the
    log (the errors topic, behind the ACL, still says what was wrong); the count is kept."""
    harness = Harness()
    sink = harness.sink

    async def run() -> None:
        for topic in ("Hans Mueller/samples", "Jane Doe, MRN 0012345/symptoms", "Ann/B/ack"):
            await sink.handle(f"{PREFIX}/patients/{topic}", b'{"v":1}')

    with caplog.at_level("WARNING", logger="monitor.mqtt.inbound"):
        asyncio.run(run())
    logged = caplog.text
    assert sink.counters.get("rejected", 0) == 3
    assert logged.count("rejected input") == 3
    for raw in ("Mueller", "Hans", "Jane", "0012345", "Ann/B"):
        assert raw not in logged, logged
    assert f"{PREFIX}/patients/…/samples" in logged
    reason = json.loads(sink._errors[0][1])["reason"]
    assert "not a pseudonym" in reason or "patient id" in reason, reason
