"""Options of the MQTT sink and the gateway (``[sinks.mqtt]`` in ``heatmon.toml``).

Secrets never sit in the file: ``HEATMON_MQTT_PASSWORD`` sets ``password``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, SecretStr, field_validator

from monitor.backoff import BASE_DELAY_S, MAX_DELAY_S, Backoff
from monitor.errors import ConfigError, InputError
from monitor.mqtt.strictjson import MAX_PAYLOAD_BYTES
from monitor.mqtt.topics import DEFAULT_PREFIX, Topics, check_patient_id
from monitor.plugins import validate_options
from monitor.profile import LOGIN_PATTERN
from monitor.strict import StrictModel

_USER = LOGIN_PATTERN


def _check_ids(value: dict[str, list[str]]) -> dict[str, list[str]]:
    for user, patients in value.items():
        for patient in patients:
            try:
                check_patient_id(patient)
            except InputError as err:
                raise ValueError(f"{user}: {err.reason}") from err
    return value


class AclOptions(StrictModel):
    """Who may do what, for the generated Mosquitto ACL (``heatmon mqtt acl``).

    ``gateways``: gateway login → the patients it may publish samples for.
    ``caregivers``: caregiver login → the patients they may read (and acknowledge).
    ``apps``: a patient's own phone login → that patient (state, alerts, symptoms).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    monitor_user: str = Field(default="heatmon", pattern=_USER)
    gateways: dict[str, list[str]] = Field(default_factory=dict)
    caregivers: dict[str, list[str]] = Field(default_factory=dict)
    apps: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("gateways", "caregivers", "apps")
    @classmethod
    def _ids(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for user in value:
            if not re.fullmatch(_USER, user):
                raise ValueError(f"login {user!r} is not a valid MQTT user name for the ACL")
        return _check_ids(value)


class MqttOptions(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    topic_prefix: str = DEFAULT_PREFIX
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=2, le=600)
    reconnect_base_s: float = Field(default=BASE_DELAY_S, gt=0, le=60)
    reconnect_max_s: float = Field(default=MAX_DELAY_S, gt=0, le=600)
    state_qos: int = Field(default=0, ge=0, le=1)
    subscribe_inputs: bool = True
    outbox: str | None = None
    """SQLite file of the alert queue; default ``<data_dir>/mqtt-outbox-<instance>.sqlite``;
    ``":memory:"`` keeps it in memory (tests)."""
    max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=1024, le=16 * 1024 * 1024)
    symptoms_per_minute: int = Field(default=10, ge=1, le=600)
    """Symptom reports taken for one patient in any minute (as ``[web]
    symptoms_per_minute``); the rest are dropped, counted (``symptoms_limited``) and
    acknowledged. Cluster mode's workers apply it to reports sent to the cluster."""
    homeassistant: bool = False
    discovery_prefix: str = Field(default="homeassistant", pattern=r"^[A-Za-z0-9._-]+$")
    acl: AclOptions = AclOptions()

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        try:
            Topics(value)
        except ConfigError as err:
            raise ValueError(str(err)) from err
        return value

    def backoff(self) -> Backoff:
        return Backoff(
            base_s=self.reconnect_base_s, max_s=max(self.reconnect_max_s, self.reconnect_base_s)
        )

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)


def parse_options(options: Mapping[str, Any], *, section: str = "sinks.mqtt") -> MqttOptions:
    return validate_options(MqttOptions, options, section=section, ignore=("enabled",))
