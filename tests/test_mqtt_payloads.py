"""MQTT payloads: the schemas are valid, what heatmon publishes matches them, and bad inbound
payloads are rejected with a reason that says what is wrong."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from monitor.errors import InputError
from monitor.model import (
    Event,
    EventKind,
    Level,
    Quality,
    Sample,
    SampleKind,
    ThermalState,
)
from monitor.mqtt import payloads
from monitor.mqtt.codec import PayloadCodec, load_schema
from monitor.mqtt.topics import Channel, Topics

NOW = 1_716_000_000.0
WHERE = "heatmon/v1/patients/p1/samples"


@pytest.fixture
def codec() -> PayloadCodec:
    return PayloadCodec()


def _state() -> ThermalState:
    return ThermalState(
        patient="p1",
        time=NOW,
        session="p1-1",
        level=Level.CAUTION,
        quality=Quality.GOOD,
        core_temp_c=37.5,
        core_temp_sd_c=0.2,
        core_delta_c=0.35,
        baseline_core_c=37.15,
        threshold_rise_c=0.5,
        heart_rate_bpm=142.0,
        skin_temp_c=33.1,
        measured_core_c=None,
        minutes_to_threshold=6.0,
        minutes_to_recovery=None,
        strain_index=3.2,
        estimator="heat_balance",
    )


def _event(kind: EventKind = EventKind.LEVEL) -> Event:
    return Event(
        id="p1-1:3",
        patient="p1",
        time=NOW,
        session="p1-1",
        kind=kind,
        level=Level.COOL_DOWN,
        previous_level=Level.CAUTION,
        quality=Quality.GOOD,
        core_delta_c=0.52,
        message="Cool down now",
        advice=("Drink something cold",),
        requires_ack=True,
        recovery_minutes=12.0 if kind is EventKind.RECOVERED else None,
    )


@pytest.mark.parametrize("name", payloads.SCHEMA_NAMES)
def test_every_schema_is_valid_2020_12_with_version_key(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "v" in schema["required"]


def test_outbound_payloads_match_their_schemas(codec: PayloadCodec) -> None:
    assert codec.check("state", json.loads(payloads.encode_state(_state()))) == []
    alert = json.loads(payloads.encode_event(_event()))
    assert codec.check("alert", alert) == []
    assert alert["id"] == "p1-1:3" and alert["v"] == 1
    recovered = _event(EventKind.RECOVERED)
    assert payloads.event_schema(recovered) == "recovered"
    assert codec.check("recovered", json.loads(payloads.encode_event(recovered))) == []
    status = json.loads(payloads.encode_status(instance="m1", online=False))
    assert codec.check("status", status) == [] and status["status"] == "offline"
    err = payloads.encode_error(topic=WHERE, reason="x", rejected=1, time=NOW)
    assert codec.check("error", json.loads(err)) == []


def test_schema_rejects_a_state_without_level(codec: PayloadCodec) -> None:
    doc = json.loads(payloads.encode_state(_state()))
    del doc["level"]
    assert any("level" in p for p in codec.check("state", doc))


def test_single_and_batched_samples_round_trip(codec: PayloadCodec) -> None:
    s1 = Sample("p1", SampleKind.HEART_RATE, 120.0, NOW, "strap", "ble", (0.5, 0.49), True)
    s2 = Sample("p1", SampleKind.SKIN_TEMP, 33.2, NOW + 1, "patch", "ble")
    assert codec.decode_samples(payloads.encode_sample(s1), patient="p1", where=WHERE, now=NOW) == [
        s1
    ]
    batch = payloads.encode_batch([payloads.sample_dict(s1), payloads.sample_dict(s2)])
    assert codec.decode_samples(batch, patient="p1", where=WHERE, now=NOW) == [s1, s2]


def test_iso_time_is_accepted(codec: PayloadCodec) -> None:
    doc = {"v": 1, "kind": "heart_rate", "value": 99, "unit": "bpm", "time": "2024-05-18T02:40:00Z"}
    [s] = codec.decode_samples(json.dumps(doc).encode(), patient="p1", where=WHERE, now=NOW)
    assert s.time == 1_716_000_000.0 and s.value == 99.0


def _good(**change: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": 1, "kind": "skin_temp", "value": 33.0, "unit": "degC", "time": NOW}
    doc.update(change)
    return {k: v for k, v in doc.items() if v is not None}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"v": 1, "kind": "skin_temp", "value": NaN, "unit": "degC", "time": 1}', "NaN"),
        (b"\xff\xfe", "UTF-8"),
        (json.dumps(_good(v=2)).encode(), "schema version"),
        (json.dumps(_good(unit="degF")).encode(), "unit: 'degC' was expected"),
        (json.dumps(_good(value=412.0)).encode(), "value: 412.0 is greater than the maximum"),
        (json.dumps(_good(kind="heart_rate", unit="bpm", value=-3)).encode(), "value: -3"),
        (json.dumps(_good(time=None)).encode(), "'time' is a required property"),
        (json.dumps(_good(time="2024-05-18 02:40")).encode(), "has no zone"),
        (json.dumps(_good(time=NOW + 3600)).encode(), "in the future"),
        (json.dumps(_good(temp=3)).encode(), "temp"),
        (json.dumps(_good(patient="p2")).encode(), "differs from the topic"),
        (json.dumps(_good(patient="p1/x")).encode(), "patient: 'p1/x' does not match"),
        (json.dumps({"v": 1, "samples": []}).encode(), "samples: [] should be non-empty"),
        (json.dumps({"v": 1, "samples": [_good(v=None)] * 1001}).encode(), "more than 1000 items"),
        (b'{"v": 1, "note": "' + b"x" * 300_000 + b'"}', "exceeds"),
        (json.dumps(_good(device="d" * 300)).encode(), "device: str is longer than 64 char"),
    ],
)
def test_bad_sample_payloads_are_rejected_with_a_reason(
    codec: PayloadCodec, payload: bytes, reason: str
) -> None:
    with pytest.raises(InputError) as info:
        codec.decode_samples(payload, patient="p1", where=WHERE, now=NOW)
    assert reason in info.value.reason
    assert info.value.where == WHERE


def test_bad_item_in_a_batch_is_named_by_index(codec: PayloadCodec) -> None:
    doc = {"v": 1, "samples": [_good(v=None), _good(v=None, unit="K")]}
    with pytest.raises(InputError, match=r"samples\[1\]\.unit"):
        codec.decode_samples(json.dumps(doc).encode(), patient="p1", where=WHERE, now=NOW)


def test_symptom_and_ack(codec: PayloadCodec) -> None:
    symptom = payloads.encode_symptom(time=NOW, note="tingling")
    t, note = codec.decode_symptom(symptom, where="w", now=NOW)
    assert (t, note) == (NOW, "tingling")
    ack = payloads.encode_ack(event_id="e1", by="anna", time=NOW)
    assert codec.decode_ack(ack, where="w", now=NOW) == (
        "e1",
        "anna",
        NOW,
    )
    with pytest.raises(InputError, match="event_id"):
        codec.decode_ack(b'{"v": 1, "by": "anna"}', where="w")
    with pytest.raises(InputError, match="note"):
        codec.decode_symptom(
            json.dumps({"v": 1, "time": NOW, "note": "x" * 501}).encode(), where="w"
        )


@pytest.mark.parametrize("days", [8, 365 * 20])
def test_a_time_days_behind_the_monitor_is_refused_naming_the_clock(
    codec: PayloadCodec, days: int
) -> None:
    """A gateway whose clock was reset (to its firmware's date): its live samples were
    taken as years old, alerts were dated then and the patient shown as stale while the
    data came in. Samples (typed pass and schemas alike), symptom reports and
    acknowledgements that far behind are refused; a gateway's buffer of days comes in."""
    old = NOW - days * 86_400
    sample = json.dumps(_good(time=old)).encode()
    with pytest.raises(InputError, match=r"^w: time: .* is more than 7 days in the past .*clock"):
        codec.decode_samples(sample, patient="p1", where="w", now=NOW)
    with pytest.raises(InputError, match="more than 7 days in the past"):
        codec.decode_symptom(payloads.encode_symptom(time=old), where="w", now=NOW)
    with pytest.raises(InputError, match="more than 7 days in the past"):
        codec.decode_ack(payloads.encode_ack(event_id="e", by="a", time=old), where="w", now=NOW)
    buffered = json.dumps(_good(time=NOW - 6 * 86_400)).encode()
    assert codec.decode_samples(buffered, patient="p1", where="w", now=NOW)[0].time == (
        NOW - 6 * 86_400
    )


def test_topics_parse_and_refuse_wildcards() -> None:
    topics = Topics("t1/heatmon/v1")
    assert topics.parse("t1/heatmon/v1/patients/p-1.a/ack") == ("p-1.a", Channel.ACK)
    assert topics.patient("p1", Channel.STATE) == "t1/heatmon/v1/patients/p1/state"
    for bad in ("a+b", "a#", "a/b"):
        with pytest.raises(InputError, match="contains"):
            topics.patient(bad, Channel.SAMPLES)
    with pytest.raises(InputError, match="contains '/'"):
        topics.parse("t1/heatmon/v1/patients/a/b/samples")
    with pytest.raises(InputError, match="unknown channel"):
        topics.parse("t1/heatmon/v1/patients/a/bogus")
    assert math.isfinite(NOW)


def test_outbox_survives_a_restart_and_drops_repeated_keys(tmp_path: Any) -> None:
    from monitor.mqtt.outbox import Outbox

    path = tmp_path / "outbox.sqlite"
    with Outbox(path=path) as box:
        assert box.put("a", b"1", key="e1")
        assert not box.put("a", b"1 again", key="e1")
        box.put_many([("b", b"2"), ("b", b"3")])
        first = box.peek(1)
        box.done(item.seq for item in first)
        assert len(box) == 2
    with Outbox(path=path) as box:
        assert [i.payload for i in box.peek()] == [b"2", b"3"]
        assert not box.put("a", b"1", key="e1"), "a delivered key is still remembered"


def test_outbox_checkpoints_in_a_worker_thread_not_inside_commits(tmp_path: Any) -> None:
    """With ``checkpoint_every`` the loop's commits leave the write-ahead log alone (no
    checkpoint, no fsync on the event loop); :meth:`Outbox.checkpoint` in another thread
    copies it into the database while the owner goes on committing, and nothing is lost."""
    import shutil
    import sqlite3
    import threading

    from monitor.mqtt.outbox import Outbox

    path = tmp_path / "outbox.sqlite"

    def rows_in_database_file() -> int:
        """Rows in the database file alone, without its write-ahead log."""
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(path, copy)
        db = sqlite3.connect(copy)
        try:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        except sqlite3.OperationalError:  # the table itself is still only in the log
            return 0
        finally:
            db.close()

    with Outbox(path=path, checkpoint_every=200) as box:
        for n in range(1200):  # ~2,400 pages: SQLite alone would checkpoint twice
            box.put_keyed([(f"t/{n}", b"x" * 1000, f"e{n}")])
        assert box.checkpoint_due
        assert rows_in_database_file() == 0, "a commit checkpointed on the owner's thread"
        worker = threading.Thread(target=box.checkpoint)
        worker.start()
        for n in range(1200, 1300):  # the owner commits meanwhile
            box.put_keyed([(f"t/{n}", b"x" * 1000, f"e{n}")])
        worker.join(timeout=30)
        assert not box.checkpoint_due
        assert rows_in_database_file() >= 1200
        assert len(box) == 1300
    with Outbox(path=path) as box:
        assert len(box) == 1300
        assert [i.topic for i in box.peek(2)] == ["t/0", "t/1"]
