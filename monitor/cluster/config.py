"""``[cluster]``: run ``heatmon run`` as one worker of a NATS JetStream cluster
(docs/scaling.md). Absent, heatmon runs as one process exactly as before.

The password never sits in the file: ``HEATMON_CLUSTER_PASSWORD`` sets it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from monitor.mqtt.topics import DEFAULT_PREFIX
from monitor.strict import StrictModel

_NAME = r"^[A-Za-z0-9_-]{1,32}$"


class ClusterConfig(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: tuple[str, ...] = Field(min_length=1, max_length=32)
    """NATS URLs of the cluster's servers (the client fails over between them)."""
    user: str | None = None
    password: SecretStr | None = None
    root: str = Field(default="hm", pattern=r"^[a-z][a-z0-9_]{0,15}$")
    """First token of heatmon's own subjects and prefix of its streams and buckets."""
    topic_prefix: str = DEFAULT_PREFIX
    """The MQTT topic prefix the gateways use (as in ``[sinks.mqtt]``)."""
    partitions: int = Field(default=16, ge=1, le=1024)
    """Fixed for the life of the streams: the mapping hashes patients onto this many."""
    replicas: int = Field(default=3, ge=1, le=5)
    worker_id: str | None = Field(default=None, pattern=_NAME)
    """Defaults to the instance name plus the process id."""
    lease_ttl_s: float = Field(default=6.0, ge=1.0, le=300.0)
    """A partition whose owner stops renewing for this long is taken over."""
    checkpoint_interval_s: float = Field(default=5.0, gt=0.0, le=600.0)
    retention_s: float = Field(default=24 * 3600.0, ge=60.0, le=30 * 24 * 3600.0)
    """How long the inbound stream keeps samples (the longest replay possible)."""
    duplicate_window_s: float = Field(default=600.0, ge=10.0, le=24 * 3600.0)
    """Outputs published twice within this window are stored once."""
    fetch_batch: int = Field(default=64, ge=1, le=10_000)
    max_checkpoint_bytes: int = Field(default=256 * 1024, ge=4096, le=1024 * 1024)
    clock: Literal["wall", "samples"] = "wall"
    """What tells the engine that time passes: the wall clock, or the newest sample's time
    (replays and simulations whose sample times run faster than the wall clock)."""

    @field_validator("servers")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("nats://", "tls://")):
                raise ValueError(f"{url[:80]!r} is not a nats:// or tls:// URL")
        return value

    @model_validator(mode="after")
    def _check(self) -> ClusterConfig:
        if self.checkpoint_interval_s * 2 > self.duplicate_window_s:
            raise ValueError(
                "duplicate_window_s must be at least twice checkpoint_interval_s, or a takeover "
                "could send an alert twice"
            )
        return self
