"""Timestamps along heatmon's alert path, for ``bench/peer_nodered.py --trace DIR``.

Installed in heatmon's process by ``bench/peer/trace_site/sitecustomize.py`` (only when
``HM_TRACE_OUT`` is set), it wraps, without changing what they do: paho's dispatch of each
sample message (``msg``), ``Monitor.ingest_batch`` (``in``), ``AlertQueue.submit`` (``submit``)
and the alert's publish (``pub``); and it records the event loop's stalls over 2 ms
(``stall``), the process's and the whole machine's CPU every 100 ms (``cpu``) and Python's
collections (``gc``). At
exit it writes them as JSON to ``$HM_TRACE_OUT.<pid>``. :func:`report` splits each alert's
latency into publish → heatmon's socket → ingest → alert → publish → subscriber.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import gc
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

STALL_PROBE_S = 0.002
"""The stall probe sleeps this long and records an overshoot beyond it."""
CPU_EVERY_S = 0.1


def install(out: str) -> None:  # pragma: no cover - runs inside heatmon's process
    import paho.mqtt.client as paho

    import monitor.mqtt.alerts as alerts
    import monitor.mqtt.client as client
    import monitor.service as service

    rec: dict[str, list[Any]] = {
        k: [] for k in ("msg", "in", "submit", "pub", "stall", "cpu", "gc")
    }
    gc_start = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            rec["gc"].append((time.time(), info["generation"], time.perf_counter() - gc_start[0]))

    gc.callbacks.append(on_gc)

    def wrap(owner: Any, name: str, before: Callable[..., None]) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before(*args, **kwargs)
            return original(*args, **kwargs)

        setattr(owner, name, wrapper)

    def on_message(_self: Any, message: Any) -> None:
        if message.topic.endswith("/samples"):
            rec["msg"].append((message.topic.split("/")[-2], time.time()))

    def on_publish(_self: Any, topic: str, *_: Any, **__: Any) -> None:
        if topic.endswith("/alerts"):
            rec["pub"].append((topic.split("/")[-2], time.time()))

    def on_submit(_self: Any, event: Any) -> None:
        rec["submit"].append((event.patient, event.time, time.time()))

    wrap(paho.Client, "_handle_on_message", on_message)
    wrap(client.TrackedPublishes, "publish", on_publish)
    wrap(alerts.AlertQueue, "submit", on_submit)

    original_ingest = service.Monitor.ingest_batch
    tasks: list[asyncio.Task[None]] = []

    async def ingest_batch(self: Any, samples: Any) -> None:
        if samples:
            rec["in"].append((samples[-1].patient, samples[-1].time, time.time()))
        if not tasks:
            tasks.append(asyncio.get_running_loop().create_task(probe()))
        await original_ingest(self, samples)

    service.Monitor.ingest_batch = ingest_batch  # type: ignore[method-assign]

    def thread_ticks() -> tuple[int, int]:
        """(main thread, other threads) clock ticks of this process, from /proc."""
        main = others = 0
        for task in Path("/proc/self/task").iterdir():
            try:
                fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the thread ended
                continue
            ticks = int(fields[11]) + int(fields[12])
            if task.name == str(os.getpid()):
                main += ticks
            else:
                others += ticks
        return main, others

    def machine_ticks() -> tuple[int, int]:
        """(busy, all) clock ticks of the whole machine, from /proc/stat."""
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        last_cpu, last_at = sum(os.times()[:2]), time.time()
        last_ticks, last_threads = machine_ticks(), thread_ticks()
        cores = os.cpu_count() or 1
        hz = os.sysconf("SC_CLK_TCK")
        while True:
            t = loop.time()
            await asyncio.sleep(STALL_PROBE_S)
            over = loop.time() - t - STALL_PROBE_S
            if over > STALL_PROBE_S:
                rec["stall"].append((time.time(), over))
            now = time.time()
            if now - last_at >= CPU_EVERY_S:
                cpu, ticks, threads = sum(os.times()[:2]), machine_ticks(), thread_ticks()
                busy = cores * (ticks[0] - last_ticks[0]) / max(1, ticks[1] - last_ticks[1])
                span = hz * (now - last_at)
                main = (threads[0] - last_threads[0]) / span
                others = (threads[1] - last_threads[1]) / span
                rec["cpu"].append((now, (cpu - last_cpu) / (now - last_at), busy, main, others))
                last_cpu, last_at, last_ticks, last_threads = cpu, now, ticks, threads

    def dump() -> None:
        if rec["in"]:
            Path(f"{out}.{os.getpid()}").write_text(json.dumps(rec))

    atexit.register(dump)


def _q(values: list[float]) -> str:
    if not values:
        return "–"
    v = sorted(values)
    pick = [v[min(len(v) - 1, int(len(v) * q))] * 1000 for q in (0.5, 0.9, 0.99)]
    return " / ".join(f"{x:.1f}" for x in pick) + f" / {v[-1] * 1000:.1f} ms"


def report(result: dict[str, Any], trace: dict[str, Any]) -> str:
    """Each alert's latency in segments (p50 / p90 / p99 / max), from a run's result (with
    ``alert_raw``: patient, event time and receipt from ``t_base``, latency) and heatmon's
    trace; then heatmon's CPU and the loop's stalls in the seconds with alerts."""

    def walls(rows: list[list[Any]]) -> dict[str, list[float]]:
        """Clock readings per patient (the last column), in order."""
        out: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            out[row[0]].append(row[-1])
        for v in out.values():
            v.sort()
        return out

    ins, msgs, pubs = walls(trace["in"]), walls(trace["msg"]), walls(trace["pub"])
    submits: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for p, t, w in sorted(trace["submit"]):
        submits[p].append((t, w))

    def first_after(readings: list[float], at: float) -> float:
        i = bisect.bisect_left(readings, at)
        return readings[i] if i < len(readings) else float("nan")

    seg: dict[str, list[float]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    alert_walls: list[float] = []
    for p, ev_rel, rc_rel, lat in sorted(result["alert_raw"], key=lambda a: (a[0], a[1])):
        k = seen[p]
        seen[p] += 1
        if k >= len(submits[p]) or k >= len(pubs[p]):
            continue
        ev_t, w_sub = submits[p][k]
        received = ev_t - ev_rel + rc_rel
        published = received - lat
        w_msg, w_in = first_after(msgs[p], published), first_after(ins[p], published)
        w_pub = pubs[p][k]
        seg["publish → heatmon's paho"].append(w_msg - published)
        seg["paho → ingest"].append(w_in - w_msg)
        seg["ingest → alert"].append(w_sub - w_in)
        seg["alert → its publish"].append(w_pub - w_sub)
        seg["its publish → subscriber"].append(received - w_pub)
        seg["total"].append(lat)
        alert_walls.append(w_sub)
    lines = ["| segment | p50 / p90 / p99 / max |", "| --- | --- |"]
    lines += [f"| {name} | {_q(v)} |" for name, v in seg.items()]
    busy = {int(w) for w in alert_walls}
    cpu_in = [c for w, c, *_ in trace["cpu"] if int(w) in busy]
    cpu_out = [c for w, c, *_ in trace["cpu"] if int(w) not in busy]
    machine_in = [m for w, _, m, *_ in trace["cpu"] if int(w) in busy]
    machine_out = [m for w, _, m, *_ in trace["cpu"] if int(w) not in busy]
    main_in = [m for w, _, _, m, _ in trace["cpu"] if int(w) in busy]
    others_in = [o for w, _, _, _, o in trace["cpu"] if int(w) in busy]
    stalls = [s for w, s in trace["stall"] if int(w) in busy]

    def mean(v: list[float]) -> float:
        return sum(v) / len(v) if v else float("nan")

    lines.append(
        f"\nheatmon's CPU (cores): {mean(cpu_in):.2f} in the {len(busy)} seconds with alerts, "
        f"{mean(cpu_out):.2f} in the others (with alerts: main thread {mean(main_in):.2f}, "
        f"other threads {mean(others_in):.2f}); the machine's busy cores {mean(machine_in):.2f} "
        f"and {mean(machine_out):.2f} (of {os.cpu_count()}); loop stalls over "
        f"{STALL_PROBE_S * 1000:.0f} ms in those seconds: {len(stalls)}, "
        f"longest {max(stalls, default=0) * 1000:.1f} ms; "
        f"collections over 5 ms in the run: {sum(1 for g in trace['gc'] if g[2] > 0.005)}"
    )
    return "\n".join(lines)


def trace_report(prefix: Path, result: dict[str, Any], log: Callable[[str], None]) -> None:
    """Log :func:`report` for the trace heatmon wrote at ``prefix.<pid>`` (then kept as
    ``prefix.json``)."""
    files = sorted(prefix.parent.glob(prefix.name + ".[0-9]*"))
    if not files:
        log(f"no trace at {prefix}.* (heatmon did not exit cleanly?)")
        return
    trace = json.loads(files[-1].read_text())
    files[-1].rename(prefix.with_suffix(".json"))
    log(f"alert path ({prefix.name}):\n{report(result, trace)}")
