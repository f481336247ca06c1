"""Replay: re-run detection over a recording, as fast as the machine allows.

Input CSV (``time,patient,heart_rate_bpm,skin_temp_c[,core_temp_c]``) is streamed row by
row: memory holds only the per-patient engines, whatever the file size. A malformed row is
reported with its line number and skipped; the run goes on.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import IO, TextIO

from pydantic import ValidationError

from monitor.config import EngineConfig
from monitor.engine import MonitorEngine, PatientEngine, StepResult
from monitor.errors import InputError
from monitor.model import EventKind, SampleKind, ThermalState, iso_utc
from monitor.profile import PatientProfile
from monitor.pseudonym import pseudonymize

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("time", "patient", "heart_rate_bpm", "skin_temp_c")
OPTIONAL_COLUMNS = ("core_temp_c",)
ESTIMATE_COLUMNS = (
    "time",
    "patient",
    "core_temp_c",
    "core_delta_c",
    "core_temp_sd_c",
    "level",
    "quality",
    "heart_rate_bpm",
    "skin_temp_c",
    "measured_core_c",
    "minutes_to_threshold",
    "strain_index",
    "session",
)
MAX_ERRORS_SHOWN = 20
PROGRESS_EVERY_ROWS = 20_000
MAX_LINE_BYTES = 4096
"""A longer line is rejected (and skipped without being held in memory)."""
MAX_COLUMNS = 64
MAX_PATIENTS = 100_000
"""Distinct patients in one file (each holds an engine in memory)."""
EARLIEST_TIME = 946_684_800.0
"""2000-01-01T00:00:00Z: an earlier sample time is a unit or clock error."""
FUTURE_SLACK_S = 86_400.0
"""A sample time more than this after the replay started is refused."""
SANE: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "heart_rate_bpm": (0.0, 400.0),
        "skin_temp_c": (-50.0, 100.0),
        "core_temp_c": (-50.0, 100.0),
    }
)
"""Beyond these a value is not a reading at all (a unit error, a corrupt file): the row is
refused. Inside them, implausible values reach the engine, which flags and counts them
(``out_of_range``, ``zero``, ``invalid`` for NaN)."""


@dataclass(slots=True)
class ReplayReport:
    rows: int = 0
    samples: int = 0
    rejected_rows: int = 0
    estimates: int = 0
    events: int = 0
    patients: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _shown(text: str) -> str:
    """A cell for an error message: quoted, at most 40 characters."""
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _number(text: str, column: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} {_shown(text)} is not a number") from None
    lo, hi = SANE[column]
    if not math.isnan(value) and not lo <= value <= hi:
        raise ValueError(f"{column} {_shown(text)} is outside {lo:g}…{hi:g}")
    return value


def _time(text: str, latest: float) -> float:
    if not text:
        raise ValueError("time is empty")
    epoch = text[0].isdigit() and "-" not in text and ":" not in text
    try:
        dt = None if epoch else datetime.fromisoformat(text)
        value = float(text) if dt is None else dt.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(f"time {_shown(text)} is neither ISO 8601 nor epoch seconds") from None
    if dt is not None and dt.tzinfo is None:
        raise ValueError(f"time {_shown(text)} has no zone; use UTC (…Z)")
    if not EARLIEST_TIME <= value <= latest:  # NaN and infinities fail this too
        raise ValueError(
            f"time {_shown(text)} is before 2000 or more than a day in the future "
            "(epoch seconds, not milliseconds?)"
        )
    return value


class _Writers:
    """Streams estimates and events to their files as the engine produces them."""

    def __init__(self, events: TextIO, estimates: TextIO, *, all_events: bool) -> None:
        self._events = events
        self._est = csv.writer(estimates, lineterminator="\n")
        self._est.writerow(ESTIMATE_COLUMNS)
        self._all_events = all_events
        self.n_events = 0
        self.n_estimates = 0

    def write(self, result: StepResult) -> None:
        for state in result.states:
            self._state(state)
        for event in result.events:
            if event.kind is EventKind.LEVEL or self._all_events:
                self._events.write(json.dumps(event.to_json_dict(), ensure_ascii=False) + "\n")
                self.n_events += 1

    def _state(self, s: ThermalState) -> None:
        self._est.writerow(
            (
                iso_utc(s.time),
                s.patient,
                f"{s.core_temp_c:.3f}",
                f"{s.core_delta_c:.3f}",
                f"{s.core_temp_sd_c:.3f}",
                s.level.value,
                s.quality.value,
                _fmt(s.heart_rate_bpm, 1),
                _fmt(s.skin_temp_c, 2),
                _fmt(s.measured_core_c, 2),
                _fmt(s.minutes_to_threshold, 1),
                _fmt(s.strain_index, 2),
                s.session,
            )
        )
        self.n_estimates += 1


def bounded_lines(
    raw: IO[bytes],
    progress: Callable[[int], None] | None,
    too_long: Callable[[int], None],
    not_utf8: Callable[[int, str], None] | None = None,
) -> Iterator[str]:
    """The file's lines, decoded (a UTF-8 byte-order mark before the header is dropped); a
    line longer than :data:`MAX_LINE_BYTES` is read in pieces, reported through
    ``too_long(line_number)`` and replaced by an empty line. A line that is not UTF-8 is
    reported through ``not_utf8(line_number, where)`` and replaced by an empty line too
    (decoded with replacement characters, two raw ids that differ in one letter would be
    one patient); without ``not_utf8`` it is decoded with replacement characters."""
    done = 0
    count = 0
    while True:
        line = raw.readline(MAX_LINE_BYTES + 1)
        if not line:
            break
        count += 1
        done += len(line)
        if count == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]  # a spreadsheet's "CSV UTF-8"
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = raw.readline(1 << 16)
                done += len(line)
            too_long(count)
            line = b"\n"
        if progress is not None and count % PROGRESS_EVERY_ROWS == 0:
            progress(done)
        if not_utf8 is None:
            yield line.decode("utf-8", errors="replace")
            continue
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as err:
            not_utf8(count, f"byte 0x{line[err.start]:02x} at column {err.start + 1}")
            yield "\n"
    if progress is not None:
        progress(done)


def csv_rows(lines: Iterable[str]) -> Iterator[list[str] | csv.Error]:
    """Each line as one CSV row of its own (or the :class:`csv.Error` that says why it is
    not one). A recording's cells never span lines, and one ``csv.reader`` over the whole
    file would take every line after a quote left open into that one cell (up to its 128-KB
    field limit): thousands of rows lost as one rejected row, reported at the wrong line. A
    quote left open is reported as such."""
    for line in lines:
        try:
            row = next(csv.reader((line,)), [])
        except csv.Error as err:
            yield err
            continue
        if row and "\n" in row[-1] and line.count('"') % 2:
            yield csv.Error("a quote opened in this line is not closed")
            continue
        yield row


def replay(
    input_path: Path,
    *,
    events_out: TextIO,
    estimates_out: TextIO,
    profiles: Mapping[str, PatientProfile] | None = None,
    config: EngineConfig | None = None,
    all_events: bool = False,
    progress: Callable[[int], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    pseudonym_key: bytes | None = None,
    now: float | None = None,
) -> ReplayReport:
    """Replay ``input_path`` through the engine. ``progress`` gets bytes read so far;
    ``on_error`` gets each rejected row's message (file:line: what is wrong). With
    ``pseudonym_key`` the ``patient`` column holds raw ids, and only their pseudonyms
    (:func:`monitor.pseudonym.pseudonymize`) reach the engine and the outputs. Every row
    is bounded before use (line length, cells, numbers, times after 2000 and at most a day
    after ``now``); a row that is not is rejected, counted and skipped."""
    report = ReplayReport()
    latest = (time.time() if now is None else now) + FUTURE_SLACK_S
    engine = MonitorEngine(
        profiles=profiles or {},
        config=config or EngineConfig(),
        default_profile=lambda pid: PatientProfile(id=pid),
    )
    writers = _Writers(events_out, estimates_out, all_events=all_events)
    name = input_path.name

    def reject(line: int, message: str) -> None:
        report.rejected_rows += 1
        text = f"{name}:{line}: {message}"
        if len(report.errors) < MAX_ERRORS_SHOWN:
            report.errors.append(text)
        if on_error is not None:
            on_error(text)

    engines: dict[str, PatientEngine] = {}
    hr_kind, skin_kind, core_kind = (
        SampleKind.HEART_RATE,
        SampleKind.SKIN_TEMP,
        SampleKind.CORE_TEMP,
    )

    def too_long(line: int) -> None:
        reject(line, f"line longer than {MAX_LINE_BYTES} bytes")

    def not_utf8(line: int, where: str) -> None:
        reject(line, f"line is not UTF-8 ({where}); save the file as CSV UTF-8")

    with input_path.open("rb") as raw:
        reader = csv_rows(bounded_lines(raw, progress, too_long, not_utf8))
        first = next(reader, None)
        if first is None:
            raise InputError("empty file: no header", where=f"{name}:1")
        if isinstance(first, csv.Error):
            raise InputError(f"header is not CSV: {first}", where=f"{name}:1")
        header = [h.strip() for h in first]
        if len(header) > MAX_COLUMNS:
            raise InputError(f"header has more than {MAX_COLUMNS} columns", where=f"{name}:1")
        twice = sorted({c for c in header if c and header.count(c) > 1})
        if twice:
            raise InputError(f"header names {', '.join(twice)} more than once", where=f"{name}:1")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise InputError(
                f"header lacks {', '.join(missing)}; expected {','.join(REQUIRED_COLUMNS)}"
                f"[,{','.join(OPTIONAL_COLUMNS)}]",
                where=f"{name}:1",
            )
        i_time, i_pat = header.index("time"), header.index("patient")
        i_hr, i_skin = header.index("heart_rate_bpm"), header.index("skin_temp_c")
        i_core = header.index("core_temp_c") if "core_temp_c" in header else -1
        width = len(header)
        write = writers.write
        for line_num, row in enumerate(reader, start=2):
            if isinstance(row, csv.Error):
                report.rows += 1
                reject(line_num, f"not a CSV row ({row})")
                continue
            if len(row) != width:
                if not row or row == [""]:
                    continue
                report.rows += 1
                reject(line_num, f"expected {width} cells, found {len(row)}")
                continue
            report.rows += 1
            try:
                t = _time(row[i_time], latest)
                hr = _number(row[i_hr], "heart_rate_bpm")
                skin = _number(row[i_skin], "skin_temp_c")
                core = _number(row[i_core], "core_temp_c") if i_core >= 0 else None
            except ValueError as err:
                reject(line_num, str(err))
                continue
            patient = row[i_pat]
            pe = engines.get(patient)
            if pe is None and len(engines) >= MAX_PATIENTS:
                reject(line_num, f"more than {MAX_PATIENTS} patients in one file")
                continue
            if pe is None and pseudonym_key is not None:
                pe = engines[patient] = engine.engine(pseudonymize(patient, key=pseudonym_key))
            if pe is None:
                try:
                    pe = engines[patient] = engine.engine(patient)
                except (ValidationError, InputError):
                    # not repeated: a cell that is no pseudonym is most likely a raw id
                    reject(
                        line_num,
                        "the patient id is not a valid pseudonym (letters, digits, '.', '_', "
                        "'-'; raw ids need --pseudonymize)",
                    )
                    continue
            for kind, value in ((hr_kind, hr), (skin_kind, skin), (core_kind, core)):
                if value is None:
                    continue
                report.samples += 1
                r = pe.ingest_value(kind, value, t)
                if r.states or r.events:
                    write(r)
    for result in engine.close():
        writers.write(result)
    report.patients = len({pe.profile.id for pe in engines.values()})  # " p1" is "p1"
    for pe in engines.values():
        for flag, n in pe.counters.items():
            report.flags[flag] = report.flags.get(flag, 0) + n
    report.estimates = writers.n_estimates
    report.events = writers.n_events
    return report


def load_profiles(path: Path) -> dict[str, PatientProfile]:
    """Profiles from a TOML file with ``[[patients]]`` tables (the config file will do)."""
    from monitor.config import load_config

    config = load_config(path)
    return {p.id: p for p in config.patients}
