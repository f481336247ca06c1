"""``heatmon export``: one patient's series to CSV, Parquet or JSON lines.

One file per measurement, ``<patient>_<measurement>.<ext>``, with a ``time`` column in
ISO 8601 UTC (CSV, JSON lines) or as a UTC timestamp (Parquet). The range is read in
windows of ``window_s`` and each window is appended to the file before the next is read,
so memory stays that of one window however long the range, and the progress bar counts
real windows done. The columns are fixed before the first window from the measurement's
schema (``SHOW TAG KEYS``, ``SHOW FIELD KEYS``), so every window has the same columns and
every Parquet column its InfluxDB type, even where a window lacks a field or has no rows.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import IO, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.errors import HeatmonError, InputError
from monitor.profile import PATIENT_ID_PATTERN
from monitor.storage import lineprotocol as lp
from monitor.storage.query import HeatmonStore, TimeLike, quote_ident, to_epoch_ns

log = logging.getLogger(__name__)

ExportFormat = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "parquet", "jsonl")
EXPORTED: tuple[str, ...] = (lp.VITALS, lp.THERMAL, lp.ALERTS, lp.SESSIONS, lp.SYMPTOMS)
"""What ``export`` writes (alerts carry their acknowledgements)."""
WINDOW_S = 6 * 3600.0
"""Each query covers this much time (default)."""
WINDOW_LIMITS_S = (1.0, 366 * 86_400.0)
"""A window shorter or longer than these is a typing slip (``--window-hours 1e-15``)."""
MAX_WINDOWS = 100_000
"""Windows (queries per measurement) one export may take: 68 years in 6-h windows. More is
a range typed wrong (``--stop 1e300``), refused before anything is read."""

FIELD_TYPES: Mapping[str, pa.DataType] = MappingProxyType(
    {
        "float": pa.float64(),
        "integer": pa.int64(),
        "unsigned": pa.uint64(),
        "string": pa.string(),
        "boolean": pa.bool_(),
    }
)
"""InfluxDB field type (``SHOW FIELD KEYS``) → Parquet column type."""
NULLABLE_INTEGERS: Mapping[pa.DataType, str] = MappingProxyType(
    {pa.int64(): "Int64", pa.uint64(): "UInt64"}
)
TIME_TYPE = pa.timestamp("ns", tz="UTC")
ALERT_ACK_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("acked_at", TIME_TYPE),
    ("acked_by", pa.string()),
)
"""Columns :meth:`HeatmonStore.alerts` adds to ``alerts``."""

Progress = Callable[[int, int], None]
"""``progress(windows_done, rows_written)``, called after each window."""


def export_schema(store: HeatmonStore, measurement: str) -> pa.Schema:
    """The columns of an export: ``time``, then tags and fields sorted by name (as
    InfluxQL's ``SELECT *`` orders them), with their types."""
    columns: dict[str, pa.DataType] = {}
    for result in store.execute(f"SHOW TAG KEYS FROM {quote_ident(measurement)}")[:1]:
        for series in result.get("series", []):
            for (key,) in series.get("values", []):
                columns[str(key)] = pa.string()
    for result in store.execute(f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")[:1]:
        for series in result.get("series", []):
            for key, kind in series.get("values", []):
                columns[str(key)] = FIELD_TYPES.get(str(kind), pa.string())
    fields = [pa.field("time", TIME_TYPE)]
    fields += [pa.field(name, columns[name]) for name in sorted(columns)]
    if measurement == lp.ALERTS:
        fields += [pa.field(name, kind) for name, kind in ALERT_ACK_COLUMNS]
    return pa.schema(fields)


def _conform(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """``frame`` with exactly the schema's columns; a column with no value in this window
    is all ``None`` (not float NaN), so it converts to any column type."""
    out = frame.reindex(columns=schema.names)
    for field in schema:
        name = field.name
        if out[name].isna().all():
            out[name] = pd.Series([None] * len(out), index=out.index, dtype=object)
        elif field.type in NULLABLE_INTEGERS:  # 1, never 1.0 when a row lacks the field
            out[name] = out[name].astype(NULLABLE_INTEGERS[field.type])
        elif field.type == pa.float64():  # 85.0, though InfluxDB's JSON says 85
            out[name] = out[name].astype("float64")
    return out


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet takes a cell that starts with one of these as a formula (CWE-1236)."""


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for a CSV: text (a symptom note a patient typed, who acknowledged, a
    device name a gateway sent) that a spreadsheet would run as a formula gets a leading
    ``'`` (OWASP's advice). Numbers are left alone; Parquet and JSON Lines, read by
    programs, keep the text as it was."""
    out = frame
    for name in frame.columns:
        column = frame[name]
        if not pd.api.types.is_object_dtype(column) and not pd.api.types.is_string_dtype(column):
            continue
        risky = column.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
        if risky.any():
            if out is frame:
                out = frame.copy()
            out[name] = column.mask(risky, "'" + column.astype(str))
    return out


def _text_times(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


class _ExportFile:
    """One output file, written window by window."""

    def __init__(self, *, path: Path, fmt: ExportFormat, schema: pa.Schema) -> None:
        self.path = path
        self.fmt = fmt
        self.schema = schema
        self.rows = 0
        self._text: IO[str] | None = None
        self._parquet: pq.ParquetWriter | None = None

    def open(self) -> None:
        if self.fmt == "parquet":
            self._parquet = pq.ParquetWriter(self.path, self.schema)
            return
        self._text = self.path.open("w", encoding="utf-8", newline="")
        if self.fmt == "csv":  # the header, even when no row follows
            pd.DataFrame(columns=self.schema.names).to_csv(self._text, index=False)

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = _conform(frame, self.schema)
        self.rows += len(frame)
        if self._parquet is not None:
            table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
            self._parquet.write_table(table)
            return
        assert self._text is not None, "export file not open"
        text = _text_times(frame)
        if self.fmt == "csv":
            spreadsheet_safe(text).to_csv(self._text, header=False, index=False)
            return
        # json.dumps writes floats exactly (pandas' to_json rounds to 10 digits)
        for record in text.astype(object).where(text.notna(), None).to_dict(orient="records"):
            self._text.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()  # an empty table still gets its schema
            self._parquet = None
        if self._text is not None:
            self._text.close()
            self._text = None


@contextmanager
def _export_file(path: Path, fmt: ExportFormat, schema: pa.Schema) -> Iterator[_ExportFile]:
    out = _ExportFile(path=path, fmt=fmt, schema=schema)
    out.open()
    try:
        yield out
    finally:
        out.close()


def _read(store: HeatmonStore, measurement: str, patient: str, lo: int, hi: int) -> pd.DataFrame:
    if measurement == lp.ALERTS:
        return store.alerts(patient, lo / 1e9, hi / 1e9)
    return store.measurement(measurement, patient, lo / 1e9, hi / 1e9)


def export_windows(
    store: HeatmonStore, start: TimeLike, stop: TimeLike, *, window_s: float = WINDOW_S
) -> list[tuple[int, int]]:
    """The windows of an export, once the range and window are known to be sane: counted
    before they are made, so a range of centuries is an error at once, not a hang."""
    lo_s, hi_s = WINDOW_LIMITS_S
    if not lo_s <= window_s <= hi_s:  # NaN and infinities fail this too
        raise InputError(
            f"a window of {window_s / 3600:g} h is outside {lo_s / 3600:g} h … "
            f"{hi_s / 86_400:g} days",
            where="--window-hours",
        )
    lo, hi = to_epoch_ns(start), to_epoch_ns(stop)
    if lo >= hi:
        raise InputError(f"start {start!r} is not before stop {stop!r}", where="--start")
    step = int(window_s * 1e9)
    count = -(-(hi - lo) // step)
    if count > MAX_WINDOWS:
        raise InputError(
            f"{str(start)[:40]!r} … {str(stop)[:40]!r} is {count:.3g} windows of "
            f"{window_s / 3600:g} h, more than {MAX_WINDOWS:,}: check the range (epoch "
            "seconds, not milliseconds?) or give a longer --window-hours",
            where="--stop",
        )
    return list(store.windows(start, stop, step_s=window_s))


def export_steps(
    store: HeatmonStore,
    start: TimeLike,
    stop: TimeLike,
    *,
    measurements: Sequence[str] = EXPORTED,
    window_s: float = WINDOW_S,
) -> int:
    """How many windows :func:`export_patient` reads (the progress bar's total)."""
    return len(measurements) * len(export_windows(store, start, stop, window_s=window_s))


def export_patient(
    store: HeatmonStore,
    *,
    patient: str,
    start: TimeLike,
    stop: TimeLike,
    fmt: ExportFormat,
    out_dir: Path,
    measurements: Sequence[str] = EXPORTED,
    window_s: float = WINDOW_S,
    progress: Progress | None = None,
) -> dict[str, tuple[Path, int]]:
    """Write one file per measurement, window by window; returns measurement → (path,
    rows). ``progress(windows_done, rows_written)`` is called after each window; the
    total is :func:`export_steps`."""
    if fmt not in FORMATS:
        raise HeatmonError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not re.fullmatch(PATIENT_ID_PATTERN, patient):
        # It names the files: "../x" would write beside out_dir, not in it.
        raise InputError(
            f"{patient[:70]!r} is not a pseudonymous patient id "
            "(letters, digits, '.', '_', '-'; `heatmon pseudonym` gives one)",
            where="--patient",
        )
    windows = export_windows(store, start, stop, window_s=window_s)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, tuple[Path, int]] = {}
    done = rows = 0
    for measurement in measurements:
        path = out_dir / f"{patient}_{measurement}.{fmt}"
        with _export_file(path, fmt, export_schema(store, measurement)) as out:
            for lo, hi in windows:
                before = out.rows
                out.write(_read(store, measurement, patient, lo, hi))
                done += 1
                rows += out.rows - before
                if progress is not None:
                    progress(done, rows)
        written[measurement] = (path, out.rows)
        log.info("exported %d rows of %s for %s to %s", out.rows, measurement, patient, path)
    return written
