"""What ``heatmon cluster status`` shows: the workers, each partition's owner, its lag
(messages not yet acknowledged by its owner), and the age of its last checkpoint."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import nats
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext
from nats.js.errors import KeyNotFoundError, NotFoundError

from monitor.cluster.config import ClusterConfig
from monitor.cluster.partition import consumer_name
from monitor.cluster.peers import HEARTBEAT_FIELD, stores_differ
from monitor.cluster.subjects import Names
from monitor.cluster.topology import bucket_keys, names_of


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRow:
    worker: str
    partitions: tuple[int, ...]
    heartbeat_age_s: float
    published: int
    flags: Mapping[str, int] = field(default_factory=dict)
    """Samples this worker's engines flagged and did not estimate from, by flag."""
    profiles: tuple[int, int] = (0, 0)
    """People's profile changes this worker applied and refused (monitor/cluster/profiles.py)."""
    thresholds_store: str | None = None
    """Its thresholds store's id (monitor/cluster/peers.py); ``None``: no ``thresholds`` sink."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionRow:
    partition: int
    owner: str | None
    lag: int | None
    """Messages of the partition its consumer has not delivered yet."""
    unacked: int | None
    checkpoint_seq: int | None
    checkpoint_age_s: float | None
    patients: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStatus:
    workers: tuple[WorkerRow, ...]
    partitions: tuple[PartitionRow, ...]
    in_messages: int
    out_messages: int


async def gather(js: JetStreamContext, names: Names, *, now: float | None = None) -> ClusterStatus:
    now = time.time() if now is None else now
    workers: list[WorkerRow] = []
    wkv = await js.key_value(names.workers)
    for key in sorted(await bucket_keys(js, names.workers, ">", missing_ok=True)):
        try:
            doc = json.loads((await wkv.get(key)).value or b"{}")
        except (KeyNotFoundError, ValueError, NatsError, NatsTimeout):
            continue
        workers.append(
            WorkerRow(
                worker=key,
                partitions=tuple(doc.get("partitions", ())),
                heartbeat_age_s=max(0.0, now - float(doc.get("time", now))),
                published=int(doc.get("published", 0)),
                flags={str(k): int(v) for k, v in dict(doc.get("flags", {})).items()},
                profiles=(
                    int(doc.get("counters", {}).get("profiles_applied", 0)),
                    int(doc.get("counters", {}).get("profiles_refused", 0)),
                ),
                thresholds_store=(
                    str(doc[HEARTBEAT_FIELD]) if doc.get(HEARTBEAT_FIELD) is not None else None
                ),
            )
        )
    leases = await js.key_value(names.leases)
    ckpts = await js.key_value(names.checkpoints)
    counts = await bucket_keys(js, names.checkpoints, "c.>", missing_ok=True)
    rows: list[PartitionRow] = []
    for p in range(names.partitions):
        owner: str | None = None
        with contextlib.suppress(KeyNotFoundError, NatsError, NatsTimeout):
            owner = ((await leases.get(names.lease_key(p))).value or b"").decode() or None
        seq: int | None = None
        age: float | None = None
        try:
            marker = json.loads((await ckpts.get(names.marker_key(p))).value or b"{}")
            seq, age = int(marker["seq"]), max(0.0, now - float(marker["time"]))
        except (KeyNotFoundError, ValueError, KeyError, NatsError, NatsTimeout):
            pass  # none yet, or the server did not answer in time: shown as -
        lag: int | None = None
        unacked: int | None = None
        try:
            info = await js.consumer_info(names.in_stream, consumer_name(names.root, p))
            lag, unacked = info.num_pending, info.num_ack_pending
        except (NotFoundError, NatsError, NatsTimeout):
            pass  # no consumer, or no answer in time: shown as -
        patients = sum(1 for k in counts if k.startswith(f"c.{p}."))
        rows.append(
            PartitionRow(
                partition=p,
                owner=owner,
                lag=lag,
                unacked=unacked,
                checkpoint_seq=seq,
                checkpoint_age_s=age,
                patients=patients,
            )
        )
    in_info = await js.stream_info(names.in_stream)
    out_info = await js.stream_info(names.out_stream)
    return ClusterStatus(
        workers=tuple(workers),
        partitions=tuple(rows),
        in_messages=in_info.state.messages,
        out_messages=out_info.state.messages,
    )


async def fetch_status(config: ClusterConfig) -> ClusterStatus:
    nc = await nats.connect(
        servers=list(config.servers),
        user=config.user,
        password=config.password.get_secret_value() if config.password else None,
        name="heatmon-cluster-status",
        max_reconnect_attempts=2,
    )
    try:
        return await gather(nc.jetstream(), names_of(config))
    finally:
        await nc.close()


def _fmt(value: float | int | None, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def render(status: ClusterStatus) -> str:
    lines = [f"workers: {len(status.workers)}"]
    for w in status.workers:
        parts = ",".join(str(p) for p in w.partitions) or "none"
        lines.append(
            f"  {w.worker:<24} partitions {parts:<20} heartbeat {w.heartbeat_age_s:5.1f} s ago"
            f"  outputs {w.published}"
        )
        if w.flags:
            flagged = ", ".join(f"{k} {v}" for k, v in sorted(w.flags.items()))
            lines.append(f"  {'':<24} samples flagged (not estimated from): {flagged}")
        if w.profiles[1]:
            lines.append(
                f"  {'':<24} profile changes applied {w.profiles[0]}, refused {w.profiles[1]}"
                " (the reasons are in the worker's log)"
            )
    if stores_differ(w.thresholds_store for w in status.workers):
        lines.append(
            "  the workers use different thresholds stores (each worker's first 8 characters: "
            + ", ".join(f"{w.worker} {(w.thresholds_store or '-')[:8]}" for w in status.workers)
            + "): they must share one (docs/scaling.md)"
        )
    lines.append(f"inbound messages {status.in_messages}, outputs stored {status.out_messages}")
    lines.append("partition  owner                     lag  unacked  checkpoint  age (s)  patients")
    for r in status.partitions:
        lines.append(
            f"{r.partition:>9}  {r.owner or '(none)':<24} {_fmt(r.lag):>4}  {_fmt(r.unacked):>7}"
            f"  {_fmt(r.checkpoint_seq):>10}  {_fmt(r.checkpoint_age_s, '.1f'):>7}  {r.patients:>8}"
        )
    return "\n".join(lines) + "\n"
