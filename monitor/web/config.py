"""The ``[web]`` section of ``heatmon.toml``: where the dashboard listens, who may log in,
which patients each caregiver sees, and the patients' access tokens.

Passwords and tokens are never in the file in clear: caregivers have argon2 hashes made by
``heatmon web hash-password``; patients have the SHA-256 of a random token made by
``heatmon web patient-token`` (the token itself goes into the link on the patient's phone).

.. code-block:: toml

    [web]
    host = "127.0.0.1"
    port = 8080
    public_url = "https://heatmon.example.org"   # for printed links; optional
    secure_cookies = true                         # behind HTTPS
    trusted_proxies = ["127.0.0.1"]               # the reverse proxy in front of it

    [web.users.physio1]
    password_hash = "$argon2id$v=19$m=65536,t=3,p=4$..."
    patients = ["p-0001", "p-0002"]

    [web.patient_tokens]
    "p-0001" = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

    [web.history]                                  # InfluxDB the history view reads
    url = "http://127.0.0.1:8086"
    database = "heatmon"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from monitor.plugins import validate_options
from monitor.profile import LOGIN_PATTERN as LOGIN_PATTERN
from monitor.profile import PATIENT_ID_PATTERN
from monitor.strict import StrictModel
from monitor.web.forwarded import MAX_TRUSTED_PROXIES, parse_network

SHA256_HEX_PATTERN = r"^[0-9a-f]{64}$"


class UserConfig(StrictModel):
    """A caregiver who may log in, and the patients assigned to them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    password_hash: str = Field(min_length=20, pattern=r"^\$argon2(id|i|d)\$")
    patients: tuple[str, ...] = ()

    @field_validator("patients")
    @classmethod
    def _check_patients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for p in value:
            if not re.fullmatch(PATIENT_ID_PATTERN, p):
                raise ValueError(f"{p!r} is not a valid patient id")
        return value


class HistoryConfig(StrictModel):
    """The InfluxDB the history view reads with InfluxQL (1.x, or 2.x/3.x v1-compatible API)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    url: str = Field(default="", pattern=r"^(https?://.+)?$")
    database: str = "heatmon"
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    token: str = ""
    timeout_s: float = Field(default=10.0, gt=0, le=120)


MAX_SESSION_TTL_S = 30 * 24 * 3600.0
MAX_LOGIN_WINDOW_S = 24 * 3600.0


class WebConfig(StrictModel):
    # TOML has inf and nan: an endless session_ttl_s made every answer that sets a cookie a 500
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = Field(default="", pattern=r"^(https?://[^\s]+)?$")
    secure_cookies: bool = False
    session_ttl_s: float = Field(default=12 * 3600.0, gt=60, le=MAX_SESSION_TTL_S)
    max_sessions: int = Field(default=10_000, ge=10)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_s: float = Field(default=300.0, gt=0, le=MAX_LOGIN_WINDOW_S)
    history_minutes: float = Field(default=30.0, gt=0, le=240)
    max_subscriber_backlog: int = Field(default=2000, ge=10)
    request_timeout_s: float = Field(default=15.0, gt=0, le=300)
    symptoms_per_minute: int = Field(default=10, ge=1, le=600)
    """Symptom reports taken for one patient in any minute (the patient page waits 3 s
    between presses; a caregiver may report too); more are answered 429 and counted."""
    """A client has this long to send a request's head, and again its body; a connection
    idle this long between requests is closed (slow or silent clients hold no socket)."""
    trusted_proxies: tuple[str, ...] = Field(default=(), max_length=MAX_TRUSTED_PROXIES)
    """Reverse proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed, only on connections from them
    (:mod:`monitor.web.forwarded`); empty: the headers are ignored."""
    static_dir: str = ""
    users: dict[str, UserConfig] = Field(default_factory=dict)
    patient_tokens: dict[str, str] = Field(default_factory=dict)
    history: HistoryConfig = HistoryConfig()

    @field_validator("users")
    @classmethod
    def _check_logins(cls, value: dict[str, UserConfig]) -> dict[str, UserConfig]:
        for login in value:
            if not re.fullmatch(LOGIN_PATTERN, login):
                raise ValueError(f"login {login!r} may only hold letters, digits and ._@-")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(parse_network(text)) for text in value)

    @field_validator("patient_tokens")
    @classmethod
    def _check_tokens(cls, value: dict[str, str]) -> dict[str, str]:
        for patient, digest in value.items():
            if not re.fullmatch(PATIENT_ID_PATTERN, patient):
                raise ValueError(f"{patient!r} is not a valid patient id")
            if not re.fullmatch(SHA256_HEX_PATTERN, digest):
                raise ValueError(
                    f"token of {patient!r} must be the SHA-256 hex digest made by "
                    "`heatmon web patient-token`, not the token itself"
                )
        return value


def parse_web_config(data: Mapping[str, Any], *, where: str = "web") -> WebConfig:
    """Validate the ``[web]`` section; the error names every bad key."""
    return validate_options(WebConfig, data, section=where)
