"""What the live dashboard knows about each patient, in memory and bounded, and the fan-out
of updates to the open browser streams.

A :class:`Board` keeps, per patient: the latest thermal state, the latest reading of each
vital, a compact 30-minute history (one small list per engine step), the alerts that wait
for an acknowledgement, the latest level message with its advice, recent rejected samples
(for the data-quality badges) and recent symptom reports. Each update is turned into one
JSON text once and handed to every subscriber that may see that patient; a subscriber that
falls too far behind is dropped (its browser reconnects and gets a fresh snapshot), so a
slow browser never slows the engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from monitor.model import (
    Acknowledgement,
    Event,
    EventKind,
    Sample,
    SampleFlag,
    SampleKind,
    SessionRecord,
    SymptomReport,
    ThermalState,
    iso_utc,
)

log = logging.getLogger(__name__)

HISTORY_MAX_POINTS = 1000
"""Per patient, whatever the step: bounds memory even with a very short engine step."""
RECENT_FLAGS_S = 60.0
"""Rejected samples in the last minute show as a badge on the tile."""
MAX_RECENT_FLAGS = 50
MAX_SYMPTOMS = 20
MAX_PENDING_ALERTS = 20

VITAL_KINDS: Mapping[SampleKind, str] = MappingProxyType(
    {
        SampleKind.HEART_RATE: "heart_rate_bpm",
        SampleKind.SKIN_TEMP: "skin_temp_c",
        SampleKind.CORE_TEMP: "measured_core_c",
        SampleKind.BATTERY: "battery_percent",
    }
)


def _num(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def state_json(state: ThermalState) -> dict[str, Any]:
    """A state for the pages: :meth:`ThermalState.json_fields` (MQTT's mapping too) with
    the time in epoch seconds."""
    return {"time": state.time, **state.json_fields()}


def event_json(event: Event) -> dict[str, Any]:
    data = event.to_json_dict()
    data["epoch"] = event.time
    return data


@dataclass(slots=True)
class PatientBoard:
    patient: str
    display_name: str | None
    history_s: float
    state: dict[str, Any] | None = None
    vitals: dict[str, dict[str, float]] = field(default_factory=dict)
    history: deque[list[float | None]] = field(
        default_factory=lambda: deque(maxlen=HISTORY_MAX_POINTS)
    )
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_level_event: dict[str, Any] | None = None
    last_recovered: dict[str, Any] | None = None
    last_ack: dict[str, Any] | None = None
    """The latest acknowledgement (event id, who, when): the patient's page stops prompting
    after a reload once the patient has said "I'm cooling down", and caregivers see it."""
    flags: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=MAX_RECENT_FLAGS))
    symptoms: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_SYMPTOMS))
    session: dict[str, Any] | None = None
    clock_offset_s: float | None = None
    """The patient's sample clock minus the server's wall clock, at the latest sample."""

    def snapshot(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "display_name": self.display_name,
            "state": self.state,
            "vitals": self.vitals,
            "history": list(self.history),
            "pending": list(self.pending.values()),
            "last_level_event": self.last_level_event,
            "last_recovered": self.last_recovered,
            "last_ack": self.last_ack,
            "flags": [[t, f] for t, f in self.flags],
            "symptoms": list(self.symptoms),
            "session": self.session,
        }

    def add_history(self, state: ThermalState) -> None:
        self.history.append(
            [
                state.time,
                _num(state.core_delta_c, 3),
                _num(state.core_temp_sd_c, 3),
                _num(state.heart_rate_bpm, 1),
                _num(state.skin_temp_c, 2),
            ]
        )
        horizon = state.time - self.history_s
        while self.history and (self.history[0][0] or 0.0) < horizon:
            self.history.popleft()


class Subscriber:
    """One open browser stream: the patients it may see and its queue of SSE frames."""

    __slots__ = ("closed", "owner", "patients", "queue")

    def __init__(self, *, patients: frozenset[str], backlog: int, owner: str) -> None:
        self.patients = patients
        self.owner = owner
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=backlog)
        self.closed = False

    def offer(self, frame: str) -> bool:
        """Queue ``frame``; False (and closed) when the browser has fallen too far behind."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.close()
            return False
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Make room for the end marker so the stream's writer wakes up and finishes.
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


def sse_frame(kind: str, data: Mapping[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Board:
    """Every patient's board plus the subscribers. Not thread-safe: use from the event loop.

    Two clocks meet here. Samples, states and events carry the time of the samples (the
    wearable's, or the simulator's, which in the demo runs many times faster than the wall
    clock); people read wall-clock times. So every alert and symptom report gets a
    ``received`` stamp (the server's wall clock when it reached the board), which is what the
    pages show, and :meth:`patient_now` maps the wall clock onto a patient's sample clock
    for what the pages send back (symptom reports, acknowledgements), so that these land
    in the right place of the stored session.
    """

    __slots__ = (
        "_backlog",
        "_boards",
        "_clock",
        "_history_s",
        "_names",
        "_subscribers",
        "dropped",
    )

    def __init__(
        self,
        *,
        display_names: Mapping[str, str | None],
        history_minutes: float,
        backlog: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._names = dict(display_names)
        self._history_s = history_minutes * 60.0
        self._backlog = backlog
        self._boards: dict[str, PatientBoard] = {}
        self._subscribers: set[Subscriber] = set()
        self.dropped = 0
        """Subscribers dropped for falling behind."""

    @property
    def patients(self) -> list[str]:
        return sorted(set(self._boards) | set(self._names))

    def board(self, patient: str) -> PatientBoard:
        b = self._boards.get(patient)
        if b is None:
            b = self._boards[patient] = PatientBoard(
                patient=patient,
                display_name=self._names.get(patient),
                history_s=self._history_s,
            )
        return b

    def set_display_name(self, patient: str, name: str | None) -> None:
        """A patient added or renamed at run time (the care-team store)."""
        self._names[patient] = name
        b = self._boards.get(patient)
        if b is not None:
            b.display_name = name

    def show_threshold(self, patient: str, threshold_rise_c: float) -> None:
        """A threshold changed by a person: the tiles show it at once, not at the next step
        (a ``state`` frame without a new history point)."""
        b = self._boards.get(patient)
        if b is None or b.state is None:
            return
        b.state = {**b.state, "threshold_rise_c": round(threshold_rise_c, 3)}
        self._publish(patient, "state", {"patient": patient, "state": b.state, "point": None})

    def snapshot(self, patients: Iterable[str]) -> list[dict[str, Any]]:
        return [self.board(p).snapshot() for p in sorted(patients)]

    def patient_now(self, patient: str) -> float:
        """Now on ``patient``'s sample clock: the wall clock shifted by the offset seen at
        the latest sample (the wall clock itself before any sample)."""
        b = self._boards.get(patient)
        offset = b.clock_offset_s if b is not None else None
        return self._clock() + (offset or 0.0)

    def pending(self, patient: str, event_id: str) -> dict[str, Any] | None:
        b = self._boards.get(patient)
        return None if b is None else b.pending.get(event_id)

    # -- subscribers ------------------------------------------------------------------

    def subscribe(self, patients: Iterable[str], *, owner: str) -> Subscriber:
        """A new stream for ``owner`` (a session id) that sees only ``patients``."""
        sub = Subscriber(patients=frozenset(patients), backlog=self._backlog, owner=owner)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        sub.close()

    def streams_of(self, owner: str) -> int:
        """How many streams ``owner`` (a session id) has open."""
        return sum(1 for s in self._subscribers if s.owner == owner)

    def close_owner(self, owner: str) -> None:
        for sub in [s for s in self._subscribers if s.owner == owner]:
            self.unsubscribe(sub)

    def close_all(self) -> None:
        for sub in list(self._subscribers):
            self.unsubscribe(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _publish(self, patient: str, kind: str, data: Mapping[str, Any]) -> None:
        if not self._subscribers:
            return
        frame = sse_frame(kind, data)
        for sub in list(self._subscribers):
            if patient in sub.patients and not sub.offer(frame):
                self._subscribers.discard(sub)
                self.dropped += 1
                log.info("dashboard stream fell behind and was closed; the browser reconnects")

    # -- updates from the engine ----------------------------------------------------------

    def on_sample(self, sample: Sample, flag: SampleFlag) -> None:
        key = VITAL_KINDS.get(sample.kind)
        if key is None:
            return
        b = self.board(sample.patient)
        b.clock_offset_s = sample.time - self._clock()
        if not flag.accepted:
            b.flags.append((sample.time, flag.value))
            self._publish(
                sample.patient,
                "flag",
                {"patient": sample.patient, "time": sample.time, "flag": flag.value, "kind": key},
            )
            return
        value = _num(float(sample.value), 2)
        if value is None:
            return
        b.vitals[key] = {"value": value, "time": sample.time}
        self._publish(
            sample.patient,
            "sample",
            {"patient": sample.patient, "kind": key, "value": value, "time": sample.time},
        )

    def on_state(self, state: ThermalState) -> None:
        b = self.board(state.patient)
        b.state = state_json(state)
        b.add_history(state)
        self._publish(
            state.patient,
            "state",
            {"patient": state.patient, "state": b.state, "point": b.history[-1]},
        )

    def on_event(self, event: Event) -> None:
        b = self.board(event.patient)
        data = event_json(event)
        data["received"] = self._clock()
        if event.kind is EventKind.LEVEL:
            b.last_level_event = data
        elif event.kind is EventKind.RECOVERED:
            b.last_recovered = data
        elif event.kind is EventKind.QUALITY and b.state is not None:
            # Data going stale comes as an event between engine steps: the tile shows it.
            b.state = {**b.state, "quality": event.quality.value}
        if event.requires_ack:
            b.pending[event.id] = data
            while len(b.pending) > MAX_PENDING_ALERTS:
                b.pending.pop(next(iter(b.pending)))
        self._publish(event.patient, "alert", {"patient": event.patient, "event": data})

    def on_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        b = self.board(record.patient)
        if isinstance(record, Acknowledgement):
            b.pending.pop(record.event_id, None)
            b.last_ack = {
                "event_id": record.event_id,
                "by": record.by,
                "time": iso_utc(record.time),
                "received": self._clock(),
            }
            self._publish(record.patient, "ack", {"patient": record.patient, **b.last_ack})
        elif isinstance(record, SymptomReport):
            data = {
                "time": iso_utc(record.time),
                "epoch": record.time,
                "received": self._clock(),
                "session": record.session,
                "core_delta_c": _num(record.core_delta_c, 3),
                "note": record.note,
            }
            b.symptoms.append(data)
            self._publish(record.patient, "symptom", {"patient": record.patient, "symptom": data})
        else:
            b.session = {
                "session": record.session,
                "start": record.start,
                "stop": record.stop,
                "activity": record.activity,
            }
            if record.stop is None:
                # A new session: its history starts afresh.
                b.history.clear()
                b.last_recovered = None
            self._publish(record.patient, "session", {"patient": record.patient, **b.session})
