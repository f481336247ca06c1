"""The MQTT sink's alerts: queued durably, then published at once.

:class:`AlertQueue` takes the alerts the engine raises (and recovered notices), lets those
raised within ``KEEP_LINGER_S`` gather and keeps them in the SQLite outbox in one commit
(``outbox.py``: an event id is queued at most once); at the latest the input's
acknowledgement (:meth:`AlertQueue.keep`, through the sink's ``durable()``) keeps them first.
Its sender publishes each one as soon as it is kept, up to ``ALERTS_IN_FLIGHT`` awaiting their
PUBACK, through paho with a callback per PUBACK (:class:`~monitor.mqtt.client.TrackedPublishes`,
no task per alert); an alert leaves the outbox only after the broker's PUBACK, so an outage or
a restart loses none. It runs beside the sink's writer (states, status, errors), so alerts
never wait behind a burst of states.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable

import aiomqtt

from monitor.errors import InputError
from monitor.model import Event, EventKind
from monitor.mqtt import payloads
from monitor.mqtt.client import PUBLISH_TIMEOUT_S, TrackedPublishes, check_cancelled
from monitor.mqtt.outbox import Outbox
from monitor.mqtt.topics import Channel, Topics

log = logging.getLogger(__name__)

ALERTS_IN_FLIGHT = 100
"""Alerts published and waiting for their PUBACK at once."""
KEEP_LINGER_S = 0.005
"""How long alerts submitted one message at a time gather before they go to the outbox in one
commit (and then to the broker): in a burst (every patient's window closing in the same
second) one commit, and one write to the broker, takes several alerts instead of one each
(``bench/alert_path.py --gap-ms 1``, one alert a millisecond: 466 -> 185-208 µs of CPU an
alert, with the sender's other changes of that commit). The input's acknowledgement does not
wait for it: the sink's ``durable()`` keeps what has gathered at once."""
DONE_LINGER_S = 0.05
"""How long delivered alerts gather before they leave the outbox in one commit."""


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
        self._delivered: list[int] = []
        """Outbox seqs the broker acknowledged, still in the outbox for ``DONE_LINGER_S``."""
        self._checkpoint: asyncio.Task[None] | None = None
        """The outbox's checkpoint in a worker thread, while one runs."""

    def __len__(self) -> int:
        """Alerts waiting for the broker (in the outbox or about to be); one the broker has
        acknowledged is not waiting, though it leaves the outbox up to ``DONE_LINGER_S``
        later."""
        queued = len(self.outbox) if self.outbox is not None else 0
        return queued + len(self._fresh) - len(self._delivered)

    def submit(self, event: Event) -> None:
        """Queue an alert: the alerts submitted within ``KEEP_LINGER_S`` go to the outbox in
        one commit (:meth:`keep`; at the latest in the sink's ``durable()``, which the input
        awaits before it acknowledges what caused them)."""
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
                asyncio.get_running_loop().call_later(KEEP_LINGER_S, self.keep)
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
        self.checkpoint_if_due()

    def checkpoint_if_due(self) -> None:
        """Start the outbox's checkpoint in a worker thread when it is due (the outbox is
        made with ``checkpoint_every``: no checkpoint inside a commit on the event loop)."""
        outbox = self.outbox
        if outbox is None or not outbox.checkpoint_due or self._checkpoint is not None:
            return
        try:
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(outbox.checkpoint))
        except RuntimeError:  # no event loop (a tool, a test): SQLite's own checkpoints
            return
        self._checkpoint = task
        task.add_done_callback(self._checkpointed)

    def _checkpointed(self, task: asyncio.Task[None]) -> None:
        self._checkpoint = None
        if not task.cancelled() and (err := task.exception()) is not None:
            self._count("outbox_checkpoint_errors")
            log.error("mqtt: the alert outbox's checkpoint failed (%s); trying again later", err)

    async def close(self) -> None:
        """Wait for a checkpoint under way (before the outbox is closed)."""
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint

    async def send(self, client: aiomqtt.Client) -> None:
        """Publish each queued alert at once (up to ``ALERTS_IN_FLIGHT`` under way), oldest
        first; each leaves the outbox when the broker acknowledged it. A failed publish, or
        a PUBACK that does not come within ``PUBLISH_TIMEOUT_S``, ends the connection: after
        the reconnect every alert still queued goes again."""
        outbox = self.outbox
        assert outbox is not None
        wake = self.wake
        loop = asyncio.get_running_loop()
        under_way: dict[int, int] = {}  # paho message id -> outbox seq
        delivered = self._delivered  # seqs the broker has, still in the outbox

        def published(seq: int) -> None:  # the broker has it: counted now, forgotten soon
            delivered.append(seq)
            self._count("alerts_published")

        def acked(mid: int) -> None:
            seq = under_way.pop(mid, None)
            if seq is not None:
                published(seq)
                wake.set()

        def forget() -> None:
            done, delivered[:] = delivered[:], []
            outbox.done(done)
            self.checkpoint_if_due()

        publishes = TrackedPublishes(client, acked=acked)
        last = 0
        since = 0.0  # when the oldest delivered alert still in the outbox was answered
        try:
            while True:
                wake.clear()
                now = loop.time()
                if delivered:
                    since = since or now
                    if now - since >= DONE_LINGER_S:
                        forget()
                        since = 0.0
                oldest = publishes.oldest()
                if oldest is not None and time.monotonic() - oldest > PUBLISH_TIMEOUT_S:
                    raise aiomqtt.MqttError(
                        f"no PUBACK for an alert within {PUBLISH_TIMEOUT_S:.0f} s"
                    )
                room = ALERTS_IN_FLIGHT - len(under_way)
                if room > 0 and (items := outbox.peek(room, after=last)):
                    for item in items:
                        last = item.seq
                        mid = publishes.publish(
                            item.topic, item.payload, qos=item.qos, retain=item.retain
                        )
                        if mid is None:
                            published(item.seq)
                        else:
                            under_way[mid] = item.seq
                    continue
                waits = [PUBLISH_TIMEOUT_S] if under_way else []
                if delivered:
                    waits.append(since + DONE_LINGER_S - now)
                else:
                    self._idle()
                if waits:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(0.0, min(waits))):
                            await wake.wait()
                else:
                    await wake.wait()
                check_cancelled()
        finally:
            publishes.close()
            if delivered:
                forget()
