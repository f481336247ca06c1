"""Line protocol: escaping and field types, checked by reading back from a real InfluxDB."""

from __future__ import annotations

import math
import urllib.request

import pytest

from monitor.errors import InputError
from monitor.model import (
    Acknowledgement,
    Event,
    EventKind,
    Level,
    Quality,
    Sample,
    SampleFlag,
    SampleKind,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.storage import lineprotocol as lp
from tests.fixtures.influxdb import InfluxDatabase

T0 = 1_715_949_000.25

AWKWARD_IDS = [
    "plain",
    "with space",
    "comma,inside",
    "equals=sign",
    'double"quote',
    "single'quote",
    "back\\slash",
    "two\\\\backslashes",
    "mixed \\,= all",
    "Zürich-Ærø-患者",
    "emoji-🔥",
]


def _post(db: InfluxDatabase, lines: list[str]) -> None:
    req = urllib.request.Request(
        f"{db.url}/write?db={db.name}&precision=ns",
        data="\n".join(lines).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204


def test_float_fields_never_look_like_integers() -> None:
    line = lp.encode_line("m", {"t": "x"}, {"a": 1.0, "b": 2, "c": True, "d": "s"}, 1.0)
    assert line == 'm,t=x a=1.0,b=2i,c=true,d="s" 1000000000'


def test_non_finite_and_none_fields_are_left_out() -> None:
    line = lp.encode_line("m", {}, {"a": math.nan, "b": None, "c": math.inf, "d": 3.5}, 0.0)
    assert line == "m d=3.5 0"
    with pytest.raises(InputError, match="no storable field"):
        lp.encode_line("m", {}, {"a": math.nan}, 0.0)


def test_timestamps_are_deterministic_in_every_precision() -> None:
    t = 1_715_949_000.123456
    assert lp.timestamp(t, "ns") == 1_715_949_000_123_456_000
    assert lp.timestamp(t, "us") == 1_715_949_000_123_456
    assert lp.timestamp(t, "ms") == 1_715_949_000_123
    assert lp.timestamp(t, "s") == 1_715_949_000


@pytest.mark.parametrize("bad", ["line\nbreak", "carriage\rreturn", "trailing\\"])
def test_unwritable_tag_values_are_rejected_with_a_reason(bad: str) -> None:
    sample = Sample(bad, SampleKind.HEART_RATE, 80.0, T0, device="d")
    with pytest.raises(InputError, match="tag patient"):
        lp.sample_line(sample, SampleFlag.OK)


def test_empty_tag_values_are_left_out() -> None:
    line = lp.sample_line(Sample("p", SampleKind.BATTERY, 50.0, 1.0), SampleFlag.OK)
    assert line == 'vitals,kind=battery,patient=p value=50.0,flag="ok",accepted=true 1000000000'


def test_awkward_ids_read_back_identical(influx_db: InfluxDatabase) -> None:
    lines = []
    for n, ident in enumerate(AWKWARD_IDS):
        sample = Sample(ident, SampleKind.HEART_RATE, 60.0 + n, T0 + n, device=ident + "-dev")
        lines.append(lp.sample_line(sample, SampleFlag.OK))
        note = f'note of {ident}: "quoted", back\\slash, new\nline'
        lines.append(
            lp.symptom_line(
                SymptomReport(
                    patient=ident, time=T0 + n, session=ident, core_delta_c=0.4, note=note
                )
            )
        )
    _post(influx_db, lines)
    series = influx_db.query('SELECT "value", "patient", "device" FROM "vitals"')
    rows = series[0]["values"]
    assert isinstance(rows, list)
    assert [(r[2], r[3], r[1]) for r in rows] == [
        (ident, ident + "-dev", 60.0 + n) for n, ident in enumerate(AWKWARD_IDS)
    ]
    symptoms = influx_db.query('SELECT "note", "patient", "session" FROM "symptoms"')[0]["values"]
    assert isinstance(symptoms, list)
    assert [(r[1], r[2], r[3]) for r in symptoms] == [
        (f'note of {i}: "quoted", back\\slash, new\nline', i, i) for i in AWKWARD_IDS
    ]


def test_every_model_type_is_accepted_with_stable_field_types(influx_db: InfluxDatabase) -> None:
    state = ThermalState(
        patient="p1",
        time=T0,
        session="s1",
        level=Level.CAUTION,
        quality=Quality.GOOD,
        core_temp_c=37.6,
        core_temp_sd_c=0.2,
        core_delta_c=0.4,
        baseline_core_c=37.2,
        threshold_rise_c=0.5,
        heart_rate_bpm=140.0,
        skin_temp_c=None,
        measured_core_c=None,
        minutes_to_threshold=4.5,
        minutes_to_recovery=None,
        strain_index=5.1,
        estimator="heat_balance",
    )
    event = Event(
        id="p1-level-1",
        patient="p1",
        time=T0,
        session="s1",
        kind=EventKind.LEVEL,
        level=Level.CAUTION,
        previous_level=Level.OK,
        quality=Quality.GOOD,
        core_delta_c=0.4,
        message="Getting warm",
        advice=("Slow down", "Drink cool water"),
        requires_ack=True,
        minutes_to_threshold=4.5,
    )
    lines = [
        lp.sample_line(
            Sample("p1", SampleKind.HEART_RATE, 100, T0, "strap", "ble", (0.6, 0.61), True),
            SampleFlag.OK,
        ),
        lp.sample_line(Sample("p1", SampleKind.SKIN_TEMP, math.nan, T0), SampleFlag.INVALID),
        lp.sample_line(Sample("p1", SampleKind.BATTERY, 80, T0, "strap"), SampleFlag.OK),
        lp.state_line(state),
        lp.event_line(event),
        lp.ack_line(Acknowledgement(patient="p1", event_id="p1-level-1", time=T0 + 5, by="nurse")),
        lp.session_line(
            SessionRecord(patient="p1", session="s1", start=T0, stop=None, activity="aerobic")
        ),
        lp.session_line(
            SessionRecord(patient="p1", session="s1", start=T0, stop=T0 + 60, activity="aerobic")
        ),
    ]
    _post(influx_db, lines)
    keys = {s["name"]: s["values"] for s in influx_db.query("SHOW FIELD KEYS")}
    assert dict(keys["vitals"]) == {
        "value": "float",
        "flag": "string",
        "accepted": "boolean",
        "sensor_contact": "boolean",
        "rr_intervals_s": "string",
        "rr_count": "integer",
    }
    assert dict(keys["thermal"])["level_rank"] == "integer"
    assert dict(keys["alerts"])["requires_ack"] == "boolean"
    sessions = influx_db.query('SELECT "open", "stop_s", "duration_s" FROM "sessions"')
    assert sessions[0]["values"] == [[lp.timestamp(T0, "ns"), False, T0 + 60, 60.0]]
    invalid = influx_db.query('SELECT * FROM "vitals" WHERE "flag" = \'invalid\'')
    row = dict(zip(invalid[0]["columns"], invalid[0]["values"][0], strict=True))
    assert row["value"] is None and row["accepted"] is False


@pytest.mark.parametrize("ident", AWKWARD_IDS)
@pytest.mark.parametrize("flag", list(SampleFlag))
def test_fast_sample_line_equals_the_generic_encoder(ident: str, flag: SampleFlag) -> None:
    for sample in (
        Sample(ident, SampleKind.HEART_RATE, 71.5, T0, ident, ident, (0.8, 0.81), True),
        Sample(ident, SampleKind.SKIN_TEMP, math.nan, T0 + 0.1234567),
        Sample(ident, SampleKind.BATTERY, 50, T0, sensor_contact=False),
    ):
        for precision in lp.PRECISIONS:
            assert lp.sample_line(sample, flag, precision) == lp.sample_line_generic(
                sample, flag, precision
            )
