"""The MQTT sink's alerts: queued durably, then published as soon as they are queued.

:class:`AlertQueue` takes the alerts the engine raises (and recovered notices), keeps those
of one turn of the event loop in the SQLite outbox in one commit (``outbox.py``: an event id
is queued at most once), and its sender task publishes each one at once, up to
``ALERTS_IN_FLIGHT`` awaiting their PUBACK; an alert leaves the outbox only after the
broker's PUBACK, so an outage or a restart loses none. It runs beside the sink's writer
(states, status, errors), so alerts never wait behind a burst of states.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable

import aiomqtt

from monitor.errors import InputError
from monitor.model import Event, EventKind
from monitor.mqtt import payloads
from monitor.mqtt.client import check_cancelled
from monitor.mqtt.outbox import Outbox, OutboxItem
from monitor.mqtt.topics import Channel, Topics

log = logging.getLogger(__name__)

ALERTS_IN_FLIGHT = 100
"""Alerts published and waiting for their PUBACK at once."""


class AlertQueue:
    """Alerts from the engine to the outbox to the broker (see the module docstring)."""

    def __init__(
        self, *, topics: Topics, count: Callable[..., int], idle: Callable[[], None]
    ) -> None:
        self._topics = topics
        self._count = count
        self._idle = idle
        """Called when the sender has nothing left to do (the sink checks the rest)."""
        self.outbox: Outbox | None = None
        """Set by the sink while it runs."""
        self.wake = asyncio.Event()
        """Set when an alert is queued, or one under way got its answer."""
        self._fresh: list[tuple[str, bytes, str]] = []
        """Alerts submitted, not yet in the outbox (topic, payload, event id)."""
        self._fresh_keys: set[str] = set()

    def __len__(self) -> int:
        """Alerts waiting for the broker (in the outbox or about to be)."""
        queued = len(self.outbox) if self.outbox is not None else 0
        return queued + len(self._fresh)

    def submit(self, event: Event) -> None:
        """Queue an alert: the alerts submitted within one turn of the event loop go to the
        outbox in one commit (:meth:`_keep_alerts`, at the latest in :meth:`durable`, which
        the input awaits before it acknowledges what caused them)."""
        channel = Channel.RECOVERED if event.kind is EventKind.RECOVERED else Channel.ALERTS
        outbox = self.outbox
        if outbox is None:
            self._count("alerts_dropped_not_started")
            log.error("mqtt: alert %s arrived before start; not queued", event.id)
            return
        try:
            topic = self._topics.patient(event.patient, channel)
            payload = payloads.encode_event(event)
        except (InputError, ValueError):
            self._count("alerts_not_queued")
            log.exception("mqtt: could not queue alert %s", event.id)
            return
        if event.id in self._fresh_keys:  # (one queued before is skipped by the outbox)
            self._count("alerts_duplicate_dropped")
            return
        self._fresh.append((topic, payload, event.id))
        self._fresh_keys.add(event.id)
        if len(self._fresh) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.keep)
            except RuntimeError:  # no event loop (a tool, a test): keep it now
                self.keep()

    def keep(self) -> None:
        """The alerts submitted since the last call, into the outbox in one commit."""
        fresh, self._fresh = self._fresh, []
        self._fresh_keys.clear()
        outbox = self.outbox
        if not fresh or outbox is None:
            return
        try:
            queued = outbox.put_keyed(fresh)
        except sqlite3.Error:
            self._count("alerts_not_queued", len(fresh))
            log.exception("mqtt: could not queue %d alert(s)", len(fresh))
            return
        if queued < len(fresh):  # an id queued once is never queued again
            self._count("alerts_duplicate_dropped", len(fresh) - queued)
        self.wake.set()

    async def send(self, client: aiomqtt.Client) -> None:
        """Publish each queued alert at once (up to ``ALERTS_IN_FLIGHT`` under way), oldest
        first; each leaves the outbox when the broker acknowledged it. A failed publish
        ends the connection: after the reconnect every alert still queued goes again."""
        outbox = self.outbox
        assert outbox is not None
        wake = self.wake
        last = 0
        under_way: set[asyncio.Task[None]] = set()
        delivered: list[int] = []
        failed: list[BaseException] = []

        async def publish(item: OutboxItem) -> None:
            try:
                await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
            except Exception as err:  # aiomqtt.MqttError, a timeout: the connection is bad
                failed.append(err)
            else:
                delivered.append(item.seq)
            wake.set()

        try:
            while True:
                wake.clear()
                if failed:
                    raise failed[0]
                if delivered:
                    done, delivered[:] = delivered[:], []
                    outbox.done(done)
                    self._count("alerts_published", len(done))
                room = ALERTS_IN_FLIGHT - len(under_way)
                if room > 0 and (items := outbox.peek(room, after=last)):
                    for item in items:
                        last = item.seq
                        task = asyncio.create_task(publish(item), name="mqtt-alert")
                        under_way.add(task)
                        task.add_done_callback(under_way.discard)
                    continue
                self._idle()
                await wake.wait()
                check_cancelled()
        finally:
            for task in under_way:
                task.cancel()
