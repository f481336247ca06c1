"""Benchmark: replay throughput (samples/s), peak memory against file size, state per patient.

Run: ``.venv/bin/python bench/replay_throughput.py [--patients 100] [--hours 2]``.
Writes recordings with ``heatmon simulate`` into a temp dir, replays each in a fresh process
(one core) and reports what it measured. Not a test: numbers go into the README.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adapters.simulator import SCENARIOS, SimulatedPatient
from monitor.engine import MonitorEngine
from monitor.memory import deep_sizeof
from monitor.model import Sample, SampleKind
from monitor.profile import PatientProfile

CHILD = """
import json, resource, sys, time
from pathlib import Path
from monitor.replay import replay
t = time.perf_counter()
with open(sys.argv[2], "w") as ev, open(sys.argv[3], "w") as est:
    r = replay(Path(sys.argv[1]), events_out=ev, estimates_out=est)
dt = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"samples": r.samples, "seconds": dt, "max_rss_kib": rss, "rows": r.rows}))
"""


def simulate(path: Path, patients: int, minutes: float, *, epoch: bool) -> None:
    cmd = [
        sys.executable,
        "-m",
        "monitor.cli",
        "simulate",
        str(path),
        "--patients",
        str(patients),
        "--minutes",
        str(minutes),
        "--no-core",
    ]
    if epoch:
        cmd.append("--epoch")
    subprocess.run(cmd, check=True)


def replay_child(path: Path, out: Path) -> dict[str, float]:
    r = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-c",
            CHILD,
            str(path),
            str(out / "ev.jsonl"),
            str(out / "est.csv"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(r.stdout)
    return result


def state_bytes_per_patient() -> int:
    engine = MonitorEngine(profiles={"p": PatientProfile(id="p")})
    sim = SimulatedPatient(scenario=SCENARIOS["intervals"], seed=0)
    for _ in range(3600):
        v = sim.step(1.0)
        engine.ingest(Sample("p", SampleKind.HEART_RATE, v.heart_rate_bpm, 1e9 + v.time_s, "hr"))
        engine.ingest(Sample("p", SampleKind.SKIN_TEMP, v.skin_temp_c, 1e9 + v.time_s, "skin"))
    return deep_sizeof(engine.engine("p"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--hours", type=float, default=2.0)
    args = ap.parse_args()
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rows = []
        for label, minutes, epoch in (
            ("half length, ISO 8601", args.hours * 30, False),
            ("full length, ISO 8601", args.hours * 60, False),
            ("full length, epoch s", args.hours * 60, True),
        ):
            f = d / f"rec-{minutes:g}-{epoch}.csv"
            t = time.perf_counter()
            simulate(f, args.patients, minutes, epoch=epoch)
            gen = time.perf_counter() - t
            r = replay_child(f, d)
            rows.append((label, f.stat().st_size, r, gen))
        print(
            f"replay benchmark: {args.patients} patients, 1 Hz, heart rate + skin temperature",
            file=out,
        )
        print(
            f"{'file':24s} {'MB':>7s} {'samples':>10s} {'s':>6s} {'samples/s':>11s} "
            f"{'peak RSS MiB':>12s}",
            file=out,
        )
        for label, size, r, _ in rows:
            print(
                f"{label:24s} {size / 1e6:7.1f} {int(r['samples']):10d} {r['seconds']:6.2f} "
                f"{r['samples'] / r['seconds']:11,.0f} {r['max_rss_kib'] / 1024:12.1f}",
                file=out,
            )
    print(f"engine state per patient after 1 h: {state_bytes_per_patient()} bytes", file=out)
    print(
        f"(python {sys.version.split()[0]}, one core pinned with taskset; "
        f"self RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB)",
        file=out,
    )
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()
