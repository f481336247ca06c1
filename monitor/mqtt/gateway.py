"""Gateway mode: runs next to the patient (a phone, a Raspberry Pi). Any :class:`Source`
(BLE wearables by default, the simulator for a try-out) feeds samples in; they go out over
MQTT in batches to ``{prefix}/patients/{patient}/samples`` (QoS 1). Every sample is written
to a local SQLite outbox first and removed only after the broker's PUBACK, so while the
broker is unreachable the gateway buffers, and nothing is lost across a restart.

The gateway also listens on its patients' ``errors`` topics and logs why the monitor
rejected something it sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection
from itertools import groupby
from pathlib import Path
from types import TracebackType
from typing import Self

import aiomqtt

from monitor.errors import InputError
from monitor.model import Sample
from monitor.mqtt import payloads
from monitor.mqtt.client import (
    check_cancelled,
    make_client,
    payload_bytes,
    run_until_one_fails,
)
from monitor.mqtt.inbound import loggable
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.outbox import MEMORY, Outbox
from monitor.mqtt.topics import Channel, check_patient_id
from monitor.plugins import Source

log = logging.getLogger(__name__)

BATCH_MAX = 500
"""Samples in one published batch (the schema allows up to 1000)."""


class Gateway:
    """``async with Gateway(...) as gw: await gw.run()`` (runs until cancelled)."""

    def __init__(
        self,
        *,
        source: Source,
        options: MqttOptions,
        outbox_path: str | Path = MEMORY,
        patients: Collection[str] | None = None,
        identifier: str | None = None,
        batch_max: int = BATCH_MAX,
    ) -> None:
        self._source = source
        self._options = options
        self._topics = options.topics
        self._outbox_path = outbox_path
        self._outbox: Outbox | None = None
        self._patients = frozenset(patients) if patients is not None else None
        for p in self._patients or ():
            check_patient_id(p, where="gateway.patients")
        self._identifier = (
            identifier or options.client_id or f"heatmon-gw-{options.username or 'gateway'}"
        )
        self._batch_max = max(1, min(batch_max, payloads.MAX_BATCH))
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.counters: dict[str, int] = {}
        self.counted = asyncio.Event()
        """Set whenever a counter changes (tests and tools wait on it)."""

    async def __aenter__(self) -> Self:
        self._outbox = Outbox(path=self._outbox_path)
        if len(self._outbox):
            log.info("gateway: %d buffered sample(s) from before the restart", len(self._outbox))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._outbox is not None:
            if len(self._outbox):
                log.info(
                    "gateway: %d sample(s) stay buffered for the next start", len(self._outbox)
                )
            self._outbox.close()
            self._outbox = None

    @property
    def buffered(self) -> int:
        return len(self._outbox) if self._outbox is not None else 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._source.run(self.emit))
            group.create_task(self._publish_loop())

    async def emit(self, sample: Sample) -> None:
        """Buffer one sample for publishing (what the source calls)."""
        outbox = self._outbox
        assert outbox is not None, "use the gateway as an async context manager"
        try:
            if self._patients is not None and sample.patient not in self._patients:
                raise InputError("patient is not one of this gateway's", where=sample.device)
            topic = self._topics.patient(sample.patient, Channel.SAMPLES)
            doc = payloads.sample_dict(sample)
        except InputError as err:
            self._count("rejected")
            log.warning("gateway: sample not sent: %s", err)
            return
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
        outbox.put_many([(topic, body)])
        self._count("buffered")
        self._wake.set()

    async def _publish_loop(self) -> None:
        backoff = self._options.backoff()
        while True:
            client = make_client(self._options, identifier=self._identifier)
            try:
                async with client:
                    self.connected.set()
                    backoff.reset()
                    log.info("gateway: connected to %s:%d", self._options.host, self._options.port)
                    if self._patients:
                        await client.subscribe(
                            [(self._topics.patient(p, Channel.ERRORS), 1) for p in self._patients]
                        )
                        check_cancelled()
                    await run_until_one_fails(self._drain(client), self._listen(client))
            except* aiomqtt.MqttError as group:
                log.warning("gateway: broker unreachable (%s)", group.exceptions[0])
            finally:
                self.connected.clear()
            check_cancelled()
            self._count("disconnects")
            delay = backoff.next_delay()
            log.info("gateway: %d sample(s) buffered; retrying in %.1f s", self.buffered, delay)
            await asyncio.sleep(delay)

    async def _drain(self, client: aiomqtt.Client) -> None:
        outbox = self._outbox
        assert outbox is not None
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while items := outbox.peek(self._batch_max):
                for topic, group in groupby(items, key=lambda i: i.topic):
                    rows = list(group)
                    body = payloads.encode_batch([json.loads(r.payload) for r in rows])
                    await client.publish(topic, body, qos=1)
                    check_cancelled()
                    outbox.done(r.seq for r in rows)
                    self._count("published", len(rows))

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                doc = json.loads(payload_bytes(message.payload))
                reason, channel = str(doc.get("reason", "?")), doc.get("channel")
            except (ValueError, AttributeError, RecursionError):
                reason, channel = "?", None
            try:
                kind = Channel(channel) if isinstance(channel, str) else None
            except ValueError:
                kind = None
            self._count("rejected_by_monitor")
            # the errors topic names every rejection of the patient's input: a symptom
            # report's or acknowledgement's reason may quote what a person typed
            log.warning(
                "gateway: the monitor rejected input on %s: %s",
                message.topic,
                loggable(reason, kind if kind is not None else Channel.SYMPTOMS),
            )

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        self.counted.set()
