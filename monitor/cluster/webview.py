"""Cluster mode's dashboard: every worker's ``web`` sink shows every patient, whichever
worker owns them.

:class:`OutStreamFeed` feeds the sink from the out stream instead of the worker's own
engine: an ordered consumer on ``{ROOT}_OUT`` that starts with the latest message of each
subject (each patient's latest state, alert, recovered notice and record) and then follows
what every worker stores — after deduplication, so a takeover's replay shows nothing twice.
Caregivers still see only their patients: the dashboard filters as in one process.

:class:`ClusterControl` is what the dashboard calls back: an acknowledgement or a symptom
report is published on the patient's inbound subject, so it travels the patient's partition
to the owner in order with the samples (as a gateway's or a caregiver's MQTT message does);
the owner's record comes back through the out stream and clears the alert on every board.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext

from monitor.backoff import Backoff
from monitor.cluster.profiles import ClusterProfiles
from monitor.cluster.subjects import RECORDS, Names, token_patient
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
    parse_time,
)
from monitor.mqtt.payloads import encode_ack, encode_symptom
from monitor.mqtt.topics import Channel
from monitor.plugins import Sink
from monitor.service import Monitor

log = logging.getLogger(__name__)

SEND_WITHIN_S = 30.0
"""How long an acknowledgement or symptom report is resent while the cluster is unreachable
(the message id makes a resend stored once)."""


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def decode_state(patient: str, doc: Mapping[str, Any]) -> ThermalState:
    """A ``state`` payload (:func:`monitor.mqtt.payloads.state_dict`) back into a state."""
    return ThermalState(
        patient=patient,
        time=parse_time(str(doc["time"])),
        session=str(doc["session"]),
        level=Level(doc["level"]),
        quality=Quality(doc["quality"]),
        core_temp_c=_f(doc["core_temp_c"]),
        core_temp_sd_c=_f(doc["core_temp_sd_c"]),
        core_delta_c=_f(doc["core_delta_c"]),
        baseline_core_c=_f(doc["baseline_core_c"]),
        threshold_rise_c=_f(doc["threshold_rise_c"]),
        heart_rate_bpm=_opt(doc.get("heart_rate_bpm")),
        skin_temp_c=_opt(doc.get("skin_temp_c")),
        measured_core_c=_opt(doc.get("measured_core_c")),
        minutes_to_threshold=_opt(doc.get("minutes_to_threshold")),
        minutes_to_recovery=_opt(doc.get("minutes_to_recovery")),
        strain_index=_opt(doc.get("strain_index")),
        estimator=str(doc["estimator"]),
    )


def decode_event(patient: str, doc: Mapping[str, Any]) -> Event:
    """An ``alerts`` / ``recovered`` payload back into an event."""
    return Event(
        id=str(doc["id"]),
        patient=patient,
        time=parse_time(str(doc["time"])),
        session=str(doc["session"]),
        kind=EventKind(doc["kind"]),
        level=Level(doc["level"]),
        previous_level=Level(doc["previous_level"]),
        quality=Quality(doc["quality"]),
        core_delta_c=float(doc["core_delta_c"]),
        message=str(doc["message"]),
        advice=tuple(str(a) for a in doc.get("advice", ())),
        requires_ack=bool(doc.get("requires_ack", False)),
        minutes_to_threshold=_opt(doc.get("minutes_to_threshold")),
        recovery_minutes=_opt(doc.get("recovery_minutes")),
    )


_RECORDS: Mapping[str, type[SymptomReport | Acknowledgement | SessionRecord]] = {
    "SymptomReport": SymptomReport,
    "Acknowledgement": Acknowledgement,
    "SessionRecord": SessionRecord,
}


def decode_record(
    patient: str, doc: Mapping[str, Any]
) -> SymptomReport | Acknowledgement | SessionRecord:
    """A ``records`` payload (:mod:`monitor.cluster.outputs`) back into its record."""
    cls = _RECORDS[str(doc["type"])]
    fields = {k: v for k, v in doc.items() if k != "type"}
    fields["patient"] = patient
    return cls(**fields)


class OutStreamFeed:
    """Hands every stored output of the cluster to ``sinks`` (the worker's ``web`` sink)."""

    def __init__(self, *, js: JetStreamContext, names: Names, sinks: Sequence[Sink]) -> None:
        self._js = js
        self._names = names
        self._sinks = list(sinks)
        self._sub: JetStreamContext.PushSubscription | None = None
        self.counters: dict[str, int] = {}

    async def start(self) -> None:
        self._sub = await self._js.subscribe(
            f"{self._names.root}.out.>",
            stream=self._names.out_stream,
            cb=self._on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as err:  # the connection may be closing already
                log.info("out-stream feed: unsubscribe failed (%s)", type(err).__name__)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def _on_message(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        if len(parts) != 4:
            self._count("bad_subjects")
            return
        patient, channel = token_patient(parts[2]), parts[3]
        try:
            doc = json.loads(msg.data)
            if channel == Channel.STATE.value:
                self._state(decode_state(patient, doc))
            elif channel in (Channel.ALERTS.value, Channel.RECOVERED.value):
                event = decode_event(patient, doc)
                for sink in self._sinks:
                    sink.submit_event(event)
            elif channel == RECORDS:
                record = decode_record(patient, doc)
                for sink in self._sinks:
                    sink.submit_record(record)
            else:
                return  # errors: for the gateway, not the dashboard
        except (KeyError, ValueError, TypeError) as err:
            # a worker of another version: count it, show the rest
            self._count("undecodable")
            log.warning("out-stream feed: %s output not shown (%s)", channel, type(err).__name__)
            return
        self._count(f"shown.{channel}")

    def _state(self, state: ThermalState) -> None:
        # the board's vitals and its clock mapping come from samples in one process; here
        # from the state's own (the samples stay in the inbound stream)
        vitals = [
            Sample(state.patient, kind, value, state.time)
            for kind, value in (
                (SampleKind.HEART_RATE, state.heart_rate_bpm),
                (SampleKind.SKIN_TEMP, state.skin_temp_c),
                (SampleKind.CORE_TEMP, state.measured_core_c),
            )
            if value is not None
        ]
        for sink in self._sinks:
            sink.submit_samples(vitals, [SampleFlag.OK] * len(vitals))
            sink.submit_state(state)


class ClusterControl:
    """What the dashboard calls in cluster mode (:class:`monitor.plugins.MonitorControl`):
    people's inputs go to the owner through the inbound stream; health is this worker's.
    ``sinks`` are the worker's own (the dashboard finds the thresholds sink there);
    ``profiles`` is where the care-team sync publishes edited profiles."""

    def __init__(
        self,
        *,
        js: JetStreamContext,
        names: Names,
        monitor: Monitor,
        sinks: Sequence[Sink] = (),
        profiles: ClusterProfiles | None = None,
    ) -> None:
        self._js = js
        self._names = names
        self._monitor = monitor
        self.sinks = list(sinks)
        self.profiles = profiles
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters: dict[str, int] = {}

    def _send(self, patient: str, channel: Channel, payload: bytes, msg_id: str) -> None:
        # an acknowledgement on its own channel, which only the workers may publish: the
        # patient's own (by "patient:self") must not be something a caregiver can send
        if channel is Channel.ACK:
            subject = self._names.web_ack(patient)
        else:
            subject = self._names.inbound(patient, channel)
        task = asyncio.get_running_loop().create_task(self._publish(subject, payload, msg_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        backoff = Backoff()
        deadline = asyncio.get_running_loop().time() + SEND_WITHIN_S
        while True:
            try:
                await self._js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
                self.counters["sent"] = self.counters.get("sent", 0) + 1
                return
            except Exception as err:
                if asyncio.get_running_loop().time() > deadline:
                    self.counters["lost"] = self.counters.get("lost", 0) + 1
                    log.error(
                        "dashboard input not delivered to the cluster (%s)", type(err).__name__
                    )
                    return
                await asyncio.sleep(backoff.next_delay())

    async def drain(self) -> None:
        """Wait for what is being sent (the worker stops)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SEND_WITHIN_S)

    def acknowledge(self, patient: str, event_id: str, *, by: str, time: float) -> Acknowledgement:
        payload = encode_ack(event_id=event_id, by=by, time=time)
        self._send(patient, Channel.ACK, payload, f"web-ack:{patient}:{event_id}:{by}")
        return Acknowledgement(patient=patient, event_id=event_id, time=time, by=by)

    def report_symptom(self, patient: str, *, time: float, note: str = "") -> SymptomReport:
        self._names.inbound(patient, Channel.SYMPTOMS)  # a bad id raises InputError here
        payload = encode_symptom(time=time, note=note)
        self._send(patient, Channel.SYMPTOMS, payload, f"web-sym:{patient}:{time!r}")
        # the owner fills in session and rise; the dashboard only needs the call to succeed
        return SymptomReport(patient=patient, time=time, session="", core_delta_c=None, note=note)

    async def ingest(self, sample: Sample) -> None:
        raise InputError("samples reach a cluster through NATS, not a worker", where="cluster")

    async def ingest_batch(self, samples: Sequence[Sample]) -> None:
        raise InputError("samples reach a cluster through NATS, not a worker", where="cluster")

    def state(self, patient: str) -> ThermalState | None:
        return self._monitor.state(patient)

    def open_alerts(self, patient: str) -> list[Event]:
        return self._monitor.open_alerts(patient)

    def report_gap(self, patient: str, device: str, *, start: float, end: float) -> None:
        self._monitor.report_gap(patient, device, start=start, end=end)

    def health(self) -> Mapping[str, Any]:
        return self._monitor.health()
