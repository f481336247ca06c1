"""The MQTT sink's input side: gateway samples, symptom reports and acknowledgements in,
checked, handed to the :class:`~monitor.service.Monitor`, and only then acknowledged.

Nothing a client sends stops the reader: every payload is bounded (size, nesting, numbers,
times) before use by :class:`~monitor.mqtt.codec.PayloadCodec`; what fails is answered on
the errors topics, counted, and the reader goes on. Even an error nobody foresaw is caught
here, answered and counted (logged once per kind, with its traceback), so a retained poison
payload cannot put the sink into a reconnect loop.

Acknowledgement: the client runs with paho's manual acknowledgement. A QoS 1 message is
PUBACKed only once what it brought is safe: the samples and records it produced are in
every durable sink (``Monitor.durable()``: the fsynced InfluxDB spool), alerts it caused are
in the durable outbox (written at once by ``submit_event``), a rejection is queued on the
errors topic. One acknowledger task per connection lets messages come for ``ACK_LINGER_S``,
waits for the spool once for all the messages read meanwhile (many messages, one fsync),
then PUBACKs them in the order they came. A crash before that makes the broker deliver
them again; the engine recognises a copy of a sample it already took (flag ``duplicate``,
not stored twice), and a symptom report or acknowledgement delivered again is recognised
here and taken once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiomqtt

from monitor.errors import InputError
from monitor.mqtt import payloads
from monitor.mqtt.client import ack_all, payload_bytes, run_until_one_fails
from monitor.mqtt.codec import PayloadCodec
from monitor.mqtt.topics import Channel, Topics
from monitor.plugins import MonitorControl
from monitor.profile import LOGIN_PATTERN
from monitor.ratelimit import SymptomLimit

log = logging.getLogger(__name__)

LOG_EVERY_N_REJECTIONS = 100
"""After the first ten, only every n-th rejection is logged (each one is counted)."""
LOG_QUOTE_MAX = 24
"""Quoted payload text longer than this is left out of the log."""
HANDOFF_TIMEOUT_S = 30.0
"""Longest wait for storage to keep a message safe before it is acknowledged anyway: a spool
that cannot be written (a full disk) must not stop the input, or the engine would see no
samples and raise no alerts. Counted (``acked_unsafe``) and logged."""
DEGRADED_TIMEOUT_S = 0.5
"""The wait while storage is known to be stuck, until it keeps up again."""
YIELD_EVERY = 8
"""Messages taken from the client's queue before the reader lets the other tasks run (the
queue does not suspend while it holds messages, and a backlog is read at once)."""
ACK_LINGER_S = 0.01
"""After the first message of a round, how long the acknowledger lets more come before it
waits for storage: messages that trickle in one at a time (every gateway's second in a
message of its own) then share one spool append, one fsync, one InfluxDB write and one
write of PUBACKs, instead of one of each per message. Only the acknowledgement waits:
samples reach the engine, and alerts the broker, at once."""
RECENT_INPUTS = 1024
"""Symptom reports (patient, time, note) and acknowledgements (patient, event, by) taken
lately, remembered to recognise one delivered again."""

_LOGIN = re.compile(LOGIN_PATTERN)
"""Who acknowledged, over MQTT: a caregiver's login (as ``[sinks.mqtt.acl]`` and ``[web]``
spell them). Without it a caregiver's app could store ``by = "patient:self"``, which the
records and the dashboard read as "the patient acknowledged it themselves"."""
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LONG_QUOTED = re.compile(rf"'[^']{{{LOG_QUOTE_MAX + 1},}}'|\"[^\"]{{{LOG_QUOTE_MAX + 1},}}\"")


def loggable(reason: str, channel: Channel | None) -> str:
    """A rejection reason for the log: the full reason goes to the errors topics (behind the
    ACL), but the log never repeats what a person typed (a symptom note, a caregiver's
    name) nor any long quoted payload text."""
    if channel in (Channel.SYMPTOMS, Channel.ACK):
        reason = _QUOTED.sub("'…'", reason)
    return _LONG_QUOTED.sub("'…'", reason)[:300]


def require_caregiver(by: str, *, where: str, via: str = "") -> None:
    """An acknowledgement from a caregiver's app (MQTT, or the cluster's inbound ``ack``
    channel) names a caregiver's login: never ``"patient:self"``, which only the dashboard
    records when a patient acknowledges on their own page. Raises :class:`InputError`."""
    if not _LOGIN.fullmatch(by):
        raise InputError(
            f"by: an acknowledgement {via}names a caregiver's login (letters, digits, '.', "
            "'_', '@', '-'; at most 64)",
            where=where,
        )


def _refuse_retained(retained: bool, topic: str) -> None:
    if retained:
        raise InputError(
            "a retained message is not taken as input (the broker replays it to every new "
            "subscription, so each restart would take it again); publish with retain=false "
            "and clear the retained copy (an empty retained message)",
            where=topic,
        )


class Counter(Protocol):
    def __call__(self, name: str, n: int = 1) -> int: ...


class Inbound:
    """Decodes, checks and hands on one inbound message at a time; answers what it cannot
    take on the errors topics (queued in ``errors`` for the sink's writer)."""

    def __init__(
        self,
        *,
        topics: Topics,
        codec: PayloadCodec,
        known: frozenset[str],
        instance: str,
        monitor: Callable[[], MonitorControl | None],
        clock: Callable[[], float],
        count: Counter,
        errors: deque[tuple[str, bytes]],
        wake: asyncio.Event,
        symptoms_per_minute: int = 10,
    ) -> None:
        self._topics = topics
        self._codec = codec
        self._known = known
        self._instance = instance
        self._monitor = monitor
        self._clock = clock
        self._count = count
        self._errors = errors
        self._wake = wake
        self._unexpected: set[str] = set()
        self._stuck = False
        self._recent: OrderedDict[tuple[str, str, object, str], None] = OrderedDict()
        self._reports = SymptomLimit(per_minute=symptoms_per_minute, input_name="mqtt", clock=clock)

    # -- one connection -----------------------------------------------------------------

    def add_known(self, patient: str) -> None:
        """Take input for ``patient`` from now on (added while running by the care team)."""
        self._known = self._known | {patient}

    async def read(self, client: aiomqtt.Client) -> None:
        """Take messages from ``client`` (made with ``manual_ack=True``) until the
        connection ends; acknowledge each once what it brought is safe."""
        unacked: list[tuple[int, int]] = []
        handled = asyncio.Event()

        async def take() -> None:
            taken = 0
            async for message in client.messages:
                await self.handle(
                    message.topic.value, payload_bytes(message.payload), retained=message.retain
                )
                if message.qos > 0:
                    unacked.append((message.mid, message.qos))
                    handled.set()
                taken += 1
                if taken % YIELD_EVERY == 0:  # a backlog read at once: let alerts out
                    await asyncio.sleep(0)

        async def acknowledge() -> None:
            while True:
                await handled.wait()
                await asyncio.sleep(ACK_LINGER_S)
                handled.clear()
                batch = unacked[:]
                del unacked[:]
                await self._hand_off(len(batch))
                ack_all(client, batch)
                self._count("acked", len(batch))

        await run_until_one_fails(take(), acknowledge())

    async def _hand_off(self, messages: int) -> None:
        """Wait until what ``messages`` brought is kept safely (``Monitor.durable()``); if
        storage is stuck, give up after ``HANDOFF_TIMEOUT_S`` (then ``DEGRADED_TIMEOUT_S``
        until it keeps up again) so the input, and the alerts, go on."""
        monitor = self._monitor()
        durable: Callable[[], Awaitable[None]] | None = getattr(monitor, "durable", None)
        if durable is None:
            return
        try:
            async with asyncio.timeout(DEGRADED_TIMEOUT_S if self._stuck else HANDOFF_TIMEOUT_S):
                await durable()
        except TimeoutError:
            self._count("acked_unsafe", messages)
            if not self._stuck:
                log.error(
                    "mqtt: storage has not kept input safely for %.0f s (is the spool's disk "
                    "full?); acknowledging input anyway so that alerts go on (counted as "
                    "acked_unsafe)",
                    HANDOFF_TIMEOUT_S,
                )
            self._stuck = True
            return
        if self._stuck:
            log.warning("mqtt: storage keeps input safely again; acknowledging after it")
            self._stuck = False

    # -- one message --------------------------------------------------------------------

    async def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        """One inbound message: decoded, checked, handed to the monitor, or rejected. Never
        raises (but for cancellation). A ``retained`` copy is checked, then rejected: the
        broker hands it to every new subscription (the monitor's session is persistent, so
        it is always a replay of something sent before), and each restart would take it
        again."""
        patient: str | None = None
        channel: Channel | None = None
        try:
            patient, channel = self._topics.parse(topic)
            await self._take(topic, payload, patient, channel, retained)
        except InputError as err:
            self._reject(topic, err.reason, patient, channel)
        except Exception as err:  # a bug, not the client's fault: never stop the reader
            kind = f"{channel.value if channel else 'topic'}:{type(err).__name__}"
            if kind not in self._unexpected:
                self._unexpected.add(kind)
                log.exception("mqtt: unexpected error on input (%s); counted from now on", kind)
            self._count("input_errors")
            self._reject(topic, f"could not be processed ({type(err).__name__})", patient, channel)

    async def _take(
        self, topic: str, payload: bytes, patient: str, channel: Channel, retained: bool
    ) -> None:
        if patient not in self._known:
            raise InputError(
                f"patient {patient!r} is not one of this monitor's patients", where=topic
            )
        monitor = self._monitor()
        if monitor is None:
            raise InputError("the monitor is not running yet", where=topic)
        codec = self._codec
        if channel is Channel.SAMPLES:
            samples = codec.decode_samples(payload, patient=patient, where=topic, now=self._clock())
            _refuse_retained(retained, topic)
            await monitor.ingest_batch(samples)
            self._count("samples_in", len(samples))
        elif channel is Channel.SYMPTOMS:
            at, note = codec.decode_symptom(payload, where=topic, now=self._clock())
            _refuse_retained(retained, topic)
            if self._repeated(("symptom", patient, at, note)):
                self._count("symptoms_repeated")
                return
            if self._reports.over(patient):
                self._count("symptoms_limited")
                return
            monitor.report_symptom(patient, time=at, note=note)
            self._reports.taken(patient)
            self._remember(("symptom", patient, at, note))
            self._count("symptoms_in")
        elif channel is Channel.ACK:
            event_id, by, at = codec.decode_ack(payload, where=topic, now=self._clock())
            _refuse_retained(retained, topic)
            require_caregiver(by, where=topic, via="over MQTT ")
            if self._repeated(("ack", patient, event_id, by)):
                self._count("acks_repeated")
                return
            monitor.acknowledge(patient, event_id, by=by, time=at)
            self._remember(("ack", patient, event_id, by))
            self._count("acks_in")
        else:
            raise InputError(f"heatmon does not take input on {channel.value!r}", where=topic)

    def _repeated(self, key: tuple[str, str, object, str]) -> bool:
        """Whether this symptom report or acknowledgement was taken already (QoS 1 may
        deliver a message again: after a broker restart, a lost PUBACK)."""
        return key in self._recent

    def _remember(self, key: tuple[str, str, object, str]) -> None:
        self._recent[key] = None
        if len(self._recent) > RECENT_INPUTS:
            self._recent.popitem(last=False)

    def _reject(
        self, topic: str, reason: str, patient: str | None, channel: Channel | None
    ) -> None:
        n = self._count("rejected")
        self._count(f"rejected.{channel.value if channel else 'topic'}")
        if n <= 10 or n % LOG_EVERY_N_REJECTIONS == 0:
            if patient is None:  # the topic names no pseudonym: maybe a raw id, never logged
                shown, why = self._topics.without_patient(topic), loggable(reason, Channel.ACK)
            else:
                shown, why = topic[:200], loggable(reason, channel)
            log.warning("mqtt: rejected input #%d on %s: %s", n, shown, why)
        payload = payloads.encode_error(
            topic=topic,
            reason=reason,
            rejected=n,
            time=self._clock(),
            patient=patient,
            channel=channel.value if channel else None,
        )
        self._errors.append((self._topics.monitor_errors(self._instance), payload))
        if patient is not None:
            self._errors.append((self._topics.patient(patient, Channel.ERRORS), payload))
        self._wake.set()
