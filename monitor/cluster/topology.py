"""The streams and buckets of cluster mode, created (or found) by every worker at start."""

from __future__ import annotations

import asyncio
import logging

from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from monitor.backoff import Backoff
from monitor.cluster.config import ClusterConfig
from monitor.cluster.profiles import MAX_PROFILE_BYTES
from monitor.cluster.subjects import Names

log = logging.getLogger(__name__)


def names_of(config: ClusterConfig) -> Names:
    return Names(root=config.root, topic_prefix=config.topic_prefix, partitions=config.partitions)


async def _stream(js: JetStreamContext, cfg: StreamConfig) -> None:
    try:
        await js.add_stream(cfg)
    except BadRequestError:
        # exists with another configuration (an older worker made it): bring it up to date
        await js.update_stream(cfg)


async def _bucket(js: JetStreamContext, cfg: KeyValueConfig) -> KeyValue:
    try:
        return await js.create_key_value(cfg)
    except BadRequestError as err:
        # exists with other settings (another worker's configuration made it): use it as is
        log.warning("bucket %s exists with other settings; using them (%s)", cfg.bucket, err)
        return await js.key_value(cfg.bucket)


async def ensure(
    js: JetStreamContext, config: ClusterConfig
) -> tuple[KeyValue, KeyValue, KeyValue, KeyValue]:
    """Create what is missing; return the lease, worker, checkpoint and profile buckets."""
    names = names_of(config)
    await _stream(
        js,
        StreamConfig(
            name=names.in_stream,
            subjects=[f"{names.root}.in.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=config.retention_s,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=config.replicas,
            duplicate_window=120.0,
        ),
    )
    await _stream(
        js,
        StreamConfig(
            name=names.out_stream,
            subjects=[f"{names.root}.out.>"],
            retention=RetentionPolicy.LIMITS,
            max_age=config.retention_s,
            storage=StorageType.FILE,
            num_replicas=config.replicas,
            duplicate_window=config.duplicate_window_s,
            republish=RePublish(
                src=f"{names.root}.out.*.*",
                dest=f"{names.patients_subject}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}",
            ),
        ),
    )
    leases = await _bucket(
        js,
        KeyValueConfig(
            bucket=names.leases, ttl=config.lease_ttl_s, replicas=config.replicas, history=1
        ),
    )
    workers = await _bucket(
        js,
        KeyValueConfig(
            bucket=names.workers, ttl=config.lease_ttl_s, replicas=config.replicas, history=1
        ),
    )
    checkpoints = await _bucket(
        js,
        KeyValueConfig(
            bucket=names.checkpoints,
            replicas=config.replicas,
            history=1,
            max_value_size=config.max_checkpoint_bytes,
        ),
    )
    profiles = await _bucket(
        js,
        KeyValueConfig(
            bucket=names.profiles,
            replicas=config.replicas,
            history=10,  # the last changes of a patient, for a person looking into one
            max_value_size=MAX_PROFILE_BYTES,
        ),
    )
    return leases, workers, checkpoints, profiles


async def ensure_ready(
    js: JetStreamContext, config: ClusterConfig
) -> tuple[KeyValue, KeyValue, KeyValue, KeyValue]:
    """:func:`ensure`, again and again while the cluster is not ready (electing leaders: a
    node just restarted)."""
    backoff = Backoff()
    while True:
        try:
            return await ensure(js, config)
        except Exception as err:
            delay = backoff.next_delay()
            log.warning(
                "cannot set up the streams yet (%s: %s); again in %.1f s",
                type(err).__name__,
                err,
                delay,
            )
            await asyncio.sleep(delay)


async def bucket_keys(
    js: JetStreamContext, bucket: str, pattern: str = ">", *, missing_ok: bool = False
) -> dict[str, int]:
    """Keys of ``bucket`` matching the subject ``pattern``, with their message counts, in
    one request (nats-py's ``KeyValue.keys`` walks the whole bucket and filters by
    substring). A bucket that is not there raises ``NotFoundError`` (with ``missing_ok``:
    none)."""
    prefix = f"$KV.{bucket}."
    try:
        info = await js.stream_info(f"KV_{bucket}", subjects_filter=prefix + pattern)
    except NotFoundError:
        if missing_ok:
            return {}
        raise
    return {s[len(prefix) :]: n for s, n in (info.state.subjects or {}).items()}
