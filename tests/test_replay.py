"""``heatmon replay`` as a researcher runs it: files in, files out."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.model import iso_utc

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
    assert "bad.csv:402: patient id 'p/1'" in r.stderr
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


def test_replay_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    short, long = tmp_path / "short.csv", tmp_path / "long.csv"
    for path, minutes in ((short, "5"), (long, "30")):
        r = heatmon("simulate", path, "--patients", "50", "--minutes", minutes, "--no-core")
        assert r.returncode == 0, r.stderr
    assert long.stat().st_size > 5 * short.stat().st_size
    grown_kib = _peak_rss_kib(long, tmp_path) - _peak_rss_kib(short, tmp_path)
    assert grown_kib < 4 * 1024
