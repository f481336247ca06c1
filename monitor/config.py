"""The one configuration file: a TOML document, validated at start.

Secrets never live in the file: every ``*_password`` / ``*_token`` key may be set from
the environment (``HEATMON_<SECTION>_<KEY>``, e.g. ``HEATMON_INFLUXDB_TOKEN``), which
also overrides the file. Errors name the key and say what is wrong.
"""

from __future__ import annotations

import os
import tomllib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.cluster.config import ClusterConfig
from monitor.errors import ConfigError
from monitor.profile import PatientProfile
from monitor.strict import StrictModel

ENV_PREFIX = "HEATMON_"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""A configuration file larger than this is refused before parsing."""
MAX_PATIENTS = 100_000
MAX_DEVICES = 100_000
MAX_PLUGINS = 32


class DeviceConfig(StrictModel):
    """A wearable, and which patient wears it in which role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field(min_length=1, max_length=64)
    patient: str = Field(min_length=1, max_length=64)
    role: str = Field(pattern=r"^(heart_rate|skin_temp|core)$")
    name: str | None = Field(default=None, max_length=80)


class EngineConfig(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    estimator: str = Field(default="heat_balance", max_length=64)
    step_s: float = Field(default=10.0, gt=0, le=60)
    window_phase: Literal["clock", "patient"] = "clock"
    """Where windows end: on multiples of the step, or at an offset of each patient's own
    within the step (spreads the work and the alerts of many patients over the seconds)."""
    stale_after_s: float = Field(default=30.0, gt=0, le=3600)
    use_measured_core: bool = True

    @field_validator("estimator")
    @classmethod
    def _known_estimator(cls, value: str) -> str:
        # Imported here: the engine package imports this module.
        from monitor.engine.estimators import ESTIMATORS

        if value not in ESTIMATORS:
            raise ValueError(f"unknown estimator {value!r}; known: {', '.join(sorted(ESTIMATORS))}")
        return value


class MonitorConfig(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: str = Field(default="heatmon", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    data_dir: str = Field(default="var", min_length=1, max_length=4096)


class HeatmonConfig(StrictModel):
    """The whole file. ``sources`` and ``sinks`` are plugin name → that plugin's options."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    monitor: MonitorConfig = MonitorConfig()
    engine: EngineConfig = EngineConfig()
    patients: tuple[PatientProfile, ...] = Field(default=(), max_length=MAX_PATIENTS)
    devices: tuple[DeviceConfig, ...] = Field(default=(), max_length=MAX_DEVICES)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=MAX_PLUGINS)
    sinks: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=MAX_PLUGINS)
    web: dict[str, Any] = Field(default_factory=dict)
    careteam: dict[str, Any] | None = None
    """The care-team store (``monitor/careteam/config.py``); absent: configuration only."""
    cluster: ClusterConfig | None = None
    """Set: ``heatmon run`` is one worker of a NATS JetStream cluster (docs/scaling.md)."""

    @model_validator(mode="after")
    def _check_refs(self) -> HeatmonConfig:
        ids = Counter(p.id for p in self.patients)
        dupes = sorted(i for i, n in ids.items() if n > 1)
        if dupes:
            raise ValueError(f"patient ids must be unique; repeated: {', '.join(dupes)}")
        known = set(ids)
        for n, device in enumerate(self.devices):
            if device.patient not in known:
                raise ValueError(
                    f"devices[{n}].patient {device.patient!r} is not one of the patients"
                )
        return self

    def profile(self, patient: str) -> PatientProfile | None:
        for p in self.patients:
            if p.id == patient:
                return p
        return None


def _format_validation_error(err: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid configuration"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {key}: {e['msg']}")
    return "\n".join(lines)


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Override ``[section] key`` (and ``[sinks.name] key``) from ``HEATMON_SECTION_KEY``."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for group in ("sources", "sinks"):
        plugins = out.get(group)
        if isinstance(plugins, dict):
            out[group] = {k: dict(v) if isinstance(v, dict) else v for k, v in plugins.items()}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("_", 1)
        if len(parts) != 2:
            continue
        section, key = parts
        for group in ("sinks", "sources"):
            plugins = out.get(group)
            if isinstance(plugins, dict) and isinstance(plugins.get(section), dict):
                plugins[section][key] = value
                break
        else:
            if section in ("monitor", "engine", "web") or (
                section == "cluster" and isinstance(out.get("cluster"), dict)
            ):
                current = out.get(section)
                out[section] = {**(current if isinstance(current, dict) else {}), key: value}
    return out


def parse_config(
    data: dict[str, Any], *, where: str = "config", environ: Mapping[str, str] | None = None
) -> HeatmonConfig:
    merged = apply_env(data, os.environ if environ is None else environ)
    try:
        return HeatmonConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, where)) from err


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> HeatmonConfig:
    """Read, override from the environment and validate ``path``."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read configuration: {err.strerror}") from err
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 (byte {err.start})") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    except RecursionError as err:  # tomllib recurses per nested array or inline table
        raise ConfigError(f"{path}: arrays or tables nested too deeply") from err
    return parse_config(data, where=str(path), environ=environ)
