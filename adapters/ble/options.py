"""The ``[sources.ble]`` options: defaults and bounds, checked by
:func:`monitor.plugins.validate_options` like every plugin's."""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from monitor.strict import StrictModel

SCAN_TIMEOUT_S = 10.0
"""How long one scan for a device lasts before the source backs off and scans again."""
CONNECT_TIMEOUT_S = 30.0
"""Connect, discover, read and subscribe must finish within this."""
CONNECT_ATTEMPTS = 2
"""Attempts inside one ``establish_connection`` call (bleak-retry-connector)."""
RECONNECT_BASE_S = 0.5
RECONNECT_MAX_S = 30.0


class BleOptions(StrictModel):
    """``[sources.ble]``. The upper bounds keep a wearable that dropped out from being looked
    for again only after hours; ``nan`` and ``inf`` are refused (with ``nan`` every scan
    would end at once)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    scan_timeout_s: float = Field(default=SCAN_TIMEOUT_S, gt=0, le=600)
    connect_timeout_s: float = Field(default=CONNECT_TIMEOUT_S, gt=0, le=600)
    connect_attempts: int = Field(default=CONNECT_ATTEMPTS, gt=0, le=100)
    reconnect_base_s: float = Field(default=RECONNECT_BASE_S, gt=0, le=60)
    reconnect_max_s: float = Field(default=RECONNECT_MAX_S, gt=0, le=3600)

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_not_below_base(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("reconnect_base_s", RECONNECT_BASE_S)
        if value < base:
            raise ValueError(f"must be >= reconnect_base_s ({base})")
        return value
