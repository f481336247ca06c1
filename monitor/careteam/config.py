"""The ``[careteam]`` section: where the care-team store lives. No section (or
``enabled = false``) means today's configuration-only deployment: users, assignments,
patients and tokens come from the TOML file alone.

.. code-block:: toml

    [careteam]                      # SQLite under data_dir: <data_dir>/careteam.sqlite
    # url = "postgresql://heatmon@db.example.org/heatmon"   # several web instances
    # poll_s = 1.0                  # how fast other instances' changes are picked up

The URL may carry a password: set it from the environment (``HEATMON_CARETEAM_URL``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from monitor.careteam.base import sqlite_url
from monitor.errors import ConfigError
from monitor.strict import StrictModel

DEFAULT_FILE = "careteam.sqlite"
ENV_URL = "HEATMON_CARETEAM_URL"


class CareTeamConfig(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    url: str = Field(default="", pattern=r"^((sqlite|postgresql)(\+[a-z]+)?://.*)?$")
    poll_s: float = Field(default=1.0, gt=0.05, le=60)


def careteam_config(config: Any, environ: Mapping[str, str] | None = None) -> CareTeamConfig | None:
    """The ``[careteam]`` section of a :class:`~monitor.config.HeatmonConfig`, or ``None``
    when there is no store (configuration-only deployments)."""
    env = os.environ if environ is None else environ
    raw = getattr(config, "careteam", None)
    if raw is None and ENV_URL not in env:
        return None
    section = dict(raw or {})
    if ENV_URL in env:
        section["url"] = env[ENV_URL]
    try:
        parsed = CareTeamConfig.model_validate(section)
    except ValidationError as err:
        lines = ["careteam: invalid configuration"]
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            lines.append(f"  careteam.{key}: {e['msg']}")
        raise ConfigError("\n".join(lines)) from err
    return parsed if parsed.enabled else None


def store_url(config: Any, environ: Mapping[str, str] | None = None) -> str | None:
    """The database URL of ``config``'s care-team store, ``None`` without one."""
    section = careteam_config(config, environ)
    if section is None:
        return None
    if section.url:
        return section.url
    data_dir = Path(getattr(getattr(config, "monitor", None), "data_dir", "var"))
    return sqlite_url(data_dir / DEFAULT_FILE)


def sqlite_file(url: str | None) -> Path | None:
    """The file of a ``sqlite:///`` URL (the threshold store then shares it)."""
    if url is None or not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///"))
