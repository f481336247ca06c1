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
from nats.js.client import JetStreamContext
from nats.js.kv import KeyValue

from monitor.backoff import Backoff
from monitor.cluster.config import ClusterConfig
from monitor.cluster.outputs import ClusterOutputSink
from monitor.cluster.partition import Partition
from monitor.cluster.peers import HEARTBEAT_FIELD, SharedStores
from monitor.cluster.profiles import ClusterProfiles
from monitor.cluster.topology import bucket_keys, ensure_ready, names_of
from monitor.cluster.webview import ClusterControl, OutStreamFeed
from monitor.config import HeatmonConfig
from monitor.engine import MonitorEngine
from monitor.mqtt.codec import PayloadCodec
from monitor.mqtt.options import parse_options
from monitor.mqtt.payloads import encode_error
from monitor.mqtt.topics import Channel
from monitor.plugins import Sink
from monitor.ratelimit import SymptomLimit
from monitor.service import Monitor, build_plugins
from monitor.thresholds.learner import ThresholdLearner

log = logging.getLogger(__name__)

LOSE_WAIT_S = 5.0
RELEASE_WAIT_S = 30.0

CLUSTER_SINKS_SKIPPED = ("mqtt",)
"""Sinks that a worker does not run: MQTT subscribers get the out stream's republished
messages from the cluster itself (a per-worker MQTT sink would also read every input)."""
CLUSTER_WIDE_SINKS = ("web",)
"""Sinks fed from the out stream (every patient of the cluster) rather than from this
worker's engines (:mod:`monitor.cluster.webview`)."""


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
        # with clock = "samples" the samples are the clock (a replay of old recordings): no
        # wall-clock age makes a sample too old there
        samples_clock = self.cc.clock == "samples"
        self.codec = PayloadCodec(max_past_s=math.inf) if samples_clock else PayloadCodec()
        self.counters: dict[str, int] = {}
        self.symptoms = SymptomLimit(
            per_minute=parse_options(config.sinks.get("mqtt", {})).symptoms_per_minute,
            input_name="cluster",
            clock=self._clock,
        )
        """Symptom reports per patient a minute, as the MQTT input limits them (gateways
        and apps publish to the cluster's NATS, or its MQTT, directly)."""
        self.stores = SharedStores(worker_id=self.worker_id, count=self.count)
        self._parts: dict[int, Partition] = {}
        self._losing: dict[int, asyncio.Task[None]] = {}
        """Partitions lost whose task is still stopping (not claimed again until then)."""
        self.sample_time = 0.0
        self._flush_lock = asyncio.Lock()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._leases: KeyValue | None = None
        self._workers: KeyValue | None = None
        self._ckpts: KeyValue | None = None
        self._out: ClusterOutputSink | None = None
        self._monitor: Monitor | None = None
        self._started = time.time()

    # -- what the partitions share ---------------------------------------------------

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "worker not running"
        return self._js

    @property
    def ckpts(self) -> KeyValue:
        assert self._ckpts is not None, "worker not running"
        return self._ckpts

    @property
    def monitor(self) -> Monitor:
        assert self._monitor is not None, "worker not running"
        return self._monitor

    # -- lifetime -----------------------------------------------------------------------

    def _clock(self) -> float:
        return self.sample_time if self.cc.clock == "samples" else time.time()

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
        self._leases, self._workers, self._ckpts, kv = await ensure_ready(self._js, cc)
        sources, sinks, context = build_plugins(self.config)
        if sources:
            log.warning("cluster worker: sources are not run here (gateways publish to NATS)")
        kept: list[Sink] = [s for s in sinks if s.name not in CLUSTER_SINKS_SKIPPED]
        wide = [s for s in kept if s.name in CLUSTER_WIDE_SINKS]
        local = [s for s in kept if s.name not in CLUSTER_WIDE_SINKS]
        self._out = ClusterOutputSink(js=self._js, names=self.names)
        engine = MonitorEngine(profiles=self.profiles, config=self.config.engine)
        self._monitor = Monitor(engine=engine, sinks=[*local, self._out], clock=self._clock)
        context.monitor = self._monitor
        # people's profile changes: all applied before any partition is claimed or restored
        profiles = ClusterProfiles(worker=self, kv=kv)
        await profiles.start()
        for sink in local:
            if isinstance(sink, ThresholdLearner):  # accepted thresholds go to every worker
                sink.publish_to(profiles.publish_threshold)
        control = ClusterControl(
            js=self._js, names=self.names, monitor=self._monitor, sinks=local, profiles=profiles
        )
        for sink in wide:
            attach = getattr(sink, "attach", None)
            if attach is not None:
                attach(control)
        feed = OutStreamFeed(js=self._js, names=self.names, sinks=wide)
        log.info("cluster worker %s: %d partitions", self.worker_id, cc.partitions)
        async with self._monitor, contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(profiles.stop)
            for sink in local:
                if isinstance(sink, ThresholdLearner) and sink.started:
                    self.stores.mine = await asyncio.to_thread(sink.store.identity)
            for sink in wide:
                await sink.start()
                stack.push_async_callback(sink.stop)
            if wide:
                await feed.start()
                stack.push_async_callback(feed.stop)
                stack.push_async_callback(control.drain)
            loops = [
                asyncio.create_task(self._renew_loop(), name="cluster-renewals"),
                asyncio.create_task(self._lease_loop(), name="cluster-leases"),
            ]
            try:
                await stop.wait()
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)
                await asyncio.gather(
                    *(self._release(n, reason="worker stopping") for n in sorted(self._parts)),
                    *self._losing.values(),
                )
                with contextlib.suppress(Exception):
                    await self._workers.delete(self.worker_id)
        await self._nc.drain()

    # -- ownership ----------------------------------------------------------------------

    async def _renew_loop(self) -> None:
        """Renew every lease each ``lease_ttl_s / 3``, on its own: never behind a slow claim,
        release or heartbeat. A turn that starts late means this worker's event loop was
        busy; a renewal that takes long means the servers are slow: both are logged and
        counted (each costs leases when it reaches the TTL)."""
        period = self.cc.lease_ttl_s / 3
        due = time.monotonic()
        while True:
            turn = time.monotonic()
            if turn - due > period:
                self.count("lease_turns_late")
                log.warning("lease renewal %.1f s late (this worker is busy)", turn - due)
            try:
                await self._renew()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # _renew loses what it cannot renew; this is a bug
                self.count("lease_errors")
                log.warning("lease renewal: %s: %s", type(err).__name__, err)
            took = time.monotonic() - turn
            if took > period:
                self.count("lease_renewals_slow")
                log.warning("lease renewal took %.1f s (the servers are slow)", took)
            due = turn + period
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _lease_loop(self) -> None:
        """Heartbeat, count the live workers, claim or release to keep a fair share."""
        assert self._leases is not None and self._workers is not None
        period = self.cc.lease_ttl_s / 3
        backoff = Backoff()
        while True:
            try:
                await self._heartbeat()
                live = await self.keys(self.names.workers)
                await self.stores.check(self._workers, live)
                target = math.ceil(self.cc.partitions / max(1, len(live)))
                if len(self._parts) < target:
                    await self._claim(target, live)
                elif len(self._parts) > target:
                    await asyncio.gather(  # at once, each bounded well inside the lease
                        *(
                            self._release(
                                number,
                                reason=f"rebalance to {len(live)} workers",
                                wait_s=self.cc.lease_ttl_s / 3,
                            )
                            for number in sorted(self._parts)[target:]
                        )
                    )
                backoff.reset()
                await asyncio.sleep(period)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = min(backoff.next_delay(), period)
                self.count("lease_errors")
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
            HEARTBEAT_FIELD: self.stores.mine,
            # samples the engines flagged (future, out_of_order, implausible …): a sample
            # flagged is not estimated from, so a takeover that drops any shows here
            "flags": {
                k.removeprefix("flag."): v
                for k, v in (self._monitor.counters if self._monitor else {}).items()
                if k.startswith("flag.")
            },
        }
        await self._workers.put(self.worker_id, json.dumps(doc).encode())

    async def keys(self, bucket: str, pattern: str = ">") -> list[str]:
        """Keys of ``bucket`` matching the subject ``pattern`` (:func:`bucket_keys`)."""
        return sorted(await bucket_keys(self.js, bucket, pattern))

    async def _renew(self) -> None:
        """Renew every lease at once: one at a time, a slow server (a busy machine, a
        leader election) could let the last ones expire before their turn."""
        assert self._leases is not None
        parts = list(self._parts.items())
        sent = time.monotonic()  # the lease runs from about now, not from the answer
        results = await asyncio.gather(
            *(
                self._leases.update(
                    self.names.lease_key(number), self.worker_id.encode(), last=part.revision
                )
                for number, part in parts
            ),
            return_exceptions=True,
        )
        for (number, part), result in zip(parts, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                log.warning("partition %d: lease lost (%s)", number, type(result).__name__)
                self._lose(number)
            elif self._parts.get(number) is part:
                part.revision = result
                part.renewed = sent

    async def _claim(self, target: int, live: Iterable[str]) -> None:
        assert self._leases is not None
        order = sorted(live)
        start = order.index(self.worker_id) if self.worker_id in order else 0
        n = self.cc.partitions
        for k in range(n):
            number = (start * math.ceil(n / max(1, len(order))) + k) % n
            if number in self._parts or number in self._losing:
                continue  # ours, or ours until its task has stopped
            try:
                revision = await self._leases.create(
                    self.names.lease_key(number), self.worker_id.encode()
                )
            except Exception:
                continue  # someone holds it
            part = self._parts[number] = Partition(self, number, revision)
            part.task = asyncio.create_task(part.own(), name=f"cluster-part-{number}")
            await self._announce(number, "acquired")
            if len(self._parts) >= target:
                return

    async def _announce(self, number: int, what: str) -> None:
        log.info("partition %d %s by %s", number, what, self.worker_id)
        assert self._nc is not None
        doc = {"partition": number, "worker": self.worker_id, "change": what, "time": time.time()}
        with contextlib.suppress(Exception):
            await self._nc.publish(self.names.ownership_subject, json.dumps(doc).encode())

    async def _release(self, number: int, *, reason: str, wait_s: float = RELEASE_WAIT_S) -> None:
        """Hand a partition back cleanly: last checkpoint, then the lease."""
        part = self._parts.get(number)
        if part is None:
            return
        part.stop.set()
        if part.task is not None:
            done, _ = await asyncio.wait({part.task}, timeout=wait_s)
            if not done:  # stuck: stop it the hard way, without a last checkpoint
                part.lost = True
                part.task.cancel()
                await asyncio.wait({part.task}, timeout=LOSE_WAIT_S)
        part.drop()
        del self._parts[number]
        assert self._leases is not None
        with contextlib.suppress(Exception):
            await self._leases.delete(self.names.lease_key(number))
        await self._announce(number, f"released ({reason})")

    def _lose(self, number: int) -> None:
        """The lease is gone (expired, or taken): stop at once, write nothing more. The wait
        for the partition's task runs apart, so the lease loop renews the others on time."""
        part = self._parts.pop(number, None)
        if part is None:
            return
        part.lost = True  # the loop stops at its next turn and writes nothing
        part.stop.set()
        if part.task is not None:
            part.task.cancel()
        task = asyncio.create_task(self._forget(number, part), name=f"cluster-lose-{number}")
        self._losing[number] = task
        task.add_done_callback(lambda _: self._losing.pop(number, None))

    async def _forget(self, number: int, part: Partition) -> None:
        if part.task is not None:
            # a cancellation can be swallowed inside a client call: the flags set in _lose
            # end the task then; never wait for it forever
            await asyncio.wait({part.task}, timeout=LOSE_WAIT_S)
        part.drop()
        self.count("partitions_lost")
        await self._announce(number, "lost")

    async def flush(self) -> None:
        """Publish every queued output and wait for the out stream to store it."""
        assert self._out is not None
        async with self._flush_lock:
            await self._out.flush()

    async def refuse(self, patient: str, channel: str, reason: str, *, seq: int) -> None:
        """Answer a refused input as one process does (docs/mqtt.md): on the patient's
        ``errors`` topic through the out stream (once, however often a replay refuses it),
        and on this worker's ``…/monitors/{worker}/errors``."""
        assert self._out is not None and self._nc is not None
        self.count("rejected")
        known = channel in {c.value for c in Channel}
        payload = encode_error(
            topic=f"{self.cc.topic_prefix}/patients/{patient}/{channel}",
            reason=reason,
            rejected=self.counters["rejected"],
            time=time.time(),
            patient=patient,
            channel=channel if known else None,
        )
        self._out.submit_error(patient, payload, seq=seq)
        with contextlib.suppress(Exception):
            await self._nc.publish(self.names.monitor_errors(self.worker_id), payload)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
