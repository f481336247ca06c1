"""``heatmon replay`` as a researcher runs it: files in, files out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from monitor.model import iso_utc
from monitor.replay import replay

T0 = 1_750_000_000


def heatmon(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_hot_session(path: Path, *, patients: tuple[str, ...], epoch: bool = False) -> None:
    """Rest 5 min at 65 bpm, then hard work at 150 bpm for 40 min, interleaved patients."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "patient", "heart_rate_bpm", "skin_temp_c"])
        for t in range(0, 45 * 60):
            stamp = str(T0 + t) if epoch else iso_utc(T0 + t)
            for p in patients:
                w.writerow([stamp, p, 65 if t < 300 else 150, "" if t % 5 else 33.5])


def read_events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("epoch", [False, True])
def test_replay_contract(tmp_path: Path, epoch: bool) -> None:
    src = tmp_path / "in.csv"
    write_hot_session(src, patients=("p1", "p2"), epoch=epoch)
    events_out, est_out = tmp_path / "events.jsonl", tmp_path / "est.csv"
    r = heatmon("replay", src, "--events-out", events_out, "--estimates-out", est_out)
    assert r.returncode == 0, r.stderr
    events = read_events(events_out)
    for e in events:
        assert {"time", "patient", "level", "core_delta_c", "message"} <= e.keys()
        assert str(e["time"]).endswith("Z")
    for p in ("p1", "p2"):
        levels = [e["level"] for e in events if e["patient"] == p]
        assert levels[:2] == ["caution", "cool_down"]
    with est_out.open() as f:
        rows = list(csv.DictReader(f))
    assert {"time", "patient", "core_temp_c", "core_delta_c"} <= rows[0].keys()
    # At least one estimate per 10 s of input with data, per patient.
    for p in ("p1", "p2"):
        assert sum(1 for row in rows if row["patient"] == p) >= 45 * 60 // 10
    rises = [float(row["core_delta_c"]) for row in rows if row["patient"] == "p1"]
    assert rises[-1] > 0.5
    assert "samples/s" in r.stderr


def test_malformed_rows_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    lines = ["time,patient,heart_rate_bpm,skin_temp_c"]
    for t in range(600):
        lines.append(f"{iso_utc(T0 + t)},p1,70,33.0")
    lines[101] = f"{iso_utc(T0 + 100)},p1,abc,33.0"  # line 102 of the file
    lines[201] = "yesterday,p1,70,33.0"  # line 202
    lines[301] = f"{iso_utc(T0 + 300)},p1,70"  # line 302: a cell short
    lines[401] = f"{iso_utc(T0 + 400)},p/1,70,33.0"  # line 402: not a pseudonym
    src.write_text("\n".join(lines) + "\n")
    events_out, est_out = tmp_path / "events.jsonl", tmp_path / "est.csv"
    r = heatmon("replay", src, "--events-out", events_out, "--estimates-out", est_out)
    assert r.returncode == 0
    assert "bad.csv:102: heart_rate_bpm 'abc' is not a number" in r.stderr
    assert "bad.csv:202: time 'yesterday'" in r.stderr
    assert "bad.csv:302: expected 4 cells, found 3" in r.stderr
    assert "bad.csv:402: the patient id is not a valid pseudonym" in r.stderr
    assert "rejected rows 4" in r.stderr
    with est_out.open() as f:
        times = [row["time"] for row in csv.DictReader(f)]
    assert times[-1] >= iso_utc(T0 + 590)  # the run went on to the end


def test_implausible_values_are_flagged_and_counted(tmp_path: Path) -> None:
    src = tmp_path / "flags.csv"
    rows = ["time,patient,heart_rate_bpm,skin_temp_c"]
    for t in range(300):
        value = "250" if t == 100 else ("0" if t == 150 else "nan" if t == 200 else "70")
        rows.append(f"{T0 + t},p1,{value},50.0")
    rows.append(f"{T0 + 250.5},p1,70,33")  # out of order (a time not seen before)
    src.write_text("\n".join(rows) + "\n")
    r = heatmon(
        "replay", src, "--events-out", tmp_path / "e.jsonl", "--estimates-out", tmp_path / "s.csv"
    )
    assert r.returncode == 0
    for flag in ("out_of_range", "zero", "invalid", "out_of_order"):
        assert flag in r.stderr


