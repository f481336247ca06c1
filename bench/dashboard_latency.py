"""Sample-to-screen latency of the live dashboard with 50 patients on one caregiver page.

The real service (engine + web sink + aiohttp server) and a real headless Chromium page,
logged in as a caregiver who sees every patient. Each round ingests one heart-rate sample
(and every fifth round a skin temperature) for every patient through
``Monitor.ingest``; the page records, with a MutationObserver, when each tile shows that
sample. Latency = DOM update time − time just before ``ingest`` (both wall clock, same
machine); "frame" is the start of the next animation frame after the DOM update, the
frame that paints it. Engine states (every 10 s of sample time) redraw the sparklines as
they would live.

    .venv/bin/python -m bench.dashboard_latency [--patients 50] [--seconds 30] [--rate 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from playwright.async_api import async_playwright
from rich.console import Console
from rich.progress import Progress

from monitor.config import EngineConfig
from monitor.engine import MonitorEngine
from monitor.model import Sample, SampleKind
from monitor.profile import PatientProfile
from monitor.service import Monitor
from monitor.web.demo import DemoUser, demo_web_config
from monitor.web.sink import WebSink
from tests.fixtures.web import CHROMIUM, CHROMIUM_ARGS

OBSERVER_JS = """
() => {
  // DOM: when the tile's text changed; frame: the start of the next animation frame, the
  // frame that paints it (headless Chromium still runs the rendering pipeline).
  window.__seen = {};
  window.__frame = {};
  const obs = new MutationObserver((records) => {
    const now = performance.timeOrigin + performance.now();
    const fresh = [];
    for (const r of records) {
      const el = r.target;
      const tile = el.closest('.tile');
      if (!tile || !el.dataset.time) continue;
      const key = tile.dataset.patient + '|' + el.dataset.time;
      if (!(key in window.__seen)) { window.__seen[key] = now; fresh.push(key); }
    }
    if (fresh.length) requestAnimationFrame(() => {
      const t = performance.timeOrigin + performance.now();
      for (const key of fresh) window.__frame[key] = t;
    });
  });
  obs.observe(document.getElementById('tiles'),
              {subtree: true, attributes: true, attributeFilter: ['data-time']});
}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run(patients: int, seconds: float, rate_hz: float, console: Console) -> dict[str, Any]:
    ids = [f"p-{n:03d}" for n in range(patients)]
    profiles = {
        pid: PatientProfile(id=pid, display_name=f"Patient {n}") for n, pid in enumerate(ids)
    }
    user = DemoUser("bench", "benchmark passphrase", tuple(ids))
    sink = WebSink(
        config=demo_web_config([user]),
        display_names={pid: p.display_name for pid, p in profiles.items()},
    )
    monitor = Monitor(engine=MonitorEngine(profiles=profiles, config=EngineConfig()), sinks=[sink])
    sink.attach(monitor)
    sent: dict[str, float] = {}
    async with monitor, async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1600, "height": 1000})
        await page.goto(f"{sink.base_url}/login")
        await page.fill("#login", user.login)
        await page.fill("#password", user.password)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/caregiver")
        await page.wait_for_function(f"document.querySelectorAll('.tile').length === {patients}")
        await page.wait_for_function("document.getElementById('conn').textContent === 'live'")
        await page.evaluate(OBSERVER_JS)

        rounds = int(seconds * rate_hz)
        t0 = time.time() - 3600.0
        start = time.monotonic()
        with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"{patients} patients × {rate_hz:g} Hz", total=rounds)
            for r in range(rounds):
                sample_time = t0 + r / rate_hz
                for n, pid in enumerate(ids):
                    hr = 90.0 + 30.0 * (r / max(rounds, 1)) + (n % 7)
                    sent[f"{pid}|{sample_time}"] = time.time() * 1000.0
                    await monitor.ingest(
                        Sample(pid, SampleKind.HEART_RATE, hr, sample_time, "bench", "bench")
                    )
                    if r % 5 == 0:
                        await monitor.ingest(
                            Sample(pid, SampleKind.SKIN_TEMP, 33.0, sample_time, "bench", "bench")
                        )
                bar.advance(task)
                delay = start + (r + 1) / rate_hz - time.monotonic()
                await asyncio.sleep(max(0.0, delay))
        await asyncio.sleep(2.0)
        seen: dict[str, float] = await page.evaluate("window.__seen")
        frame: dict[str, float] = await page.evaluate("window.__frame")
        await browser.close()
    latencies = [seen[k] - t for k, t in sent.items() if k in seen]
    to_frame = [frame[k] - t for k, t in sent.items() if k in frame]
    return {
        "patients": patients,
        "rate_hz": rate_hz,
        "samples": len(sent),
        "shown": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
        "frame_p50_ms": statistics.median(to_frame),
        "frame_p95_ms": percentile(to_frame, 95),
        "frame_p99_ms": percentile(to_frame, 99),
        "frame_max_ms": max(to_frame),
        "dropped_streams": sink.board.dropped,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=1.0, help="samples per patient per second")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    result = asyncio.run(run(args.patients, args.seconds, args.rate, console))
    print(
        f"{result['patients']} patients, {result['rate_hz']:g} Hz each: "
        f"{result['shown']}/{result['samples']} samples shown; latency sample→screen "
        f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms (DOM); "
        f"p50 {result['frame_p50_ms']:.1f} ms, p95 {result['frame_p95_ms']:.1f} ms, "
        f"p99 {result['frame_p99_ms']:.1f} ms, max {result['frame_max_ms']:.1f} ms "
        f"(next frame); streams dropped {result['dropped_streams']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
