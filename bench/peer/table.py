"""The Node-RED comparison's table (``bench/peer_nodered.py``): one cell per round."""

from __future__ import annotations

import os
from typing import Any

from bench.peer.load import SPREAD_S


def table(results: list[dict[str, Any]], ceilings: list[dict[str, float]], load: list[str]) -> str:
    def cell(system: str, kind: str, fmt: Any) -> str:
        rows = [r for r in results if r["system"] == system and r["kind"] == kind]
        return " / ".join(fmt(r) for r in rows) or "–"

    def lag(key: str) -> Any:
        def f(r: dict[str, Any]) -> str:
            q = r.get(key)
            return f"{q['p50']:,.0f} / {q['p99']:,.0f} ms" if q else "–"

        return f

    rows = [
        (
            "max sustained, 10-s messages (20 samples), samples/s",
            "10s",
            lambda r: f"{r['rate']:,.0f}",
        ),
        ("max sustained, 1-s messages (2 samples), samples/s", "1s", lambda r: f"{r['rate']:,.0f}"),
        ("lost, 10-s / 1-s messages flat out", "loss", None),
        ("storage lag p50 / p99 at the real-world rate", "realtime", lag("lag_ms")),
        ("sample → alert p50 / p99 at the real-world rate", "realtime", lag("alert_ms")),
        (
            "publish → a plain subscriber p50 / p99 (the broker's path, same run)",
            "realtime",
            lag("plain_ms"),
        ),
        (
            f"storage lag p50 / p99, rises spread over {SPREAD_S} s",
            "spread",
            lag("lag_ms"),
        ),
        (
            f"sample → alert p50 / p99, rises spread over {SPREAD_S} s",
            "spread",
            lag("alert_ms"),
        ),
        (
            "CPU per 1,000 samples stored, 10-s messages",
            "10s",
            lambda r: f"{r['cpu_ms_per_1000']:.0f} ms",
        ),
        (
            "influxd's CPU per 1,000 samples stored, 10-s messages",
            "10s",
            lambda r: f"{r['influxd_cpu_ms_per_1000']:.1f} ms",
        ),
        (
            "write requests to influxd, points each, points per sample, 10-s messages",
            "10s",
            lambda r: (
                f"{r['write_requests']:,}, {r['points_written'] / max(1, r['write_requests']):,.0f}"
                f", {r['points_written'] / max(1, r['stored']):.2f}"
            ),
        ),
        (
            f"machine busy in the 10-s max-rate run, of {os.cpu_count()} cores",
            "10s",
            lambda r: f"{r['busy_cores']:.2f}",
        ),
        ("peak RSS (real-world run)", "realtime", lambda r: f"{r['peak_rss_mb']:.0f} MB"),
    ]
    out = ["| one cell per round | heatmon | Node-RED flow |", "| --- | --- | --- |"]
    for label, kind, fmt in rows:
        if kind == "loss":
            cells = [
                " / ".join(
                    f"{sum(r['lost'] for r in results if r['system'] == s and r['kind'] == k):,}"
                    for k in ("10s", "1s")
                )
                for s in ("heatmon", "nodered")
            ]
            out.append(f"| {label} | {cells[0]} | {cells[1]} |")
            continue
        out.append(f"| {label} | {cell('heatmon', kind, fmt)} | {cell('nodered', kind, fmt)} |")
    ceiling = " / ".join(f"{c['rate']:,.0f}" for c in ceilings)
    out.append(f"| ceiling: curl bulk `/write`, 10k-point batches, points/s | {ceiling} | |")
    cost = " / ".join(
        f"{c['influxd_cpu_ms_per_1000']:.1f} ms, {c['busy_cores']:.2f} cores" for c in ceilings
    )
    out.append(f"| curl's run: influxd's CPU per 1,000 points, machine busy | {cost} | |")
    out.append("")
    out.append("Load (`uptime`) before each round: " + "; ".join(load))
    return "\n".join(out)
