"""``heatmon export``: one patient's series to CSV, Parquet or JSON lines.

One file per measurement, ``<patient>_<measurement>.<ext>``, with a ``time`` column in
ISO 8601 UTC (CSV, JSON lines) or as a UTC timestamp (Parquet). The range is read in
windows, so a long export shows progress and never asks InfluxDB for everything at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from monitor.errors import HeatmonError
from monitor.storage import lineprotocol as lp
from monitor.storage.query import HeatmonStore, TimeLike

log = logging.getLogger(__name__)

ExportFormat = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet", "jsonl")
EXPORTED: tuple[str, ...] = (lp.VITALS, lp.THERMAL, lp.ALERTS, lp.SESSIONS, lp.SYMPTOMS)
"""What ``export`` writes (alerts carry their acknowledgements)."""
WINDOW_S = 6 * 3600.0
"""Each query covers this much time."""


def _read(store: HeatmonStore, measurement: str, patient: str, lo: int, hi: int) -> pd.DataFrame:
    if measurement == lp.ALERTS:
        return store.alerts(patient, lo / 1e9, hi / 1e9)
    return store.measurement(measurement, patient, lo / 1e9, hi / 1e9)


def _write(frame: pd.DataFrame, path: Path, fmt: ExportFormat) -> None:
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
        return
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if fmt == "csv":
        out.to_csv(path, index=False)
        return
    # json.dumps writes floats exactly (pandas' to_json rounds to 10 digits)
    with path.open("w", encoding="utf-8") as f:
        for record in out.astype(object).where(out.notna(), None).to_dict(orient="records"):
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def export_patient(
    store: HeatmonStore,
    *,
    patient: str,
    start: TimeLike,
    stop: TimeLike,
    fmt: ExportFormat,
    out_dir: Path,
    measurements: Sequence[str] = EXPORTED,
    advance: Callable[[int], None] | None = None,
) -> dict[str, tuple[Path, int]]:
    """Write one file per measurement; returns measurement → (path, rows).

    ``advance(n)`` is called after each window (for a progress bar); the total number of
    steps is ``len(measurements) * len(list(store.windows(start, stop, step_s=WINDOW_S)))``.
    """
    if fmt not in FORMATS:
        raise HeatmonError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    windows = list(store.windows(start, stop, step_s=WINDOW_S))
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, tuple[Path, int]] = {}
    for measurement in measurements:
        frames = []
        for lo, hi in windows:
            frame = _read(store, measurement, patient, lo, hi)
            if not frame.empty:
                frames.append(frame)
            if advance is not None:
                advance(1)
        data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"time": []})
        path = out_dir / f"{patient}_{measurement}.{fmt}"
        _write(data, path, fmt)
        written[measurement] = (path, len(data))
        log.info("exported %d rows of %s for %s to %s", len(data), measurement, patient, path)
    return written
