"""Benchmark: heatmon side by side with the Node-RED flow a clinic's IT person would build.

Run: ``.venv/bin/python bench/peer_nodered.py [--rounds 2] [--patients 1000]`` (loopback
only; every step bounded in time; the whole run takes ~10 min on two cores).

The peer: ``mqtt in`` (QoS 1) → ``json`` → ``function`` (the gateway batch to points) →
``node-red-contrib-influxdb``'s ``influxdb batch`` node, installed from npm (node-red 4,
node-red-contrib-influxdb 0.7) into ``var/bench/nodered`` (a cache, not committed). Both
run as their own process against the same Mosquitto (``monitor/mqtt/localbroker.py``) and
the same influxd 1.x (``monitor/storage/localserver.py``), fed by the same QoS 1 publisher
(a child process, payloads encoded before the clock starts, 200 messages in flight),
heatmon as ``heatmon run`` with default settings. Rounds interleave the two.

Figures, per system and round:

- max sustained samples/s, messages of 10 s (20 samples) and of 1 s (2 samples) of a
  patient: the publisher sends flat out; rate = samples stored / (last stored − first
  published), stored counted in InfluxDB; ``lost`` = published − stored when the count
  stops growing;
- at the real-world rate (``--patients`` × 2 samples/s, each patient's second in one
  message, patients spread over the second): storage lag p50/p99 (publish → InfluxDB's
  answer to the write that carried the point, seen by a recording proxy in front of
  influxd) and, heatmon only, sample → alert p50/p99 (publish of the message closing the
  alert's 10-s window → the alert received by a subscriber, a process of its own), once
  with every patient's rise at the same second (``realtime``: 1,000 alerts in one second,
  the worst case) and once with the rises spread over ``SPREAD_S`` (``spread``);
- CPU per 1,000 samples stored (the service's process alone, flat out, 10-s messages) and
  peak RSS;
- the ceiling: ``curl`` posting 10k-point line-protocol batches to ``/write``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peer.influx import (
    Proxy,
    curl_ceiling,
    influx_query,
    wait_count,
    wait_count_probe,
    write_stats,
)
from bench.peer.load import (
    SPREAD_S,
    alert_latencies,
    publisher_main,
    quantiles,
    receiver_main,
)
from bench.peer.services import (
    PASSWORD,
    USER,
    busy_cores,
    install_nodered,
    log,
    machine_ticks,
    proc_cpu_s,
    start_heatmon,
    start_nodered,
    start_spy,
)
from bench.peer.table import table
from bench.peer.tracing import trace_report
from monitor.mqtt.localbroker import MosquittoBroker
from monitor.storage.localserver import InfluxServer

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "var" / "bench" / "nodered"
FLAT_STEPS = {"10s": 60, "1s": 20}
"""Seconds of every patient sent flat out in the max-rate runs (fewer with 1-s messages:
the same number of messages takes as long to send)."""
REALTIME_S = 100
"""Real-world run: each patient's second published at that second (sample time = publish
time, patients spread over the second); heatmon's patients have a resting heart rate and
baseline in their profile (no 2-minute rest), rest 10 s, then core temperature rises
0.02 °C/s: heatmon says ``caution`` at ~90 s."""
RUN_LIMIT_S = 240.0
"""No run lasts longer."""


# -- one run ----------------------------------------------------------------------------------


async def run(
    system: str,
    kind: str,
    args: argparse.Namespace,
    *,
    broker: MosquittoBroker,
    influx: InfluxServer,
    red: Path,
    tmp: Path,
    tag: str,
) -> dict[str, Any]:
    ids = [f"p{i:04d}" for i in range(args.patients)]
    db = f"{system}_{kind}_{tag}"
    prefix = f"{db}/heatmon/v1"
    now = time.time()
    influx_query(influx.url, f'CREATE DATABASE "{db}"')
    realtime = kind in ("realtime", "spread")
    proxy = Proxy(influx.url) if realtime else None
    if proxy is not None:
        await proxy.start()
    url = f"http://127.0.0.1:{proxy.port}" if proxy is not None else influx.url
    steps = REALTIME_S if realtime else (args.flat_s or FLAT_STEPS[kind])
    spec: dict[str, Any] = {"steps": steps, "per": 10 if kind == "10s" else 1}
    spec.update(prefix=prefix, ids=ids, realtime=realtime)
    spec["spread_s"] = SPREAD_S if kind == "spread" else 0
    # max-rate runs: a minute of every patient, just past (sample times trail the clock)
    spec["t0"] = float(int(now)) - steps - 5
    work = tmp / db
    if system in ("heatmon", "base"):
        service = start_heatmon(
            work,
            broker=broker,
            influx_url=url,
            prefix=prefix,
            db=db,
            ids=[*ids, "probe"],
            code=args.base if system == "base" else None,
            window_phase=args.window_phase,
            trace=args.trace / db if args.trace is not None and system == "heatmon" else None,
        )
    else:
        port = proxy.port if proxy is not None else influx.port
        service = start_nodered(work, red, broker=broker, influx_port=port, prefix=prefix, db=db)
    spy = None
    if args.profile is not None and system == "heatmon":
        args.profile.mkdir(parents=True, exist_ok=True)
        spy = start_spy(args.profile / f"{db}.speedscope.json", service.proc.pid)
    parent, child = mp.Pipe()
    pub = mp.get_context("spawn").Process(target=publisher_main, args=(broker.port, spec, child))
    alerts_end, alerts_child = mp.Pipe()
    rec = mp.get_context("spawn").Process(
        target=receiver_main, args=(broker.port, prefix, alerts_child, ids)
    )
    try:
        await asyncio.sleep(3.0)  # the service connects and subscribes
        if spec["realtime"]:
            rec.start()
            await asyncio.to_thread(alerts_end.recv)
        pub.start()
        await asyncio.to_thread(parent.recv)
        parent.send("probe")
        for _ in range(8):  # a probe message, stored, says the service is subscribed
            await asyncio.to_thread(parent.recv)
            if (await wait_count_probe(influx.url, db)) > 0:
                break
            parent.send("again")
        else:
            tail = service.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{system} did not store the probe; its log ends:\n{tail}")
        measured = len(ids) * spec["steps"] * 2
        cpu0, influx_cpu0, ticks0 = service.cpu_s(), proc_cpu_s(influx.pid), machine_ticks()
        writes0 = write_stats(influx.url)
        parent.send("go")
        sent = await asyncio.to_thread(parent.recv)
        count, done_at = await wait_count(
            influx.url, db, measured, limit_s=RUN_LIMIT_S, written_before=writes0[1]
        )
        cpu = service.cpu_s() - cpu0
        influx_cpu = proc_cpu_s(influx.pid) - influx_cpu0
        machine = busy_cores(ticks0, machine_ticks())
        writes1 = write_stats(influx.url)
        rss = service.peak_rss_mb()
        parent.send("counted")
        extra = await asyncio.to_thread(parent.recv)
        if spec["realtime"]:
            alerts_end.send("stop")
            extra["alerts"], extra["plain"] = await asyncio.to_thread(alerts_end.recv)
    finally:
        for child_proc in (pub, rec):
            if child_proc.is_alive():
                child_proc.join(timeout=10)
                if child_proc.is_alive():
                    child_proc.kill()
        service.stop()
        logs = args.out.parent / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copy(service.log_path, logs / f"{db}.log")
        if spy is not None:
            spy.wait(timeout=60)
        if proxy is not None:
            await proxy.stop()
    got = count
    out: dict[str, Any] = {
        "system": system,
        "kind": kind,
        "samples": measured,
        "stored": got,
        "lost": measured - got,
        "rate": got / max(1e-9, done_at - sent["first"]),
        "cpu_ms_per_1000": 1000 * 1000 * cpu / max(1, got),
        "influxd_cpu_ms_per_1000": 1000 * 1000 * influx_cpu / max(1, got),
        "busy_cores": machine,
        "write_requests": writes1[0] - writes0[0],
        "points_written": writes1[1] - writes0[1],
        "peak_rss_mb": rss,
    }
    if proxy is not None:
        published = extra["published"]
        lags = [
            at - published[key]
            for (patient, t_ms), at in proxy.seen.items()
            if (key := f"{patient} {t_ms}") in published
        ]
        out["lag_ms"] = quantiles(lags)
        out["alert_ms"] = alert_latencies(extra["alerts"], published, ids, sent["t_base"])
        out["plain_ms"] = quantiles(
            [
                at - published[key]
                for patient, t, at in extra["plain"]
                if (key := f"{patient} {round(t * 1000)}") in published
            ]
        )
        if args.trace is not None and system == "heatmon":
            raw = alert_latencies(extra["alerts"], published, ids, sent["t_base"], raw=True)
            trace_report(args.trace / db, {"alert_raw": raw}, log)
        if args.raw:
            out["alert_raw"] = alert_latencies(
                extra["alerts"], published, ids, sent["t_base"], raw=True
            )
    log(f"{system} {kind}: {json.dumps(out)}")
    return out


async def main_async(args: argparse.Namespace) -> None:
    red = install_nodered(args.cache) if "nodered" in args.systems else Path("-")
    results: list[dict[str, Any]] = []
    ceilings: list[dict[str, float]] = []
    load: list[str] = []
    deadline = time.time() + args.budget_s
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        broker = MosquittoBroker(
            workdir=tmp / "mosquitto",
            users={USER: PASSWORD},
            acl=f"user {USER}\ntopic readwrite #\n",
            max_inflight=args.broker_inflight,
        )
        broker.start()
        influx = InfluxServer(data_dir=tmp / "influxdb")
        influx.start()
        try:
            for n in range(args.rounds):
                load.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
                ceilings.append(await asyncio.to_thread(curl_ceiling, influx, tmp, f"r{n}"))
                log(f"round {n + 1}: curl ceiling {ceilings[-1]}; load {load[-1]}")
                pair = ("heatmon", "base", "nodered")
                order = [s for s in pair if s in args.systems.split(",")]
                order = order if n % 2 == 0 else order[::-1]
                for kind in args.kinds.split(","):
                    for system in order:
                        if time.time() > deadline:
                            log("time budget spent: stopping")
                            raise TimeoutError
                        results.append(
                            await run(
                                system,
                                kind,
                                args,
                                broker=broker,
                                influx=influx,
                                red=red,
                                tmp=tmp,
                                tag=f"r{n}",
                            )
                        )
        except TimeoutError:
            pass
        finally:
            broker.stop()
            influx.stop()
    report = table(results, ceilings, load)
    report += (
        f"\n{args.patients:,} patients; Mosquitto max_inflight_messages {args.broker_inflight};"
        f" {len(ceilings)} round(s), heatmon and Node-RED alternating first"
    )
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"results": results, "ceilings": ceilings, "load": load}, indent=1)
    )
    (args.out.with_suffix(".md")).write_text(report + "\n")


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument(
        "--kinds", default="10s,1s,realtime,spread", help="10s, 1s, realtime, spread"
    )
    parser.add_argument("--raw", action="store_true", help="keep each alert's latency")
    parser.add_argument(
        "--flat-s",
        type=int,
        default=0,
        help="seconds of every patient sent in a max-rate run (default 60 for 10-s, 20 for 1-s)",
    )
    parser.add_argument("--systems", default="heatmon,nodered", help="heatmon, nodered, base")
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="system 'base': heatmon with the monitor package from this folder "
        "(e.g. `git archive COMMIT monitor | tar -x -C DIR`)",
    )
    parser.add_argument(
        "--broker-inflight",
        type=int,
        default=1000,
        help="Mosquitto's max_inflight_messages (heatmon acknowledges after the fsync)",
    )
    parser.add_argument(
        "--window-phase",
        choices=("clock", "patient"),
        default="clock",
        help="heatmon's [engine] window_phase (default: clock, heatmon's default)",
    )
    parser.add_argument("--budget-s", type=float, default=1500.0, help="no new run after this")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy heatmon into this folder"
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="timestamps along heatmon's alert path into this folder (bench/peer/tracing.py)",
    )
    parser.add_argument("--cache", type=Path, default=CACHE, help="where npm installs Node-RED")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "peer_nodered.json")
    if shutil.which("node") is None or shutil.which("curl") is None:
        raise SystemExit("needs node, npm and curl (scripts/setup.sh installs them)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
