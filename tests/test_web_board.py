"""The dashboard's in-memory board: bounded history, pending alerts, slow streams dropped."""

from __future__ import annotations

from monitor.model import (
    Acknowledgement,
    Event,
    EventKind,
    Level,
    Quality,
    Sample,
    SampleFlag,
    SampleKind,
    ThermalState,
)
from monitor.web.board import Board


def state(t: float, delta: float, level: Level = Level.OK) -> ThermalState:
    return ThermalState(
        patient="p1",
        time=t,
        session="s1",
        level=level,
        quality=Quality.GOOD,
        core_temp_c=37.0 + delta,
        core_temp_sd_c=0.1,
        core_delta_c=delta,
        baseline_core_c=37.0,
        threshold_rise_c=0.5,
        heart_rate_bpm=120.0,
        skin_temp_c=33.0,
        measured_core_c=None,
        minutes_to_threshold=None,
        minutes_to_recovery=None,
        strain_index=None,
        estimator="heat_balance",
    )


def cool_down(event_id: str) -> Event:
    return Event(
        id=event_id,
        patient="p1",
        time=100.0,
        session="s1",
        kind=EventKind.LEVEL,
        level=Level.COOL_DOWN,
        previous_level=Level.CAUTION,
        quality=Quality.GOOD,
        core_delta_c=0.5,
        message="Cool down now.",
        requires_ack=True,
    )


def test_history_keeps_thirty_minutes() -> None:
    board = Board(display_names={}, history_minutes=30, backlog=10)
    for n in range(400):  # 400 steps of 10 s: more than an hour
        board.on_state(state(n * 10.0, n / 1000))
    history = board.snapshot(["p1"])[0]["history"]
    assert history[-1][0] == 3990.0
    assert history[0][0] == 3990.0 - 1800.0
    assert len(history) == 181


def test_cool_down_stays_pending_until_acknowledged() -> None:
    board = Board(display_names={"p1": "Pia"}, history_minutes=30, backlog=10)
    board.on_event(cool_down("s1:3"))
    assert [e["id"] for e in board.snapshot(["p1"])[0]["pending"]] == ["s1:3"]
    board.on_record(Acknowledgement(patient="p1", event_id="s1:3", time=101.0, by="carol"))
    assert board.snapshot(["p1"])[0]["pending"] == []


def test_stream_sees_only_its_patients_and_a_slow_one_is_dropped() -> None:
    board = Board(display_names={}, history_minutes=30, backlog=3)
    mine = board.subscribe(["p1"], owner="a")
    other = board.subscribe(["p2"], owner="b")
    for n in range(3):
        board.on_sample(Sample("p1", SampleKind.HEART_RATE, 100.0 + n, float(n)), SampleFlag.OK)
    assert other.queue.empty()
    assert mine.queue.qsize() == 3 and not mine.closed
    board.on_sample(Sample("p1", SampleKind.HEART_RATE, 110.0, 4.0), SampleFlag.OK)
    assert mine.closed and board.dropped == 1
    assert board.subscriber_count == 1


def test_rejected_samples_become_flags_not_values() -> None:
    board = Board(display_names={}, history_minutes=30, backlog=10)
    board.on_sample(Sample("p1", SampleKind.HEART_RATE, 0.0, 1.0), SampleFlag.ZERO)
    snap = board.snapshot(["p1"])[0]
    assert snap["vitals"] == {}
    assert snap["flags"] == [[1.0, "zero"]]


def test_alerts_carry_the_wall_clock_and_replies_use_the_patients_clock() -> None:
    """In the demo the sample clock runs hours ahead: pages show when an alert arrived on
    the wall clock, and what they send back is stamped on the patient's own clock."""
    wall = [1_000.0]
    board = Board(display_names={}, history_minutes=30, backlog=10, clock=lambda: wall[0])
    assert board.patient_now("p1") == 1_000.0  # no sample yet: the wall clock
    board.on_sample(Sample("p1", SampleKind.HEART_RATE, 100.0, 9_000.0), SampleFlag.OK)
    wall[0] = 1_002.5
    assert board.patient_now("p1") == 9_002.5
    assert board.patient_now("p2") == 1_002.5
    board.on_event(cool_down("s1:3"))
    (pending,) = board.snapshot(["p1"])[0]["pending"]
    assert pending["epoch"] == 100.0 and pending["received"] == 1_002.5
