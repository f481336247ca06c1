"""Cluster mode's pure parts: the engine snapshot, subject names, the generated NATS
permissions and the [cluster] section."""

from __future__ import annotations

import hashlib
import json
import math
from array import array

import pytest

from monitor.cluster import snapshot
from monitor.cluster.outputs import _record_payload
from monitor.cluster.profiles import ProfileChange, decode_change
from monitor.cluster.subjects import Names, partition_of, patient_token, render_authorization
from monitor.cluster.webview import decode_event, decode_record, decode_state
from monitor.config import parse_config
from monitor.engine import MonitorEngine
from monitor.errors import ConfigError, InputError
from monitor.model import Acknowledgement
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.payloads import encode_event, encode_state
from monitor.mqtt.topics import Channel
from monitor.profile import PatientProfile
from tests.cluster_helpers import hot_session

LIMIT = 1 << 20


def test_a_restored_engine_continues_exactly_like_the_original() -> None:
    batches = hot_session("p1", seconds=1500)
    samples = [s for b in batches for s in b]
    # Hand over after 400 s, before the first alert (caution at ~440 s, cool_down ~510 s).
    cut = 800
    original = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    for s in samples[:cut]:
        original.ingest(s)
    data = snapshot.dumps(original.engine("p1"), max_bytes=LIMIT)
    assert len(data) < 16_000
    restored, _ = snapshot.loads(data, max_bytes=LIMIT)
    other = MonitorEngine(profiles={})
    other.adopt(restored)
    a = [original.ingest(s) for s in samples[cut:]]
    b = [other.ingest(s) for s in samples[cut:]]
    assert [r.states for r in a] == [r.states for r in b]
    assert [e.id for r in a for e in r.events] == [e.id for r in b for e in r.events]
    assert any(e.level.value == "cool_down" for r in b for e in r.events)


def test_an_adopted_engine_takes_the_new_owners_clock_not_the_checkpoints() -> None:
    """The old owner ticked once a second (wall clock); the checkpoint is taken; the new
    owner restores it 40 s later, ticking on its own clock, and replays what came since
    (all in the past for it) before its next tick: nothing is ``future``."""
    samples = [s for b in hot_session("p1", seconds=200) for s in b]
    original = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    for s in samples[:100]:  # 50 s, a tick after each second
        original.ingest(s)
        original.advance(s.time)
    data = snapshot.dumps(original.engine("p1"), max_bytes=LIMIT)
    restored, _ = snapshot.loads(data, max_bytes=LIMIT)
    other = MonitorEngine(profiles={})
    now = samples[180].time
    other.advance(now - 1.0)
    other.advance(now)
    other.adopt(restored)
    results = [other.ingest(s) for s in samples[100:180]]
    assert [r.flag.value for r in results if r.flag.value != "ok"] == []
    ahead = samples[181]._replace(time=now + 30.0)  # but the new owner's clock applies
    assert other.ingest(ahead).flag.value == "future"


