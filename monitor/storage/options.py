"""Options of the ``influxdb`` sink (``[sinks.influxdb]`` in ``heatmon.toml``).

Secrets (``token``, ``password``) come from the environment
(``HEATMON_INFLUXDB_TOKEN``, ``HEATMON_INFLUXDB_PASSWORD``) and are never logged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from monitor.storage.lineprotocol import Precision
from monitor.strict import StrictModel


class InfluxOptions(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(default="http://127.0.0.1:8086", pattern=r"^https?://[^\s/]+(/.*)?$")
    api: Literal["auto", "v1", "v2"] = "auto"
    database: str = Field(default="heatmon", min_length=1, max_length=200)
    retention_policy: str = ""
    bucket: str = ""
    org: str = ""
    token: SecretStr = SecretStr("")
    username: str = ""
    password: SecretStr = SecretStr("")
    precision: Precision = "ns"
    gzip: bool = True
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    create_database: bool = True
    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    flush_interval_s: float | None = Field(default=None, gt=0, le=60)
    """Unset (the default): a batch is sent as soon as the previous write returned, once
    its oldest point has lingered ``linger_s`` (so batches grow with the load and the
    storage lag stays near one write's time). Set: a batch waits until it holds
    ``batch_size`` points or its oldest point has waited this long (fewer, larger
    writes)."""
    linger_s: float = Field(default=0.005, ge=0, le=1)
    """With ``flush_interval_s`` unset: how long the first point of a batch waits for
    others to join it before the batch is sent."""
    max_in_flight: int = Field(default=2, ge=1, le=16)
    """Writes under way at once while the spool holds more than one batch (a backlog, a
    replay after an outage); committed in order, so the spool's position only moves past
    a batch once it and every batch before it are written."""
    spool_interval_s: float = Field(default=0.1, gt=0, le=60)
    """Longest a point stays in memory before it is appended (fsynced) to the spool: what
    a crash, SIGKILL or power loss of heatmon can lose. A stop loses nothing."""
    spool_dir: str = ""
    """Default: ``<monitor.data_dir>/influxdb/spool``."""
    spool_max_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024)
    spool_fsync: bool = True
    quarantine_file: str = ""
    """Default: ``<monitor.data_dir>/influxdb/quarantine.jsonl``."""
    quarantine_max_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    """The quarantine file is rotated beyond this size."""
    quarantine_keep: int = Field(default=3, ge=0, le=100)
    """Rotated quarantine files kept (``quarantine.jsonl.1`` …); older ones are deleted."""
    stop_timeout_s: float = Field(default=5.0, ge=0, le=300)
    """On stop, how long to keep trying to deliver what is spooled before leaving it."""
    downsample: bool = False
    """Create the one-minute continuous queries (InfluxDB 1.x) at start."""

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            # the URL is logged; credentials in it would end up in the logs
            raise ValueError(
                "no credentials in the URL: set username, and the password or token in "
                "HEATMON_INFLUXDB_PASSWORD / HEATMON_INFLUXDB_TOKEN"
            )
        return value.rstrip("/")
