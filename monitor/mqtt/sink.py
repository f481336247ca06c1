"""Sink "mqtt": publishes each patient's state (retained), alerts and recovered notices
(QoS 1, through a durable outbox) and the monitor's status (retained, last will
``offline``); takes gateway samples, symptom reports and acknowledgements in and hands them
to the :class:`~monitor.service.Monitor` (:mod:`monitor.mqtt.inbound`: bounded before use,
acknowledged to the broker only once safely handed on). Bad input is answered on the errors
topics, counted, and the sink keeps running.

Delivery: ``submit_*`` only queue. One task keeps the connection (reconnecting with
:class:`~monitor.backoff.Backoff`) and runs, beside the input source that reads it, the
alert sender (:mod:`monitor.mqtt.alerts`: durable outbox, PUBACK before delete, an alert id
queued at most once, published as soon as queued) and a writer (states, status, error
notices): alerts never wait behind a burst of states. States are coalesced per patient:
after an outage the current one is sent, not the backlog; at QoS 0 they are handed to the
client without waiting for each to be written, ``STATES_PER_TURN`` at a time, and the
writer lets ``WRITE_LINGER_S`` pass before each round so that the states of many patients
leave in one write, not one write each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time as _time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho_mqtt

from monitor.model import Event, ThermalState
from monitor.mqtt import payloads
from monitor.mqtt.alerts import AlertQueue
from monitor.mqtt.client import check_cancelled, make_client, run_until_one_fails
from monitor.mqtt.codec import PayloadCodec
from monitor.mqtt.homeassistant import discovery_messages
from monitor.mqtt.inbound import Inbound
from monitor.mqtt.options import MqttOptions, parse_options
from monitor.mqtt.outbox import CHECKPOINT_EVERY_COMMITS, MEMORY, Outbox
from monitor.mqtt.source import MqttInput
from monitor.mqtt.topics import INBOUND, Channel
from monitor.plugins import MonitorControl, PluginContext, Sink

log = logging.getLogger(__name__)

STATES_PER_TURN = 50
"""QoS 0 states handed to the client before the writer lets the other tasks run."""
WRITE_LINGER_S = 0.02
"""How long the writer lets states (and status, error notices) gather before it sends them:
a patient's state is at most this much later on the dashboards, and the broker gets one
write for the lot instead of one per patient (alerts have their own sender and never
wait)."""
FLUSH_TIMEOUT_S = 3.0
"""At stop, how long to wait for queued messages to reach a connected broker."""
MAX_QUEUED_ERRORS = 1000
"""Error notices waiting to be published (the oldest are dropped; all are counted)."""


class MqttSink(Sink):
    name = "mqtt"

    def __init__(
        self,
        *,
        options: MqttOptions,
        instance: str = "heatmon",
        context: PluginContext | None = None,
        known_patients: Collection[str],
        outbox_path: str | Path = MEMORY,
        clock: Callable[[], float] = _time.time,
    ) -> None:
        self._options = options
        self._topics = options.topics
        self._instance = instance
        self._context = context
        self._outbox_path = outbox_path
        self._clock = clock
        self._codec = PayloadCodec(max_bytes=options.max_payload_bytes)
        self._outbox: Outbox | None = None
        self._latest: dict[str, ThermalState] = {}
        self._dirty: dict[str, None] = {}
        self._known = frozenset(known_patients)
        """The configured patients: input for anyone else is rejected, not ingested."""
        self._discovered: set[str] = set()
        self._errors: deque[tuple[str, bytes]] = deque(maxlen=MAX_QUEUED_ERRORS)
        self._wake = asyncio.Event()
        self._alerts = AlertQueue(topics=self._topics, count=self._count, idle=self._check_idle)
        """Set when an alert is queued, or one under way got its answer."""
        self._inbound = Inbound(
            topics=self._topics,
            codec=self._codec,
            known=self._known,
            instance=instance,
            monitor=lambda: self.monitor,
            clock=clock,
            count=self._count,
            errors=self._errors,
            wake=self._wake,
            symptoms_per_minute=options.symptoms_per_minute,
        )
        self.input = MqttInput(inbound=self._inbound, connection=self)
        """The input side, a source of its own (added to the monitor at start)."""
        self._input_added = False
        self._new_connection = asyncio.Event()
        self._lost = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._health: Mapping[str, Any] | None = None
        self._status_dirty = False
        self.counters: dict[str, int] = {}
        self.counted = asyncio.Event()
        """Set whenever a counter changes (tests and tools wait on it)."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        opts = parse_options(options)
        config = context.config
        data_dir = Path(getattr(getattr(config, "monitor", None), "data_dir", "var"))
        outbox = opts.outbox or str(data_dir / f"mqtt-outbox-{context.instance}.sqlite")
        patients = tuple(p.id for p in getattr(config, "patients", ()))
        return cls(
            options=opts,
            instance=context.instance,
            context=context,
            outbox_path=outbox,
            known_patients=patients,
        )

    def add_known_patient(self, patient: str) -> None:
        """A patient added while running (the care team's store): their input is taken."""
        self._known = self._known | {patient}
        self._inbound.add_known(patient)

    @property
    def monitor(self) -> MonitorControl | None:
        return self._context.monitor if self._context is not None else None

    @property
    def pending_alerts(self) -> int:
        return len(self._alerts)

    # -- lifetime ---------------------------------------------------------------------

    async def start(self) -> None:
        add_source = getattr(self.monitor, "add_source", None)
        if add_source is not None and not self._input_added:
            add_source(self.input)  # the monitor runs (and restarts) the input
            self._input_added = True
        self._outbox = self._alerts.outbox = Outbox(
            path=self._outbox_path, checkpoint_every=CHECKPOINT_EVERY_COMMITS
        )
        if len(self._outbox):
            log.info(
                "mqtt: %d alert(s) from before the restart wait for delivery", len(self._outbox)
            )
        self._task = asyncio.create_task(self._run(), name="mqtt-sink")

    async def stop(self) -> None:
        task = self._task
        if task is None:
            return
        self._alerts.keep()
        client = self._client
        if client is not None and self.connected.is_set():
            self._wake.set()
            try:
                async with asyncio.timeout(FLUSH_TIMEOUT_S):
                    while self._has_pending():
                        self._idle.clear()
                        self._wake.set()
                        self._alerts.wake.set()
                        await self._idle.wait()
                    await client.publish(
                        self._topics.status(self._instance),
                        payloads.encode_status(
                            instance=self._instance, online=False, time=self._clock()
                        ),
                        qos=1,
                        retain=True,
                    )
            except (TimeoutError, aiomqtt.MqttError) as err:
                log.warning("mqtt: stopping without a full flush (%s)", type(err).__name__)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._task = None
        self._alerts.keep()
        await self._alerts.close()
        if self._outbox is not None:
            if len(self._outbox):
                log.warning(
                    "mqtt: %d alert(s) kept in the outbox for the next start", len(self._outbox)
                )
            self._outbox.close()
            self._outbox = self._alerts.outbox = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- submit (never block, never raise) ---------------------------------------------

    def submit_state(self, state: ThermalState) -> None:
        self._latest[state.patient] = state
        self._dirty[state.patient] = None
        self._wake.set()

    def submit_event(self, event: Event) -> None:
        self._alerts.submit(event)

    async def durable(self) -> None:
        """Return once every alert submitted so far is in the outbox (safe to acknowledge
        the input that caused it)."""
        self._alerts.keep()

    def submit_health(self, summary: Mapping[str, Any]) -> None:
        """The monitor's health changed: republish the (retained) status."""
        self._health = summary
        self._status_dirty = True
        self._wake.set()

    def _status(self) -> bytes:
        return payloads.encode_status(
            instance=self._instance, online=True, time=self._clock(), health=self._health
        )

    # -- connection ---------------------------------------------------------------------

    async def next_connection(self, previous: aiomqtt.Client | None) -> aiomqtt.Client:
        """The connection after ``previous``, once it is up (for the input source)."""
        while True:
            self._new_connection.clear()
            client = self._client
            if client is not None and client is not previous and self.connected.is_set():
                return client
            await self._new_connection.wait()

    def connection_lost(self, client: aiomqtt.Client) -> None:
        """The input source saw ``client``'s connection end: reconnect."""
        if client is self._client:
            self._lost.set()

    async def _until_lost(self) -> None:
        await self._lost.wait()
        raise aiomqtt.MqttError("the connection ended (seen by the MQTT input)")

    def _has_pending(self) -> bool:
        return bool(self.pending_alerts or self._dirty or self._errors)

    async def _run(self) -> None:
        opts = self._options
        backoff = opts.backoff()
        client_id = opts.client_id or f"heatmon-{self._instance}"
        will = aiomqtt.Will(
            self._topics.status(self._instance),
            payloads.encode_status(instance=self._instance, online=False),
            qos=1,
            retain=True,
        )
        while True:
            client = make_client(opts, identifier=client_id, will=will, manual_ack=True)
            try:
                async with client:
                    self._client = client
                    self._count("connects")
                    self._lost.clear()
                    await self._on_connect(client)
                    backoff.reset()
                    self.connected.set()
                    self._new_connection.set()
                    log.info("mqtt: connected to %s:%d", opts.host, opts.port)
                    tasks = [self._alerts.send(client), self._write(client)]
                    if self._input_added:  # the input source reads this connection
                        await run_until_one_fails(*tasks, self._until_lost())
                    else:  # no monitor to run a source: read here
                        await run_until_one_fails(self._inbound.read(client), *tasks)
            except* aiomqtt.MqttError as group:
                log.warning("mqtt: broker unreachable or connection lost (%s)", group.exceptions[0])
            except* Exception:
                log.exception("mqtt: sink failed; reconnecting")
            finally:
                self.connected.clear()
                self._client = None
            check_cancelled()
            self._count("disconnects")
            delay = backoff.next_delay()
            log.info("mqtt: reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self._status_dirty = False
        await client.publish(
            self._topics.status(self._instance), self._status(), qos=1, retain=True
        )
        if self._options.subscribe_inputs:
            await client.subscribe([(self._topics.subscription(c), 1) for c in INBOUND])
        check_cancelled()
        self._discovered.clear()
        for patient in self._latest:
            self._dirty[patient] = None
        self._wake.set()

    async def _write(self, client: aiomqtt.Client) -> None:
        """Status, error notices and states (alerts have a sender of their own)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(WRITE_LINGER_S)
            self._wake.clear()
            if self._status_dirty:
                self._status_dirty = False
                await client.publish(
                    self._topics.status(self._instance), self._status(), qos=1, retain=True
                )
            await self._send_errors(client)
            await self._send_states(client)
            self._check_idle()

    def _check_idle(self) -> None:
        if not self._has_pending():
            self._idle.set()

    async def _send_errors(self, client: aiomqtt.Client) -> None:
        while self._errors:
            topic, payload = self._errors[0]
            await client.publish(topic, payload, qos=1)
            check_cancelled()
            self._errors.popleft()

    async def _send_states(self, client: aiomqtt.Client) -> None:
        opts = self._options
        handed = 0
        while self._dirty:
            patient = next(iter(self._dirty))
            state = self._latest[patient]
            if opts.homeassistant and patient not in self._discovered:
                for message in discovery_messages(
                    patient,
                    topics=self._topics,
                    instance=self._instance,
                    discovery_prefix=opts.discovery_prefix,
                ):
                    await client.publish(message.topic, message.payload, qos=1, retain=True)
                    check_cancelled()
                self._discovered.add(patient)
            topic = self._topics.patient(patient, Channel.STATE)
            if opts.state_qos == 0:  # no answer to wait for: hand it to the client
                info = client._client.publish(topic, payloads.encode_state(state), 0, True)
                if info.rc != paho_mqtt.MQTT_ERR_SUCCESS:
                    raise aiomqtt.MqttCodeError(info.rc, "could not publish a state")
                handed += 1
                if handed % STATES_PER_TURN == 0:
                    await asyncio.sleep(0)  # let the alerts and the input go on
                    check_cancelled()
            else:
                await client.publish(topic, payloads.encode_state(state), qos=1, retain=True)
                check_cancelled()
            if self._latest[patient] is state:
                self._dirty.pop(patient, None)
            self._count("states_published")

    # -- inbound ----------------------------------------------------------------------

    async def handle(self, topic: str, payload: bytes) -> None:
        """One inbound message: decoded, checked, handed to the monitor, or rejected."""
        await self._inbound.handle(topic, payload)

    def _count(self, name: str, n: int = 1) -> int:
        value = self.counters.get(name, 0) + n
        self.counters[name] = value
        self.counted.set()
        return value