def _tamper(data: bytes, change: object) -> bytes:
    doc = json.loads(data)
    assert callable(change)
    change(doc)
    text = json.dumps(sorted(doc["classes"].items()), separators=(",", ":"))
    doc["fp"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return json.dumps(doc).encode()


def test_a_checkpoint_cannot_name_a_foreign_class_or_outdated_fields() -> None:
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    data = snapshot.dumps(engine.engine("p1"), max_bytes=LIMIT)

    def foreign(doc: dict[str, object]) -> None:
        doc["state"] = {"O": "os:system", "a": {}}

    with pytest.raises(snapshot.SnapshotError, match="not one a checkpoint may hold"):
        snapshot.loads(_tamper(data, foreign), max_bytes=LIMIT)

    def outdated(doc: dict[str, dict[str, list[str]]]) -> None:
        doc["classes"]["monitor.engine.patient:PatientEngine"].append("_gone")

    with pytest.raises(snapshot.SnapshotError, match="fields changed"):
        snapshot.loads(_tamper(data, outdated), max_bytes=LIMIT)
    with pytest.raises(snapshot.SnapshotError, match="over the"):
        snapshot.loads(data, max_bytes=100)


def test_number_arrays_keep_non_finite_values_and_refuse_bad_items() -> None:
    ring = array("d", [1.5, math.inf, math.nan, -2.0])
    back, _ = snapshot.loads(snapshot.dumps(ring, max_bytes=LIMIT), max_bytes=LIMIT)
    assert back.typecode == "d" and back[:2].tolist() == [1.5, math.inf]
    assert math.isnan(back[2]) and back[3] == -2.0
    ints = snapshot.dumps(array("q", [1, 2, 3]), max_bytes=LIMIT)
    assert snapshot.loads(ints, max_bytes=LIMIT)[0] == array("q", [1, 2, 3])
    bad = ints.replace(b"[1,2,3]", b"[1,2.5,3]")
    with pytest.raises(snapshot.SnapshotError, match="bad 'q' array"):
        snapshot.loads(bad, max_bytes=LIMIT)


def test_subjects_and_partitions() -> None:
    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
    assert patient_token("p.2") == "p//2"  # the server's MQTT conversion of '.'
    assert names.inbound("p.2", Channel.SAMPLES) == "heatmon.v1.patients.p//2.samples"
    # FNV-1a as the server's {{partition(4,1)}} computes it (checked against nats-server)
    assert (partition_of("p1", 4), partition_of("p//2", 4), partition_of("p3", 4)) == (2, 1, 0)
    assert names.parse_in("hm.in.1.p//2.ack") == (1, "p.2", "ack")


def test_generated_permissions_follow_the_mqtt_acl() -> None:
    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
    opts = MqttOptions.model_validate(
        {"acl": {"gateways": {"gw1": ["p1"]}, "caregivers": {"carol": ["p1", "p3"]}}}
    )
    text = render_authorization(names, opts)
    gw = next(line for line in text.splitlines() if '"gw1"' in line)
    assert "heatmon.v1.patients.p1.samples" in gw and "hm.in.2.p1.samples" in gw
    assert "p3" not in gw and "$HEATMON_NATS_PASSWORD_GW1" in gw
    carol = next(line for line in text.splitlines() if '"carol"' in line)
    assert "heatmon.v1.patients.p3.alerts" in carol and "samples" not in carol
    assert '"heatmon.v1.patients.*.samples": "hm.in.{{partition(4,1)}}' in text
    # only the workers' login (no permissions block: everything) may write a bucket, the
    # profiles bucket included; everyone else's publishes are listed and none is JetStream's
    others = [line for line in text.splitlines() if "permissions" in line]
    assert others and not any("$KV" in line or "$JS" in line for line in others)


def _change(**fields: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1,
        "patient": "p.2",
        "change": "threshold.accept",
        "by": "dr-ng",
        "at": 1_780_000_000.0,
        "suggestion": "3b0c2f9e-0000-4000-8000-000000000000",
        "version": None,
        "profile": PatientProfile(id="p.2", threshold_rise_c=0.41).model_dump(mode="json"),
    }
    doc.update(fields)
    return json.dumps(doc).encode()


def test_a_profile_change_is_checked_on_receipt() -> None:
    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
    configured = {
        "p.2": PatientProfile(id="p.2", threshold_rise_c=0.6),
        "p3": PatientProfile(id="p3"),
    }
    key = names.profile_key("p.2")
    assert key == "p.p//2"

    def check(data: bytes, k: str = key) -> ProfileChange:
        return decode_change(data, key=k, names=names, configured=configured)

    ok = check(_change())
    assert (ok.patient, ok.profile.threshold_rise_c, ok.by) == ("p.2", 0.41, "dr-ng")
    assert check(ok.encode()) == ok
    # a clinician's edit is checked as the profile is (as in one process), not against the
    # learning floor; a reset goes back to the configured threshold only
    edit = PatientProfile(id="p.2", threshold_rise_c=0.25, caution_margin_c=0.1)
    assert check(
        _change(change="profile.edit", suggestion=None, version=3, profile=edit.model_dump())
    )
    reset = PatientProfile(id="p.2", threshold_rise_c=0.6).model_dump()
    assert check(_change(change="threshold.reset", suggestion=None, profile=reset))
    # ... or to the one the care team set by hand, carried forward from the edit
    assert check(
        _change(change="profile.edit", suggestion=None, profile=edit.model_dump())
    ).hand_set_c == pytest.approx(0.25)
    to_hand_set = _change(
        change="threshold.reset", suggestion=None, hand_set_c=0.25, profile=edit.model_dump()
    )
    assert check(to_hand_set).profile.threshold_rise_c == pytest.approx(0.25)
    low = PatientProfile(id="p.2", threshold_rise_c=0.25, caution_margin_c=0.1).model_dump()
    refused = {
        "larger than": b"{" + b" " * 9000 + b"}",
        "not JSON": b"{not json",
        "format": _change(v=2),
        "valid id": _change(patient="p 2"),
        "of the key": _change(patient="p3"),
        "a person makes": _change(change="threshold.suggest"),
        "who accepted": _change(by=""),
        "when": _change(at=float("nan")),
        "names its suggestion": _change(suggestion=None),
        "below the floor +0.30": _change(profile=low),
        "configured threshold, or the one the care team set by hand, only": _change(
            change="threshold.reset", suggestion=None, hand_set_c=0.55
        ),
        "hand_set_c: a threshold": _change(hand_set_c="0.5"),
        "hand_set_c: an edit's is its own": _change(
            change="profile.edit", suggestion=None, hand_set_c=0.6
        ),
        "threshold_rise_c": _change(profile={**reset, "threshold_rise_c": 5}),
        "another patient": _change(profile=PatientProfile(id="p3").model_dump()),
    }
    for why, data in refused.items():
        with pytest.raises(InputError) as err:
            check(data)
        assert why in err.value.reason, (why, err.value.reason)
        # the reason names neither the patient nor the person
        assert "p.2" not in err.value.reason and "dr-ng" not in err.value.reason
    p9 = _change(patient="p9", profile=PatientProfile(id="p9").model_dump())
    with pytest.raises(InputError, match="this cluster's patients"):
        check(p9, names.profile_key("p9"))
    with pytest.raises(InputError, match="who accepted"):
        check(_change(by="dr\x00ng"))


def test_cluster_section_is_validated_and_its_password_comes_from_the_environment() -> None:
    cfg = parse_config(
        {"cluster": {"servers": ["nats://a:4222"]}}, environ={"HEATMON_CLUSTER_PASSWORD": "s"}
    )
    assert cfg.cluster is not None and cfg.cluster.password is not None
    assert cfg.cluster.password.get_secret_value() == "s"
    assert parse_config({}, environ={"HEATMON_CLUSTER_PASSWORD": "s"}).cluster is None
    with pytest.raises(ConfigError, match=r"cluster\.servers"):
        parse_config({"cluster": {"servers": ["http://a"]}}, environ={})
    with pytest.raises(ConfigError, match="duplicate_window_s"):
        parse_config(
            {"cluster": {"servers": ["nats://a"], "checkpoint_interval_s": 400}}, environ={}
        )


def test_the_dashboard_reads_back_what_the_out_stream_carries() -> None:
    """A worker's board is fed from the out stream's payloads: a state, an alert and a
    record read back show on the board as the engine's own objects do."""

    engine = MonitorEngine(profiles={"p.1": PatientProfile(id="p.1")})
    results = [engine.ingest(s) for b in hot_session("p.1", seconds=1500) for s in b]
    states = [s for r in results for s in r.states]
    events = [e for r in results for e in r.events]
    assert any(e.requires_ack for e in events)
    for state in states[-5:]:
        back = decode_state("p.1", json.loads(encode_state(state)))
        assert back.json_fields() == state.json_fields()
        assert back.time == pytest.approx(state.time, abs=1e-3)
    for event in events:
        back_event = decode_event("p.1", json.loads(encode_event(event)))
        assert back_event.to_json_dict() == event.to_json_dict()
    ack = Acknowledgement(patient="p.1", event_id=events[-1].id, time=states[-1].time, by="carol")
    assert decode_record("p.1", json.loads(_record_payload(ack))) == ack
    with pytest.raises(KeyError):
        decode_record("p.1", {"type": "Something"})


def test_status_shows_the_samples_a_worker_flagged_and_left_out() -> None:
    """A sample flagged ``future`` is not estimated from: the operator sees how many, per
    worker, beside the partitions (a takeover once dropped them without a word)."""
    from monitor.cluster.status import ClusterStatus, WorkerRow, render

    quiet = WorkerRow(worker="w1", partitions=(0,), heartbeat_age_s=1.0, published=5)
    flagged = WorkerRow(
        worker="w2", partitions=(1,), heartbeat_age_s=1.0, published=5, flags={"future": 52}
    )
    text = render(
        ClusterStatus(workers=(quiet, flagged), partitions=(), in_messages=0, out_messages=0)
    )
    lines = text.splitlines()
    assert "samples flagged (not estimated from): future 52" in lines[3], text
    assert sum("samples flagged" in line for line in lines) == 1, text
    # a refused profile change (a threshold that did not reach the engines) shows too
    refused = WorkerRow(
        worker="w3", partitions=(2,), heartbeat_age_s=1.0, published=5, profiles=(4, 1)
    )
    text = render(ClusterStatus(workers=(refused,), partitions=(), in_messages=0, out_messages=0))
    assert "profile changes applied 4, refused 1" in text.splitlines()[2], text


class _MemoryBucket:
    """A key-value bucket's get / create / update with compare-and-set, in memory (for the
    writer's logic alone; the real bucket is in tests/test_cluster_profiles.py)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, bytes]] = {}
        self.revision = 0

    async def get(self, key: str) -> object:
        from types import SimpleNamespace

        from nats.js.errors import KeyNotFoundError

        if key not in self.entries:
            raise KeyNotFoundError
        revision, value = self.entries[key]
        return SimpleNamespace(revision=revision, value=value)

    async def create(self, key: str, value: bytes) -> int:
        assert key not in self.entries
        self.revision += 1
        self.entries[key] = (self.revision, value)
        return self.revision

    async def update(self, key: str, value: bytes, last: int) -> int:
        from nats.js.errors import KeyWrongLastSequenceError

        if self.entries[key][0] != last:
            raise KeyWrongLastSequenceError
        del self.entries[key]
        return await self.create(key, value)


async def test_a_reset_to_the_care_teams_threshold_passes_every_workers_check() -> None:
    """The care team set p.2's threshold by hand (+0.45, a profile edit), a caregiver then
    accepted a suggestion (+0.35), and someone reset it: the reset goes back to +0.45 (the
    care team's, not the file's +0.60), and a worker that reads only the newest entry (one
    that starts later) takes it instead of refusing it as a reset to something else."""
    from types import SimpleNamespace
    from typing import Any, cast

    from monitor.cluster.profiles import ClusterProfiles
    from monitor.thresholds.records import ThresholdChange

    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
    configured = {"p.2": PatientProfile(id="p.2", threshold_rise_c=0.6)}
    counted: list[str] = []
    worker = SimpleNamespace(
        names=names, profiles=dict(configured), count=lambda n, k=1: counted.append(n)
    )
    bucket = _MemoryBucket()
    writer = ClusterProfiles(worker=cast(Any, worker), kv=cast(Any, bucket))
    edited = PatientProfile(id="p.2", threshold_rise_c=0.45)
    await writer.publish_profile(edited, at=1.0, version=2, who=lambda: "ada")
    for n, (threshold, suggestion) in enumerate(((0.35, "s1"), (0.45, None)), start=2):
        await writer.publish_threshold(
            ThresholdChange(
                id=f"c{n}",
                patient="p.2",
                threshold_c=threshold,
                previous_c=0.0,
                suggestion=suggestion,
                set_by="dr-ng",
                set_at=float(n),
            )
        )
        _, value = bucket.entries[names.profile_key("p.2")]
        newest = decode_change(
            value, key=names.profile_key("p.2"), names=names, configured=configured
        )
        assert newest.profile.threshold_rise_c == pytest.approx(threshold)
        assert newest.hand_set_c == pytest.approx(0.45)
    assert newest.change == "threshold.reset"
    assert counted == ["profiles_published"] * 3


async def test_an_ack_over_the_inbound_stream_names_a_caregiver_not_the_patient() -> None:
    """In one process the MQTT input refuses an acknowledgement whose ``by`` is no login:
    a caregiver's app could otherwise store ``by = "patient:self"``, which the records and
    the dashboard read as "the patient acknowledged it themselves". A cluster worker took
    any ``by`` from the inbound stream, where caregivers publish acks too (their NATS and
    MQTT permissions), because its own dashboard sent the patient's "I'm cooling down"
    there. The dashboard's acks now go on a channel of their own (``web_ack``) that only
    the workers' login may publish (no generated permission names it); on ``ack`` ``by``
    must be a login."""
    import time
    from types import SimpleNamespace
    from typing import Any, cast

    from monitor.cluster.partition import Partition
    from monitor.cluster.subjects import WEB_ACK
    from monitor.engine import MonitorEngine
    from monitor.model import Acknowledgement, Event, EventKind, Level, Quality
    from monitor.mqtt.codec import PayloadCodec
    from monitor.mqtt.payloads import encode_ack
    from monitor.service import Monitor
    from tests.mqtt_helpers import RecordingSink

    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
    records = RecordingSink()
    now = time.time()
    monitor = Monitor(
        engine=MonitorEngine(profiles={"p1": PatientProfile(id="p1")}), sinks=[records]
    )
    refused: list[str] = []
    counted: list[str] = []

    async def refuse(patient: str, channel: str, reason: str, *, seq: int) -> None:
        refused.append(f"{channel}: {reason}")

    worker = SimpleNamespace(
        names=names,
        profiles={"p1": PatientProfile(id="p1")},
        count=lambda n, k=1: counted.append(n),
        refuse=refuse,
        codec=PayloadCodec(),
        monitor=monitor,
        cc=SimpleNamespace(lease_ttl_s=6.0),
    )
    part = Partition(cast(Any, worker), names.partition("p1"), revision=1)

    def alert(n: int) -> Event:
        return Event(
            id=f"p1-e{n}",
            patient="p1",
            time=now,
            session="s",
            kind=EventKind.LEVEL,
            level=Level.COOL_DOWN,
            previous_level=Level.CAUTION,
            quality=Quality.GOOD,
            core_delta_c=0.5,
            message="cool down",
            requires_ack=True,
        )

    monitor.restore_open_alerts("p1", [alert(n) for n in range(4)])
    base = f"hm.in.{names.partition('p1')}.p1"
    await part._handle(f"{base}.ack", encode_ack(event_id="p1-e0", by="patient:self", time=now), 1)
    await part._handle(f"{base}.ack", encode_ack(event_id="p1-e1", by="carol", time=now), 2)
    await part._handle(
        f"{base}.{WEB_ACK}", encode_ack(event_id="p1-e2", by="patient:self", time=now), 3
    )
    await part._handle(f"{base}.{WEB_ACK}", encode_ack(event_id="p1-e3", by="carol", time=now), 4)
    acks = [(r.event_id, r.by) for r in records.records if isinstance(r, Acknowledgement)]
    assert acks == [("p1-e1", "carol"), ("p1-e2", "patient:self"), ("p1-e3", "carol")]
    assert len(refused) == 1 and refused[0].startswith("ack: by:"), refused
    assert "rejected.ack" in counted


async def test_an_inbound_subject_whose_patient_is_no_pseudonym_is_counted_not_raised() -> None:
    """``hm.in.0.p$1.samples`` (a NATS login allowed more than the generated permissions
    give): computing the partition of "p$1" raised InputError out of the message handler,
    so the worker skipped the rest of the fetched batch, which the next batch's
    acknowledgement (AckPolicy.ALL) then acknowledged: lost without a count. Now it is
    counted as a bad subject like any other, and the next message is handled."""
    from types import SimpleNamespace
    from typing import Any, cast

    from monitor.cluster.partition import Partition

    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
    counted: list[str] = []
    worker = SimpleNamespace(names=names, profiles={}, count=lambda n, k=1: counted.append(n))
    part = Partition(cast(Any, worker), 0, revision=1)
    for n, subject in enumerate(("hm.in.0.p$1.samples", "hm.in.0.-p.ack", "hm.in.x.p1.samples")):
        await part._handle(subject, b"{}", n + 1)
    assert counted == ["bad_subjects"] * 3


def test_worker_written_data_nested_or_dated_absurdly_is_refused_not_raised() -> None:
    """The profiles bucket and the checkpoints are written by the workers' login alone, but
    a worker of another version (or with a wrong clock) may write them: a document nested
    deeper than the interpreter's stack raised RecursionError out of the reader, and a
    change dated far ahead would, newest winning, block every later change."""
    import time

    from monitor.cluster.snapshot import SnapshotError, loads

    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
    configured = {"p.2": PatientProfile(id="p.2")}
    deep = b"[" * 4000 + b"]" * 4000  # inside the 8 KB of a profile change
    with pytest.raises(InputError, match="nested too deeply"):
        decode_change(deep, key=names.profile_key("p.2"), names=names, configured=configured)
    with pytest.raises(SnapshotError, match="nested too deeply"):
        loads(deep, max_bytes=1_000_000)
    ahead = _change(at=time.time() + 86_400 * 365 * 100)
    with pytest.raises(InputError, match="ahead"):
        decode_change(ahead, key=names.profile_key("p.2"), names=names, configured=configured)


async def test_an_unexpected_error_on_input_is_counted_and_the_batch_goes_on() -> None:
    """A bug while taking one message (here the monitor raising) is counted, answered on
    the errors subject and logged once with its traceback; it is not raised out of the
    handler, where it would skip the rest of the fetched batch (then acknowledged with the
    next batch: lost)."""
    import time
    from types import SimpleNamespace
    from typing import Any, cast

    from monitor.cluster.partition import Partition
    from monitor.mqtt.codec import PayloadCodec
    from monitor.mqtt.payloads import encode_symptom

    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=1)
    counted: list[str] = []
    refused: list[str] = []

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug")

    async def refuse(patient: str, channel: str, reason: str, *, seq: int) -> None:
        refused.append(reason)

    class Taken:
        def over(self, patient: str) -> bool:
            return False

    worker = SimpleNamespace(
        names=names,
        profiles={"p1": PatientProfile(id="p1")},
        count=lambda n, k=1: counted.append(n),
        codec=PayloadCodec(),
        monitor=SimpleNamespace(report_symptom=broken),
        symptoms=Taken(),
        refuse=refuse,
    )
    part = Partition(cast(Any, worker), 0, revision=1)
    subject = f"hm.in.0.{patient_token('p1')}.symptoms"
    for seq in (1, 2):
        await part._handle(subject, encode_symptom(time=time.time()), seq)
    assert counted == ["input_errors", "input_errors"]
    assert refused == ["could not be processed (RuntimeError)"] * 2
