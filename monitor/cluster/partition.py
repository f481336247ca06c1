"""One partition of the inbound stream while this worker owns it: restore its patients'
checkpoints, replay from the oldest sequence they do not hold, then consume — handing each
message to the monitor, acknowledging only after the outputs are stored, and checkpointing
every ``checkpoint_interval_s``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError

from monitor.backoff import Backoff
from monitor.cluster import snapshot
from monitor.cluster.subjects import WEB_ACK
from monitor.engine import PatientEngine
from monitor.errors import InputError
from monitor.model import Event
from monitor.mqtt.inbound import loggable, require_caregiver
from monitor.mqtt.topics import Channel
from monitor.web.patient_routes import PATIENT_ACK_BY

if TYPE_CHECKING:
    from monitor.cluster.worker import ClusterWorker

log = logging.getLogger(__name__)

JetStreamSubscription = JetStreamContext.PullSubscription


YIELD_EVERY = 16
"""Messages handled between two turns of the event loop (a busy worker still renews its
leases on time)."""
CHECKPOINT_WRITES_IN_FLIGHT = 128
"""Checkpoint puts awaiting the server's acknowledgement at once."""


def consumer_name(root: str, partition: int) -> str:
    return f"{root}-part-{partition}"


class Partition:
    """Ownership state of one partition and the task that works it."""

    __slots__ = (
        "_unexpected",
        "ckpt_seq",
        "dirty",
        "last_seq",
        "lost",
        "marker_seq",
        "number",
        "patients",
        "renewed",
        "revision",
        "stop",
        "task",
        "w",
    )

    def __init__(self, worker: ClusterWorker, number: int, revision: int) -> None:
        self.w = worker
        self.number = number
        self.revision = revision
        """Of the lease entry: the next renewal is a compare-and-set on it."""
        self.renewed = time.monotonic()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.patients: set[str] = set()
        self.dirty: set[str] = set()
        self.ckpt_seq: dict[str, int] = {}
        self.marker_seq = 0
        self.last_seq = 0
        self.lost = False
        """Set when the lease is gone: nothing more may be written for this partition."""
        self._unexpected: set[str] = set()
        """Kinds of unexpected error on input logged with their traceback (then counted)."""

    def fresh(self) -> bool:
        """Still surely ours: renewed within the last two thirds of the lease."""
        return time.monotonic() - self.renewed < self.w.cc.lease_ttl_s * 2 / 3

    def drop(self) -> None:
        """Forget this partition's patients (another worker has them now)."""
        for patient in self.patients:
            self.w.monitor.engine.release(patient)
            self.w.monitor.restore_open_alerts(patient, [])

    async def own(self) -> None:
        backoff = Backoff()
        while True:  # the cluster may be electing leaders: keep trying, never die silently
            if self.stop.is_set():
                return
            try:
                sub, start = await self._open()
                break
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = backoff.next_delay()
                self.w.count("partition_errors")
                log.warning(
                    "partition %d: cannot open (%s: %s); again in %.1f s",
                    self.number,
                    type(err).__name__,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
        await self._consume(sub, start)

    async def _open(self) -> tuple[JetStreamSubscription, int]:
        """Restore the partition's checkpoints; a fresh durable consumer from the oldest
        sequence they do not hold."""
        for patient in self.patients:  # a retry starts from the checkpoints again
            self.w.monitor.engine.release(patient)
        self.patients.clear()
        self.ckpt_seq.clear()
        self.dirty.clear()
        self.marker_seq = 0
        await self._restore()
        durable = consumer_name(self.w.names.root, self.number)
        with contextlib.suppress(NotFoundError):
            await self.w.js.delete_consumer(self.w.names.in_stream, durable)
        start = self.marker_seq + 1
        await self.w.js.add_consumer(
            self.w.names.in_stream,
            ConsumerConfig(
                durable_name=durable,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                filter_subject=self.w.names.partition_filter(self.number),
                ack_policy=AckPolicy.ALL,
                ack_wait=60.0,
                max_ack_pending=-1,
            ),
        )
        sub = await self.w.js.pull_subscribe_bind(durable, stream=self.w.names.in_stream)
        return sub, start

    async def _consume(self, sub: JetStreamSubscription, start: int) -> None:
        log.info("partition %d: replaying from stream sequence %d", self.number, start)
        last_ckpt = time.monotonic()
        to_ack = None
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                if to_ack is not None:
                    await self.w.flush()
                    await to_ack.ack()
                    to_ack = None
                if time.monotonic() - last_ckpt >= self.w.cc.checkpoint_interval_s:
                    await self._checkpoint()
                    last_ckpt = time.monotonic()
                try:
                    msgs = await sub.fetch(self.w.cc.fetch_batch, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                for n, msg in enumerate(msgs, start=1):
                    seq = msg.metadata.sequence.stream
                    if seq > self.last_seq:
                        await self._handle(msg.subject, msg.data, seq)
                        self.last_seq = seq
                    if n % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # let the lease loop and other partitions run
                to_ack = msgs[-1] if msgs else None
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.w.count("partition_errors")
                delay = backoff.next_delay()
                log.warning(
                    "partition %d: %s: %s; again in %.1f s",
                    self.number,
                    type(err).__name__,
                    err,
                    delay,
                )
                await asyncio.sleep(delay)
        # a clean release: everything out, one last checkpoint
        with contextlib.suppress(Exception):
            await self.w.flush()
            await self._checkpoint()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def _restore(self) -> None:
        with contextlib.suppress(KeyNotFoundError):
            entry = await self.w.ckpts.get(self.w.names.marker_key(self.number))
            if entry.value:
                self.marker_seq = int(json.loads(entry.value)["seq"])
        self.last_seq = self.marker_seq
        limit = self.w.cc.max_checkpoint_bytes
        for key in await self.w.keys(self.w.names.checkpoints, f"c.{self.number}.*"):
            try:
                entry = await self.w.ckpts.get(key)
                state, extra = snapshot.loads(entry.value or b"", max_bytes=limit)
                engine, open_alerts = state
                if not isinstance(engine, PatientEngine):
                    raise snapshot.SnapshotError("not a patient engine")
                patient = engine.profile.id
                if patient not in self.w.profiles or self.w.names.partition(patient) != self.number:
                    raise snapshot.SnapshotError("patient not configured for this partition")
            except (snapshot.SnapshotError, KeyNotFoundError, ValueError, TypeError) as err:
                self.w.count("checkpoints_refused")
                log.warning("partition %d: checkpoint %s not restored: %s", self.number, key, err)
                continue
            # the newest profile (configured, or as people changed it since: the profiles
            # bucket) wins over the checkpoint's, thresholds included
            engine.set_profile(self.w.profiles[patient])
            self.w.monitor.engine.adopt(engine)
            self.w.monitor.restore_open_alerts(
                patient, [e for e in open_alerts if isinstance(e, Event)]
            )
            self.patients.add(patient)
            self.ckpt_seq[patient] = int(extra.get("seq", 0))
            self.w.sample_time = max(self.w.sample_time, float(extra.get("clock", 0.0)))
        log.info("partition %d: %d patients restored", self.number, len(self.patients))

    async def _handle(self, subject: str, data: bytes, seq: int) -> None:
        try:
            number, patient, channel = self.w.names.parse_in(subject)
            partition = self.w.names.partition(patient)  # InputError: no pseudonym
        except (ValueError, InputError):
            self.w.count("bad_subjects")
            return
        if number != self.number or partition != number:
            self.w.count("misrouted")
            return
        if patient not in self.w.profiles:
            self.w.count("unknown_patients")
            await self.w.refuse(
                patient, channel, "patient is not one of this cluster's patients", seq=seq
            )
            return
        if seq <= self.ckpt_seq.get(patient, 0):
            return  # already in the restored checkpoint
        self.patients.add(patient)
        self.dirty.add(patient)
        try:
            if channel == "samples":
                samples = self.w.codec.decode_samples(data, patient=patient, where=subject)
                if samples:
                    self.w.sample_time = max(self.w.sample_time, max(s.time for s in samples))
                    if self.w.cc.clock == "samples":
                        # the newest sample is the clock: the engine learns it now, not at
                        # the next tick, or a burst after one batch a tick (a backlog, a
                        # replay) runs past the limit that tick set and is dropped as future
                        self.w.monitor.engine.engine(patient).note_clock(self.w.sample_time)
                    # one pass for the message, as one process takes a gateway's batch
                    await self.w.monitor.ingest_batch(samples)
                self.w.count("samples", len(samples))
            elif channel == "symptoms":
                t, note = self.w.codec.decode_symptom(data, where=subject)
                if self.w.symptoms.over(patient):
                    self.w.count("symptoms_limited")
                else:
                    self.w.monitor.report_symptom(patient, time=t, note=note)
                    self.w.symptoms.taken(patient)
                    self.w.count("symptoms")
            elif channel in ("ack", WEB_ACK):
                event_id, by, t = self.w.codec.decode_ack(data, where=subject)
                # "patient:self" only from a worker's dashboard, never a caregiver's app
                if channel != WEB_ACK or by != PATIENT_ACK_BY:
                    require_caregiver(by, where=subject)
                self.w.monitor.acknowledge(patient, event_id, by=by, time=t)
            else:
                self.w.count("unknown_channels")
        except InputError as err:
            self.w.count(f"rejected.{channel}")
            # never what a person typed (a symptom note, a name): as the MQTT sink logs it
            known = channel in {c.value for c in Channel}
            log.warning(
                "partition %d: rejected %s input: %s",
                self.number,
                channel,
                loggable(err.reason, Channel(channel) if known else None),
            )
            await self.w.refuse(patient, channel, err.reason, seq=seq)
        except Exception as err:  # a bug, not the sender's fault: the batch goes on
            # (raised out of here, it would skip the rest of the fetched batch, which the
            # next batch's acknowledgement, AckPolicy.ALL, then acknowledges: lost)
            kind = f"{channel}:{type(err).__name__}"
            if kind not in self._unexpected:
                self._unexpected.add(kind)
                log.exception(
                    "partition %d: unexpected error on input (%s); counted from now on",
                    self.number,
                    kind,
                )
            self.w.count("input_errors")
            await self.w.refuse(
                patient, channel, f"could not be processed ({type(err).__name__})", seq=seq
            )

    async def _checkpoint(self) -> None:
        """Write the changed patients' engines and the partition's marker. The snapshots all
        reflect ``seq`` (this task takes no message meanwhile; it lets the event loop run
        between patients, so a big partition does not hold up the lease renewals), then every
        output produced so far is stored, then the checkpoints are written: a checkpoint
        never claims a sample whose outputs could still be lost."""
        if self.lost or (self.last_seq <= self.marker_seq and not self.dirty):
            return
        seq = self.last_seq
        now = time.time()
        extra = {"seq": seq, "time": now, "clock": self.w.sample_time}
        blobs = []
        for n, patient in enumerate(sorted(self.dirty), start=1):
            # one patient's engine and open alerts together, with no await between them
            state = (self.w.monitor.engine.engine(patient), self.w.monitor.open_alerts(patient))
            data = snapshot.dumps(state, extra=extra, max_bytes=self.w.cc.max_checkpoint_bytes)
            blobs.append((self.w.names.checkpoint_key(self.number, patient), data))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
                if self.lost:
                    return
        await self.w.flush()
        if self.lost or not self.fresh():
            # maybe no longer ours: write nothing; the lease loop decides (keep or lose)
            self.w.count("checkpoints_deferred")
            return
        for start in range(0, len(blobs), CHECKPOINT_WRITES_IN_FLIGHT):
            chunk = blobs[start : start + CHECKPOINT_WRITES_IN_FLIGHT]
            await asyncio.gather(*(self.w.ckpts.put(key, data) for key, data in chunk))
        self.dirty.clear()
        marker = {"seq": seq, "time": now, "worker": self.w.worker_id}
        await self.w.ckpts.put(self.w.names.marker_key(self.number), json.dumps(marker).encode())
        self.marker_seq = seq
