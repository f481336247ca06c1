"""The out stream: every state, alert and record a worker's engines produce, published to
JetStream with its ``Nats-Msg-Id`` so that a copy (the new owner replaying after a
takeover) is stored once and republished to subscribers once.

``submit_*`` only enqueue; :meth:`ClusterOutputSink.flush` publishes what is queued and
waits for the stream's acknowledgements: a worker acknowledges its input only after that.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Self

from nats.js.client import JetStreamContext

from monitor.cluster.subjects import RECORDS, Names
from monitor.errors import ConfigError, HeatmonError
from monitor.model import (
    Acknowledgement,
    Event,
    EventKind,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.mqtt.payloads import encode_event, encode_state
from monitor.mqtt.topics import Channel
from monitor.plugins import PluginContext, Sink

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
MAX_QUEUED = 100_000
"""Outputs held before the worker stops taking input (it flushes far more often)."""


class OutputError(HeatmonError):
    """The out stream did not acknowledge an output."""


def _record_id(record: SymptomReport | Acknowledgement | SessionRecord) -> str:
    if isinstance(record, Acknowledgement):
        return f"ack:{record.event_id}:{record.by}:{record.time!r}"
    if isinstance(record, SymptomReport):
        return f"sym:{record.patient}:{record.time!r}"
    return f"ses:{record.session}:{record.stop!r}"


def _record_payload(record: SymptomReport | Acknowledgement | SessionRecord) -> bytes:
    doc: dict[str, Any] = {"type": type(record).__name__, **asdict(record)}
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


class ClusterOutputSink(Sink):
    """Not a configurable plugin: the worker adds it to its monitor's sinks."""

    name = "cluster"

    def __init__(self, *, js: JetStreamContext, names: Names) -> None:
        self._js = js
        self._names = names
        self._queue: list[tuple[str, bytes, str]] = []
        self.published = 0
        self.duplicates = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        raise ConfigError("the cluster output is not configured as a sink; set [cluster]")

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:
        pass  # samples are in the inbound stream already

    def submit_state(self, state: ThermalState) -> None:
        self._queue.append(
            (
                self._names.out(state.patient, Channel.STATE.value),
                encode_state(state),
                f"st:{state.patient}:{state.time!r}",
            )
        )

    def submit_event(self, event: Event) -> None:
        channel = Channel.RECOVERED if event.kind is EventKind.RECOVERED else Channel.ALERTS
        self._queue.append(
            (self._names.out(event.patient, channel.value), encode_event(event), f"ev:{event.id}")
        )

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        self._queue.append(
            (self._names.out(record.patient, RECORDS), _record_payload(record), _record_id(record))
        )

    def submit_error(self, patient: str, payload: bytes, *, seq: int) -> None:
        """Why the input at stream sequence ``seq`` was refused, for the patient's gateway
        (``…/patients/{patient}/errors``); once, however often a replay refuses it again."""
        self._queue.append((self._names.out(patient, Channel.ERRORS.value), payload, f"err:{seq}"))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def discard(self) -> None:
        """Forget what is queued (the partition was lost: its new owner will send it)."""
        self._queue.clear()

    async def flush(self) -> None:
        """Publish everything queued and wait until the stream stored (or deduplicated) it;
        :class:`OutputError` if it did not, with what failed still queued."""
        while self._queue:
            batch, self._queue = self._queue, []
            futures = []
            try:
                for subject, payload, msg_id in batch:
                    futures.append(
                        await self._js.publish_async(
                            subject, payload, headers={MSG_ID: msg_id}, wait_stall=10.0
                        )
                    )
                acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=10.0)
            except Exception as err:
                for fut in futures:
                    fut.cancel()
                self._queue = batch + self._queue
                raise OutputError(f"out stream did not take {len(batch)} outputs: {err!r}") from err
            self.published += len(acks)
            self.duplicates += sum(1 for a in acks if a.duplicate)
