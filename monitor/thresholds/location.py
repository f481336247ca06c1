"""Where the personal-thresholds store lives, so that the service's ``thresholds`` sink and
``heatmon profile`` agree: a SQLite file (``[sinks.thresholds] path``, else the care team's
SQLite file, else ``<data_dir>/thresholds.sqlite``) or the care team's PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError
from monitor.thresholds.store import ThresholdStore

DEFAULT_FILE = "thresholds.sqlite"


def store_path(config: Any, options: Mapping[str, Any] | None = None) -> Path:
    """Where the store of ``config`` lives (the service and ``heatmon profile`` agree)."""
    opts = options
    if opts is None:
        sinks = getattr(config, "sinks", {}) or {}
        opts = {k: v for k, v in dict(sinks.get("thresholds", {}) or {}).items() if k == "path"}
    path = str(opts.get("path", "") or "")
    if path:
        return Path(path)
    shared = _careteam_file(config)
    if shared is not None:  # the care-team store's SQLite file holds these tables too
        return shared
    data_dir = Path(getattr(getattr(config, "monitor", None), "data_dir", "var"))
    return data_dir / DEFAULT_FILE


def shared_url(config: Any, options: Mapping[str, Any] | None = None) -> str | None:
    """The care team's PostgreSQL, when ``config`` has one and names no SQLite file for the
    thresholds: the suggestions then live there (all web instances see them)."""
    opts = options
    if opts is None:
        sinks = getattr(config, "sinks", {}) or {}
        opts = dict(sinks.get("thresholds", {}) or {})
    if str(opts.get("path", "") or ""):
        return None
    from monitor.careteam.config import store_url

    try:
        url = store_url(config)
    except ConfigError:
        return None
    return url if url is not None and url.startswith("postgresql") else None


def open_store(*, path: Path, url: str | None) -> ThresholdStore:
    return ThresholdStore(url=url) if url is not None else ThresholdStore(path=path)


def _careteam_file(config: Any) -> Path | None:
    from monitor.careteam.config import sqlite_file, store_url

    try:
        return sqlite_file(store_url(config))
    except ConfigError:
        return None
