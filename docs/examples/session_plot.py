"""Worked example (docs/research.md): one session's heart rate, estimated core-temperature
rise and alerts on one plot, read back from InfluxDB with heatmon's pandas API.

    .venv/bin/python docs/examples/session_plot.py [--url URL --database DB --patient P
                                                    --start T --stop T] [--out PNG]

Without ``--url`` it starts a private InfluxDB (Debian's influxd) in a temporary directory
and first records one simulated session ("hot_day_aerobic") through the real pipeline
(simulator -> engine -> InfluxDB sink). Writes ``docs/examples/session.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates
import matplotlib.pyplot as plt

from adapters.simulator import SCENARIOS, SimulatedPatient
from monitor.engine import MonitorEngine
from monitor.model import Sample, SampleKind, iso_utc
from monitor.profile import PatientProfile
from monitor.service import Monitor
from monitor.storage.localserver import InfluxServer
from monitor.storage.options import InfluxOptions
from monitor.storage.query import HeatmonStore
from monitor.storage.sink import InfluxSink

OUT = Path(__file__).with_name("session.png")
T0 = 1_715_940_000.0  # 2024-05-17T10:00:00Z
PATIENT = "p-017"


async def record_session(url: str, spool: Path) -> tuple[float, float]:
    """Simulate one session at 1 Hz and store everything heatmon produces."""
    sim = SimulatedPatient(scenario=SCENARIOS["hot_day_aerobic"], seed=3)
    engine = MonitorEngine(profiles={PATIENT: PatientProfile(id=PATIENT, age=41)})
    sink = InfluxSink(options=InfluxOptions(url=url, database="heatmon"), data_dir=spool)
    t = T0
    async with Monitor(engine=engine, sinks=[sink], clock=lambda: t, tick_s=3600) as monitor:
        while not sim.finished:
            v = sim.step(1.0)
            t = T0 + v.time_s
            for kind, value in (
                (SampleKind.HEART_RATE, v.heart_rate_bpm),
                (SampleKind.SKIN_TEMP, v.skin_temp_c),
            ):
                await monitor.ingest(Sample(PATIENT, kind, value, t, device="sim", source="sim"))
        assert await sink.drain(timeout_s=60)
    return T0, t + 1


def plot(
    store: HeatmonStore, patient: str, start: float | str, stop: float | str, out: Path = OUT
) -> None:
    hr = store.vitals(patient, start, stop, kind="heart_rate")
    thermal = store.thermal(patient, start, stop)
    alerts = store.alerts(patient, start, stop)

    fig, ax_hr = plt.subplots(figsize=(10, 4.5), dpi=110)
    ax_hr.plot(hr["time"], hr["value"], color="tab:red", lw=0.8, label="heart rate (bpm)")
    ax_hr.set_ylabel("heart rate (bpm)", color="tab:red")
    ax_rise = ax_hr.twinx()
    ax_rise.plot(
        thermal["time"],
        thermal["core_delta_c"],
        color="tab:blue",
        lw=2,
        label="estimated core rise (°C)",
    )
    sd = thermal["core_temp_sd_c"]
    ax_rise.fill_between(
        thermal["time"],
        thermal["core_delta_c"] - 2 * sd,
        thermal["core_delta_c"] + 2 * sd,
        color="tab:blue",
        alpha=0.15,
    )
    if not thermal.empty:
        ax_rise.axhline(
            thermal["threshold_rise_c"].iloc[-1],
            color="tab:blue",
            ls=":",
            label="patient's threshold",
        )
    ax_rise.set_ylabel("estimated core rise (°C)", color="tab:blue")
    colours = {"caution": "orange", "cool_down": "crimson", "ok": "green"}
    for row in alerts.itertuples():
        colour = colours.get(str(row.level), "grey")
        ax_hr.axvline(row.time, color=colour, ls="--", lw=1.2)
        ax_hr.annotate(
            f"{row.level}",
            (row.time, ax_hr.get_ylim()[1]),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color=colour,
        )
    ax_hr.set_title(f"Session of {patient}: heart rate, estimated rise and alerts")
    ax_hr.set_xlabel("time (UTC)")
    ax_hr.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%H:%M"))
    fig.legend(loc="upper right", bbox_to_anchor=(0.9, 0.86), fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(
        f"wrote {out} ({len(hr)} heart-rate samples, {len(thermal)} estimates, "
        f"{len(alerts)} alerts)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--database", default="heatmon")
    parser.add_argument("--patient", default=PATIENT)
    parser.add_argument("--start")
    parser.add_argument("--stop")
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG (default: %(default)s)")
    args = parser.parse_args()
    if args.url:
        plot(
            HeatmonStore(url=args.url, database=args.database),
            args.patient,
            args.start,
            args.stop,
            args.out,
        )
        return
    with tempfile.TemporaryDirectory() as tmp, InfluxServer(data_dir=Path(tmp) / "db") as srv:
        start, stop = asyncio.run(record_session(srv.url, Path(tmp) / "spool"))
        print(f"recorded {iso_utc(start)} .. {iso_utc(stop)}")
        plot(HeatmonStore(url=srv.url, database="heatmon"), PATIENT, start, stop, args.out)


if __name__ == "__main__":
    main()
