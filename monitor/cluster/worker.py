"""One cluster worker (``heatmon run`` with ``[cluster]``): owns some partitions of the
inbound stream, runs their patients' engines, checkpoints them, publishes their outputs.

Ownership is a lease in a JetStream key-value bucket whose entries expire after
``lease_ttl_s`` (the bucket's TTL): a worker creates ``p{n}`` to own partition n (create
fails if someone holds it), renews it with a compare-and-set on its revision, and loses it
when the renewal fails. Every worker heartbeats into a second bucket, so each knows how
many share the work and keeps its fair share (ceil(partitions / workers)), releasing
partitions when workers join and claiming expired ones when a worker dies.

Taking over a partition: restore each patient's checkpoint (engine state, open alerts, the
stream sequence it reflects), recreate the partition's durable consumer from the oldest
sequence not yet in a checkpoint, replay. Outputs carry stable ids, so what the replay
produces again is dropped by the out stream's deduplication. Inputs are acknowledged, and a
checkpoint written, only after the outputs they produced are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Iterable

import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from monitor.backoff import Backoff
from monitor.cluster import snapshot
from monitor.cluster.config import ClusterConfig
from monitor.cluster.outputs import ClusterOutputSink
from monitor.cluster.subjects import Names
from monitor.cluster.topology import ensure, names_of
from monitor.config import HeatmonConfig
from monitor.engine import MonitorEngine, PatientEngine
from monitor.errors import InputError
from monitor.model import Event
from monitor.mqtt.payloads import PayloadCodec
from monitor.plugins import Sink
from monitor.service import Monitor, build_plugins

log = logging.getLogger(__name__)

JetStreamSubscription = JetStreamContext.PullSubscription

CLUSTER_SINKS_SKIPPED = ("mqtt",)
"""Sinks that a worker does not run: MQTT subscribers get the out stream's republished
messages from the cluster itself (a per-worker MQTT sink would also read every input)."""


def consumer_name(names: Names, partition: int) -> str:
    return f"{names.root}-part-{partition}"


class _Partition:
    __slots__ = (
        "ckpt_seq",
        "dirty",
        "last_seq",
        "marker_seq",
        "number",
        "patients",
        "renewed",
        "revision",
        "stop",
        "task",
    )

    def __init__(self, number: int, revision: int) -> None:
        self.number = number
        self.revision = revision
        self.renewed = time.monotonic()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.patients: set[str] = set()
        self.dirty: set[str] = set()
        self.ckpt_seq: dict[str, int] = {}
        self.marker_seq = 0
        self.last_seq = 0


class ClusterWorker:
    """Use ``await ClusterWorker(config=...).run(stop_event)``."""

    def __init__(self, *, config: HeatmonConfig, worker_id: str | None = None) -> None:
        if config.cluster is None:
            raise ValueError("ClusterWorker needs a [cluster] section")
        self.config = config
        self.cc: ClusterConfig = config.cluster
        self.names = names_of(self.cc)
        wid = worker_id or self.cc.worker_id or f"{config.monitor.instance}-{os.getpid()}"
        self.worker_id = wid.replace(".", "-")
        self.profiles = {p.id: p for p in config.patients}
        self.codec = PayloadCodec()
        self.counters: dict[str, int] = {}
        self._parts: dict[int, _Partition] = {}
        self._last_sample_time = 0.0
        self._flush_lock = asyncio.Lock()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._leases: KeyValue | None = None
        self._workers: KeyValue | None = None
        self._ckpts: KeyValue | None = None
        self._out: ClusterOutputSink | None = None
        self._monitor: Monitor | None = None
        self._started = time.time()

    # -- lifetime -----------------------------------------------------------------------

    def _clock(self) -> float:
        return self._last_sample_time if self.cc.clock == "samples" else time.time()

    async def run(self, stop: asyncio.Event) -> None:
        cc = self.cc
        self._nc = await nats.connect(
            servers=list(cc.servers),
            user=cc.user,
            password=cc.password.get_secret_value() if cc.password else None,
            name=self.worker_id,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
        self._js = self._nc.jetstream()
        backoff = Backoff()
        while True:  # the cluster may be electing leaders (a node just restarted)
            try:
                self._leases, self._workers, self._ckpts = await ensure(self._js, cc)
                break
            except Exception as err:
                delay = backoff.next_delay()
                log.warning(
                    "cannot set up the streams yet (%s: %s); again in %.1f s",
                    type(err).__name__,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
        sources, sinks, context = build_plugins(self.config)
        if sources:
            log.warning("cluster worker: sources are not run here (gateways publish to NATS)")
        kept: list[Sink] = [s for s in sinks if s.name not in CLUSTER_SINKS_SKIPPED]
        self._out = ClusterOutputSink(js=self._js, names=self.names)
        engine = MonitorEngine(profiles=self.profiles, config=self.config.engine)
        self._monitor = Monitor(engine=engine, sinks=[*kept, self._out], clock=self._clock)
        context.monitor = self._monitor
        log.info("cluster worker %s: %d partitions", self.worker_id, cc.partitions)
        async with self._monitor:
            leases = asyncio.create_task(self._lease_loop(), name="cluster-leases")
            try:
                await stop.wait()
            finally:
                leases.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await leases
                for number in sorted(self._parts):
                    await self._release(number, reason="worker stopping")
                with contextlib.suppress(Exception):
                    await self._workers.delete(self.worker_id)
        await self._nc.drain()

    # -- ownership ----------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        assert self._leases is not None and self._workers is not None
        period = self.cc.lease_ttl_s / 3
        backoff = Backoff()
        while True:
            try:
                await self._heartbeat()
                live = await self._keys(self.names.workers)
                target = math.ceil(self.cc.partitions / max(1, len(live)))
                await self._renew()
                if len(self._parts) < target:
                    await self._claim(target, live)
                elif len(self._parts) > target:
                    for number in sorted(self._parts)[target:]:
                        await self._release(number, reason=f"rebalance to {len(live)} workers")
                backoff.reset()
                await asyncio.sleep(period)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = min(backoff.next_delay(), period)
                self._count("lease_errors")
                log.warning("lease loop: %s: %s; again in %.1f s", type(err).__name__, err, delay)
                await asyncio.sleep(delay)

    async def _heartbeat(self) -> None:
        assert self._workers is not None and self._out is not None
        doc = {
            "worker": self.worker_id,
            "partitions": sorted(self._parts),
            "started": self._started,
            "time": time.time(),
            "published": self._out.published,
            "counters": self.counters,
        }
        await self._workers.put(self.worker_id, json.dumps(doc).encode())

    async def _keys(self, bucket: str, pattern: str = ">") -> list[str]:
        """Keys of ``bucket`` matching the subject ``pattern``, in one request (nats-py's
        ``KeyValue.keys`` walks the whole bucket and filters by substring)."""
        assert self._js is not None
        prefix = f"$KV.{bucket}."
        info = await self._js.stream_info(f"KV_{bucket}", subjects_filter=prefix + pattern)
        return sorted(s[len(prefix) :] for s in (info.state.subjects or {}))

    async def _renew(self) -> None:
        assert self._leases is not None
        for number, part in list(self._parts.items()):
            try:
                part.revision = await self._leases.update(
                    self.names.lease_key(number), self.worker_id.encode(), last=part.revision
                )
                part.renewed = time.monotonic()
            except Exception as err:
                log.warning("partition %d: lease lost (%s)", number, type(err).__name__)
                await self._lose(number)

    async def _claim(self, target: int, live: Iterable[str]) -> None:
        assert self._leases is not None
        order = sorted(live)
        start = order.index(self.worker_id) if self.worker_id in order else 0
        n = self.cc.partitions
        for k in range(n):
            number = (start * math.ceil(n / max(1, len(order))) + k) % n
            if number in self._parts:
                continue
            try:
                revision = await self._leases.create(
                    self.names.lease_key(number), self.worker_id.encode()
                )
            except Exception:
                continue  # someone holds it
            part = self._parts[number] = _Partition(number, revision)
            part.task = asyncio.create_task(self._own(part), name=f"cluster-part-{number}")
            await self._announce(number, "acquired")
            if len(self._parts) >= target:
                return

    async def _announce(self, number: int, what: str) -> None:
        log.info("partition %d %s by %s", number, what, self.worker_id)
        assert self._nc is not None
        doc = {"partition": number, "worker": self.worker_id, "change": what, "time": time.time()}
        with contextlib.suppress(Exception):
            await self._nc.publish(self.names.ownership_subject, json.dumps(doc).encode())

    async def _release(self, number: int, *, reason: str) -> None:
        """Hand a partition back cleanly: last checkpoint, then the lease."""
        part = self._parts.get(number)
        if part is None:
            return
        part.stop.set()
        if part.task is not None:
            with contextlib.suppress(Exception):
                await part.task
        self._drop(part)
        del self._parts[number]
        assert self._leases is not None
        with contextlib.suppress(Exception):
            await self._leases.delete(self.names.lease_key(number))
        await self._announce(number, f"released ({reason})")

    async def _lose(self, number: int) -> None:
        """The lease is gone (expired, or taken): stop at once, write nothing more."""
        part = self._parts.pop(number, None)
        if part is None:
            return
        if part.task is not None:
            part.task.cancel()
            with contextlib.suppress(BaseException):
                await part.task
        self._drop(part)
        self._count("partitions_lost")
        await self._announce(number, "lost")

    def _drop(self, part: _Partition) -> None:
        assert self._monitor is not None
        for patient in part.patients:
            self._monitor.engine.release(patient)
            self._monitor.restore_open_alerts(patient, [])

    def _fresh(self, part: _Partition) -> bool:
        """Still surely ours: renewed within the last two thirds of the lease."""
        return time.monotonic() - part.renewed < self.cc.lease_ttl_s * 2 / 3

    # -- a partition --------------------------------------------------------------------

    async def _own(self, part: _Partition) -> None:
        backoff = Backoff()
        while True:  # the cluster may be electing leaders: keep trying, never die silently
            try:
                sub, start = await self._open(part)
                break
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = backoff.next_delay()
                self._count("partition_errors")
                log.warning(
                    "partition %d: cannot open (%s: %s); again in %.1f s",
                    part.number,
                    type(err).__name__,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
        await self._consume(part, sub, start)

    async def _open(self, part: _Partition) -> tuple[JetStreamSubscription, int]:
        """Restore the partition's checkpoints; a fresh durable consumer from the oldest
        sequence they do not hold."""
        for patient in part.patients:  # a retry starts from the checkpoints again
            self._monitor_engine().release(patient)
        part.patients.clear()
        part.ckpt_seq.clear()
        part.dirty.clear()
        part.marker_seq = 0
        await self._restore(part)
        assert self._js is not None
        durable = consumer_name(self.names, part.number)
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self.names.in_stream, durable)
        start = part.marker_seq + 1
        await self._js.add_consumer(
            self.names.in_stream,
            ConsumerConfig(
                durable_name=durable,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                filter_subject=self.names.partition_filter(part.number),
                ack_policy=AckPolicy.ALL,
                ack_wait=60.0,
                max_ack_pending=-1,
            ),
        )
        sub = await self._js.pull_subscribe_bind(durable, stream=self.names.in_stream)
        return sub, start

    def _monitor_engine(self) -> MonitorEngine:
        assert self._monitor is not None
        return self._monitor.engine

    async def _consume(self, part: _Partition, sub: JetStreamSubscription, start: int) -> None:
        log.info("partition %d: replaying from stream sequence %d", part.number, start)
        last_ckpt = time.monotonic()
        to_ack = None
        backoff = Backoff()
        while not part.stop.is_set():
            try:
                if to_ack is not None:
                    await self._flush()
                    await to_ack.ack()
                    to_ack = None
                if time.monotonic() - last_ckpt >= self.cc.checkpoint_interval_s:
                    await self._checkpoint(part)
                    last_ckpt = time.monotonic()
                try:
                    msgs = await sub.fetch(self.cc.fetch_batch, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > part.last_seq:
                        await self._handle(part, msg.subject, msg.data, seq)
                        part.last_seq = seq
                to_ack = msgs[-1] if msgs else None
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._count("partition_errors")
                delay = backoff.next_delay()
                log.warning(
                    "partition %d: %s: %s; again in %.1f s",
                    part.number,
                    type(err).__name__,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
        # a clean release: everything out, one last checkpoint
        with contextlib.suppress(Exception):
            await self._flush()
            await self._checkpoint(part)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def _restore(self, part: _Partition) -> None:
        assert self._ckpts is not None and self._monitor is not None
        with contextlib.suppress(KeyNotFoundError):
            entry = await self._ckpts.get(self.names.marker_key(part.number))
            if entry.value:
                part.marker_seq = int(json.loads(entry.value)["seq"])
        part.last_seq = part.marker_seq
        limit = self.cc.max_checkpoint_bytes
        for key in await self._keys(self.names.checkpoints, f"c.{part.number}.*"):
            try:
                entry = await self._ckpts.get(key)
                state, extra = snapshot.loads(entry.value or b"", max_bytes=limit)
                engine, open_alerts = state
                if not isinstance(engine, PatientEngine):
                    raise snapshot.SnapshotError("not a patient engine")
                patient = engine.profile.id
                if patient not in self.profiles or self.names.partition(patient) != part.number:
                    raise snapshot.SnapshotError("patient not configured for this partition")
            except (snapshot.SnapshotError, KeyNotFoundError, ValueError, TypeError) as err:
                self._count("checkpoints_refused")
                log.warning("partition %d: checkpoint %s not restored: %s", part.number, key, err)
                continue
            # the configured profile wins over the one in the checkpoint
            object.__setattr__(engine, "_profile", self.profiles[patient])
            self._monitor.engine.adopt(engine)
            self._monitor.restore_open_alerts(
                patient, [e for e in open_alerts if isinstance(e, Event)]
            )
            part.patients.add(patient)
            part.ckpt_seq[patient] = int(extra.get("seq", 0))
            self._last_sample_time = max(self._last_sample_time, float(extra.get("clock", 0.0)))
        log.info("partition %d: %d patients restored", part.number, len(part.patients))

    async def _handle(self, part: _Partition, subject: str, data: bytes, seq: int) -> None:
        assert self._monitor is not None
        try:
            number, patient, channel = self.names.parse_in(subject)
        except ValueError:
            self._count("bad_subjects")
            return
        if number != part.number or self.names.partition(patient) != number:
            self._count("misrouted")
            return
        if patient not in self.profiles:
            self._count("unknown_patients")
            return
        if seq <= part.ckpt_seq.get(patient, 0):
            return  # already in the restored checkpoint
        part.patients.add(patient)
        part.dirty.add(patient)
        try:
            if channel == "samples":
                for sample in self.codec.decode_samples(data, patient=patient, where=subject):
                    self._last_sample_time = max(self._last_sample_time, sample.time)
                    await self._monitor.ingest(sample)
            elif channel == "symptoms":
                t, note = self.codec.decode_symptom(data, where=subject)
                self._monitor.report_symptom(patient, time=t, note=note)
            elif channel == "ack":
                event_id, by, t = self.codec.decode_ack(data, where=subject)
                self._monitor.acknowledge(patient, event_id, by=by, time=t)
        except InputError as err:
            self._count(f"rejected.{channel}")
            log.warning("input rejected: %s", err.reason)

    async def _flush(self) -> None:
        assert self._out is not None
        async with self._flush_lock:
            await self._out.flush()

    async def _checkpoint(self, part: _Partition) -> None:
        assert self._ckpts is not None and self._monitor is not None
        if part.last_seq <= part.marker_seq and not part.dirty:
            return
        await self._flush()
        if not self._fresh(part):
            raise RuntimeError("lease not renewed recently; no checkpoint")
        seq = part.last_seq
        for patient in sorted(part.dirty):
            engine = self._monitor.engine.engine(patient)
            data = snapshot.dumps(
                (engine, self._monitor.open_alerts(patient)),
                extra={"seq": seq, "time": time.time(), "clock": self._last_sample_time},
                max_bytes=self.cc.max_checkpoint_bytes,
            )
            await self._ckpts.put(self.names.checkpoint_key(part.number, patient), data)
        part.dirty.clear()
        marker = {"seq": seq, "time": time.time(), "worker": self.worker_id}
        await self._ckpts.put(self.names.marker_key(part.number), json.dumps(marker).encode())
        part.marker_seq = seq

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