def test_missing_header_column_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "nohdr.csv"
    src.write_text("time,patient,heart_rate_bpm\n1,p1,70\n")
    r = heatmon("replay", src, "--events-out", tmp_path / "e", "--estimates-out", tmp_path / "s")
    assert r.returncode == 2
    assert "nohdr.csv:1: header lacks skin_temp_c" in r.stderr


def test_profiles_file_sets_thresholds(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    write_hot_session(src, patients=("p1",))
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[[patients]]\nid = "p1"\nthreshold_rise_c = 1.5\ncaution_margin_c = 0.3\n')
    out = tmp_path / "events.jsonl"
    r = heatmon(
        "replay",
        src,
        "--events-out",
        out,
        "--estimates-out",
        tmp_path / "s.csv",
        "--profiles",
        profiles,
    )
    assert r.returncode == 0, r.stderr
    default_out = tmp_path / "default.jsonl"
    heatmon("replay", src, "--events-out", default_out, "--estimates-out", tmp_path / "s2.csv")
    first_strict = read_events(default_out)[1]["time"]
    later = [e for e in read_events(out) if e["level"] == "cool_down"]
    assert not later or str(later[0]["time"]) > str(first_strict)


def test_simulate_then_replay_with_measured_core(tmp_path: Path) -> None:
    rec = tmp_path / "sim.csv"
    r = heatmon(
        "simulate", rec, "--patients", "2", "--minutes", "20", "--scenario", "hot_day_aerobic"
    )
    assert r.returncode == 0, r.stderr
    header = rec.read_text().splitlines()[0]
    assert header == "time,patient,heart_rate_bpm,skin_temp_c,core_temp_c"
    est = tmp_path / "est.csv"
    r = heatmon("replay", rec, "--events-out", tmp_path / "e.jsonl", "--estimates-out", est)
    assert r.returncode == 0, r.stderr
    with est.open() as f:
        rows = list(csv.DictReader(f))
    assert all(row["measured_core_c"] for row in rows[-5:])


def _peak_rss_kib(src: Path, tmp_path: Path) -> int:
    code = (
        "import resource, sys\nfrom pathlib import Path\nfrom monitor.replay import replay\n"
        "with open(sys.argv[2], 'w') as e, open(sys.argv[3], 'w') as s:\n"
        "    replay(Path(sys.argv[1]), events_out=e, estimates_out=s)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(src), str(tmp_path / "e"), str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(r.stdout)


@pytest.mark.slow
def test_replay_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    short, long = tmp_path / "short.csv", tmp_path / "long.csv"
    for path, minutes in ((short, "5"), (long, "30")):
        r = heatmon("simulate", path, "--patients", "50", "--minutes", minutes, "--no-core")
        assert r.returncode == 0, r.stderr
    assert long.stat().st_size > 5 * short.stat().st_size
    grown_kib = _peak_rss_kib(long, tmp_path) - _peak_rss_kib(short, tmp_path)
    assert grown_kib < 4 * 1024


def test_hostile_rows_are_bounded_rejected_with_file_line_and_counted(tmp_path: Path) -> None:
    src = tmp_path / "hostile.csv"
    good = [f"{T0 + t},p1,70,33.0" for t in range(400)]
    bad = {
        51: f"{T0 + 50},p1,1e308,33.0",  # a number far beyond any reading
        61: f"{T0 + 60},p1,70,-inf",
        71: "1e20,p1,70,33.0",  # a time centuries ahead
        81: f"{(T0 + 80) * 1000},p1,70,33.0",  # milliseconds
        91: "1970-01-01T00:00:01Z,p1,70,33.0",
        101: "99999-01-01T00:00:00Z,p1,70,33.0",
        111: f"{T0 + 110},p1," + "7" * 10_000 + ",33.0",  # one line far too long
        121: f'{T0 + 120},p1,"70,33.0',  # an unclosed quote swallows what follows
    }
    lines = ["time,patient,heart_rate_bpm,skin_temp_c"]
    for n, row in enumerate(good, start=2):
        lines.append(bad.get(n, row))
    src.write_text("\n".join(lines[:121]) + "\n" + "\n".join(lines[121:]) + "\n")
    errors: list[str] = []
    with (tmp_path / "e.jsonl").open("w") as events, (tmp_path / "s.csv").open("w") as est:
        report = replay(
            src,
            events_out=events,
            estimates_out=est,
            on_error=errors.append,
            now=T0 + 3600,
        )
    shown = "\n".join(errors)
    assert "hostile.csv:51: heart_rate_bpm '1e308' is outside 0…400" in shown
    assert "hostile.csv:61: skin_temp_c '-inf' is outside -50…100" in shown
    assert "hostile.csv:71: time '1e20' is before 2000 or more than a day in the future" in shown
    assert "hostile.csv:81: time" in shown and "milliseconds?" in shown
    assert "hostile.csv:91: time '1970-01-01T00:00:01Z' is before 2000" in shown
    assert "hostile.csv:101: time '99999-01-01T00:00:00Z' is neither ISO 8601" in shown
    assert "hostile.csv:111: line longer than 4096 bytes" in shown
    assert "7777777777" not in shown, "a rejected cell is shortened in messages"
    assert report.rejected_rows == len(errors) >= 8
    # The rows before the unclosed quote all went through the engine.
    assert report.samples >= 2 * (120 - 2 - 7)


def test_an_endless_line_is_not_read_into_memory(tmp_path: Path) -> None:
    src = tmp_path / "endless.csv"
    with src.open("wb") as f:
        f.write(b"time,patient,heart_rate_bpm,skin_temp_c\n")
        f.write(b"1" * (64 * 1024 * 1024))  # 64 MiB without a newline
        f.write(b"\n" + f"{T0},p1,70,33.0\n".encode())
    errors: list[str] = []
    before = tracemalloc.is_tracing()
    tracemalloc.start()
    try:
        with (tmp_path / "e.jsonl").open("w") as ev, (tmp_path / "s.csv").open("w") as est:
            report = replay(src, events_out=ev, estimates_out=est, on_error=errors.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not before:
            tracemalloc.stop()
    assert errors == ["endless.csv:2: line longer than 4096 bytes"]
    assert report.samples == 2 and report.rejected_rows == 1
    assert peak < 8 * 1024 * 1024


def test_a_spreadsheet_csv_with_byte_order_mark_and_crlf_is_read(tmp_path: Path) -> None:
    src = tmp_path / "excel.csv"
    rows = [f"{iso_utc(T0 + t)},p1,70,33.0" for t in range(30)]
    src.write_bytes(
        b"\xef\xbb\xbf" + "\r\n".join(["time,patient,heart_rate_bpm,skin_temp_c", *rows]).encode()
    )
    errors: list[str] = []
    with (tmp_path / "e.jsonl").open("w") as ev, (tmp_path / "s.csv").open("w") as est:
        report = replay(src, events_out=ev, estimates_out=est, on_error=errors.append)
    assert errors == []
    assert report.rows == 30 and report.samples == 60 and report.estimates >= 1


def test_a_file_that_is_not_utf8_never_merges_two_patients(tmp_path: Path) -> None:
    """A spreadsheet's plain "CSV" on Windows is cp1252: decoded with replacement
    characters, the raw ids "Müller" and "Mäller" both became "M\ufffdller", one
    pseudonym, and two patients' samples went through one engine without a word. A line
    that is not UTF-8 is rejected with its line number; the others go on."""
    src = tmp_path / "cp1252.csv"
    lines = ["time,patient,heart_rate_bpm,skin_temp_c"]
    for t in range(60):
        lines += [f"{T0 + t},Müller,70,33.5", f"{T0 + t},Mäller,150,33.5", f"{T0 + t},Ana,70,33"]
    src.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    errors: list[str] = []
    with (tmp_path / "e.jsonl").open("w") as ev, (tmp_path / "s.csv").open("w") as est:
        report = replay(
            src,
            events_out=ev,
            estimates_out=est,
            on_error=errors.append,
            pseudonym_key=b"k" * 32,
            now=T0 + 3600,
        )
    assert report.rejected_rows == 120 and len(errors) == 120
    assert errors[0] == (
        "cp1252.csv:2: line is not UTF-8 (byte 0xfc at column 13); save the file as CSV UTF-8"
    )
    assert "Müller" not in "".join(errors) and "M\ufffdller" not in "".join(errors)
    assert report.patients == 1 and report.samples == 120  # Ana's rows only
    assert report.flags.get("duplicate", 0) == 0


def test_one_raw_id_spelled_with_spaces_is_one_patient_in_the_report(tmp_path: Path) -> None:
    """With ``--pseudonymize`` a raw id and the same id with spaces around it share one
    pseudonym and one engine; the report counted each spelling as a patient."""
    src = tmp_path / "spaced.csv"
    lines = ["time,patient,heart_rate_bpm,skin_temp_c"]
    for t in range(0, 60, 2):
        lines += [f"{T0 + t},Ana,70,33.0", f"{T0 + t + 1}, Ana ,70,33.0", f"{T0 + t},Bo,70,33"]
    src.write_text("\n".join(lines) + "\n")
    with (tmp_path / "e.jsonl").open("w") as ev, (tmp_path / "s.csv").open("w") as est:
        report = replay(
            src, events_out=ev, estimates_out=est, pseudonym_key=b"k" * 32, now=T0 + 3600
        )
    assert report.rejected_rows == 0 and report.samples == 180
    assert report.patients == 2


def test_raw_ids_without_pseudonymize_are_refused_without_repeating_them(
    tmp_path: Path,
) -> None:
    """A researcher who forgets ``--pseudonymize`` on a file of names: the rows are refused
    (a name is no pseudonym), and the messages, which go to the terminal and to logs, say
    so without repeating the name."""
    src = tmp_path / "names.csv"
    rows = [f"{T0 + t},Hans Müller,70,33.0" for t in range(5)]
    src.write_text("\n".join(["time,patient,heart_rate_bpm,skin_temp_c", *rows]) + "\n")
    r = heatmon(
        "replay", src, "--events-out", tmp_path / "e.jsonl", "--estimates-out", tmp_path / "s.csv"
    )
    assert "names.csv:2: the patient id is not a valid pseudonym" in r.stderr, r.stderr
    assert "--pseudonymize" in r.stderr
    assert "Müller" not in r.stderr + r.stdout
    assert "Müller" not in (tmp_path / "s.csv").read_text(encoding="utf-8")


def test_a_column_named_twice_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "twice.csv"
    src.write_text("time,patient,heart_rate_bpm,skin_temp_c,heart_rate_bpm\n1,p1,70,33,150\n")
    r = heatmon("replay", src, "--events-out", tmp_path / "e", "--estimates-out", tmp_path / "s")
    assert r.returncode == 2
    assert "twice.csv:1: header names heart_rate_bpm more than once" in r.stderr


def test_paths_and_numbers_on_the_command_line_are_refused_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    src = tmp_path / "in.csv"
    src.write_text(f"time,patient,heart_rate_bpm,skin_temp_c\n{T0},p1,70,33\n")
    est = str(tmp_path / "s.csv")
    refused = {
        f"{tmp_path}/nowhere/e.jsonl: No such file or directory": [
            "replay", str(src), "--events-out", str(tmp_path / "nowhere" / "e.jsonl"),
            "--estimates-out", est,
        ],
        f"{tmp_path}: Is a directory": [
            "replay", str(src), "--events-out", str(tmp_path), "--estimates-out", est,
        ],
        f"{tmp_path}: not a file": [
            "replay", str(tmp_path), "--events-out", est, "--estimates-out", est,
        ],
        f"{tmp_path}/nowhere/x.csv: No such file or directory": [
            "simulate", str(tmp_path / "nowhere" / "x.csv"),
        ],
        "--interval must be 0.1…3600 seconds, not 0.0": ["simulate", est, "--interval", "0"],
        "--minutes must be above 0 and at most 10080, not nan": [
            "simulate", est, "--minutes", "nan",
        ],
        "--patients must be at most 100000": ["simulate", est, "--patients", "100000000"],
    }  # fmt: skip
    for message, argv in refused.items():
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_an_output_that_is_the_recording_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--estimates-out rec.csv`` (a slip: the recording's own name) opened the recording
    for writing before reading it: the recording was gone (96 kB to the estimates' header)
    and heatmon said "empty file: no header"; ``heatmon evaluate rec.csv --json rec.csv``
    wrote its JSON over the recording. Both outputs naming one file mixed them."""
    from monitor.cli import main

    src = tmp_path / "rec.csv"
    text = f"time,patient,heart_rate_bpm,skin_temp_c,core_temp_c\n{T0},p1,70,33,37.0\n"
    src.write_text(text)
    (tmp_path / "link.csv").symlink_to(src)
    other = str(tmp_path / "e.jsonl")
    cases = [
        ["replay", str(src), "--events-out", other, "--estimates-out", str(src)],
        ["replay", str(src), "--events-out", str(tmp_path / "link.csv"), "--estimates-out", other],
        ["replay", str(src), "--events-out", other, "--estimates-out", other],
        ["evaluate", str(src), "--json", str(src)],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "same file" in err and "Traceback" not in err, (argv, err)
        assert src.read_text() == text, argv
    assert not (tmp_path / "e.jsonl").exists()


def test_an_unclosed_quote_costs_its_own_row_only(tmp_path: Path) -> None:
    """A cell that opens a quote and never closes it: csv.reader took every following line
    into that one cell (up to its 128-KB field limit), so 2,999 rows after it were lost,
    counted as one rejected row and reported at the file's last line. Each line is one
    row: the quote's row is refused at its own line, the rows after it are replayed."""
    src = tmp_path / "quote.csv"
    lines = ["time,patient,heart_rate_bpm,skin_temp_c"]
    lines += [f"{T0 + t},p1,70,33.0" for t in range(3000)]
    lines[3] = f'{T0 + 2},"p1,70,33.0'
    src.write_text("\n".join(lines) + "\n")
    errors: list[str] = []
    with (tmp_path / "e.jsonl").open("w") as ev, (tmp_path / "s.csv").open("w") as est:
        report = replay(src, events_out=ev, estimates_out=est, on_error=errors.append)
    assert len(errors) == 1 and errors[0].startswith("quote.csv:4: "), errors
    assert "quote" in errors[0]
    assert report.rows == 3000 and report.rejected_rows == 1
    assert report.samples == 2 * 2999


@pytest.mark.parametrize("command", ["replay", "evaluate"])
def test_a_cell_that_looks_like_markup_is_skipped_not_fatal(tmp_path: Path, command: str) -> None:
    """The message of a refused row quotes its cell, and the command printed it as rich
    markup: a heart-rate cell "[/]" stopped the whole run with a MarkupError traceback
    (and "[link=…]" made a hyperlink on the terminal). The row is skipped; the run goes on."""
    src = tmp_path / "mk.csv"
    rows = [f"{T0 + t},p1,80,34,37.0" for t in range(5)]
    rows[1] = f"{T0 + 1},p1,[/],34,37.0"
    rows[2] = f"{T0 + 2},p1,[link=https://evil.example]80[/link],34,37.0"
    src.write_text("\n".join(["time,patient,heart_rate_bpm,skin_temp_c,core_temp_c", *rows]) + "\n")
    outs = (
        ("--events-out", tmp_path / "e", "--estimates-out", tmp_path / "s")
        if command == "replay"
        else ("--json", tmp_path / "r.json")
    )
    r = heatmon(command, src, *outs)
    assert r.returncode in (0, 1), r.stderr  # evaluate: 1 when its targets are not met
    assert "Traceback" not in r.stderr
    assert "mk.csv:3: heart_rate_bpm '[/]' is not a number" in r.stderr
    assert "mk.csv:4: heart_rate_bpm '[link=https://evil.example]80[/link]'" in r.stderr
