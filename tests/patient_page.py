"""Helpers of the patient page's browser tests. What they put into the page before its
scripts run
(``BrowserContext.add_init_script``): records of every call to the APIs that reach a person
without the screen (Web Audio oscillators, ``navigator.vibrate``, ``speechSynthesis.speak``,
the screen wake lock, notifications), each still passed on to the browser's own, a switch
for the page's visibility (headless Chromium is always "visible"), and shorter intervals
for the page's timers (``window.__heatmonTiming``: the page accepts only shorter ones)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE = Path(__file__).resolve().parents[1] / "dashboards" / "web" / "node_modules" / "axe-core"
BLOCKING = ("serious", "critical")
LIVE_TIMEOUT_S = 30.0

INSTRUMENT_JS = r"""
(() => {
  const rec = { tones: [], vibrate: [], speak: [], wakeLock: [], notifications: [] };
  window.__rec = rec;
  const stamp = () => Date.now();

  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    rec.tones.push({ f: this.frequency.value, state: this.context.state, at: stamp() });
    return start.apply(this, args);
  };

  const vibrate = Navigator.prototype.vibrate;
  Navigator.prototype.vibrate = function (pattern) {
    rec.vibrate.push({ pattern, at: stamp() });
    try { return vibrate ? vibrate.call(this, pattern) : true; } catch { return false; }
  };

  if (window.speechSynthesis) {
    const synth = window.speechSynthesis;
    const speak = synth.speak.bind(synth);
    synth.speak = (u) => {
      rec.speak.push({ text: u.text, lang: u.lang, at: stamp() });
      return speak(u);
    };
  }

  if (navigator.wakeLock) {
    const request = navigator.wakeLock.request.bind(navigator.wakeLock);
    navigator.wakeLock.request = (type) => {
      const entry = { type, at: stamp(), result: "pending" };
      rec.wakeLock.push(entry);
      const p = request(type);
      p.then(() => { entry.result = "granted"; }, (e) => { entry.result = e.name; });
      return p;
    };
  }

  if (window.ServiceWorkerRegistration) {
    const show = ServiceWorkerRegistration.prototype.showNotification;
    ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
      rec.notifications.push({ via: "service-worker", title, body: options && options.body,
        at: stamp() });
      return show.call(this, title, options);
    };
  }
  if (window.Notification) {
    const Original = window.Notification;
    class Recorded extends Original {
      constructor(title, options) {
        super(title, options);
        rec.notifications.push({ via: "page", title, body: options && options.body,
          at: stamp() });
      }
    }
    window.Notification = Recorded;
  }

  // The page's visibility, switched by the test.
  let hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get() { return hidden ? "hidden" : "visible"; } });
  Object.defineProperty(Document.prototype, "hidden", {
    configurable: true, get() { return hidden; } });
  window.__setHidden = (h) => {
    hidden = Boolean(h);
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


def instrument_script(timing: Mapping[str, float] | None = None) -> str:
    """The init script, with the page's intervals shortened to ``timing`` (seconds)."""
    prefix = f"window.__heatmonTiming = {json.dumps(dict(timing or {}))};\n"
    return prefix + INSTRUMENT_JS


async def until(page: Page, condition: str, timeout_s: float = LIVE_TIMEOUT_S) -> None:
    """Wait until the JavaScript ``condition`` holds in ``page`` (evaluated from outside, so
    the page's Content-Security-Policy, which forbids eval, stays as it is)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s:.0f} s: {condition}")
        await asyncio.sleep(0.1)


async def rec(page: Page, key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = await page.evaluate(f"window.__rec.{key}")
    return entries


async def tones(page: Page, kind: str) -> list[float]:
    """The frequencies of the page's ``kind`` cue (from the page's own table)."""
    freqs: list[float] = await page.evaluate(
        f"import('/assets/prompts.js').then(m => m.TONES.{kind}.map(n => n[0]).filter(f => f > 0))"
    )
    return freqs


def played(entries: list[dict[str, Any]], freqs: list[float]) -> bool:
    """Whether ``freqs`` were started in this order on a running AudioContext."""
    heard = [round(e["f"], 2) for e in entries if e["state"] == "running"]
    want = [round(f, 2) for f in freqs]
    return any(heard[i : i + len(want)] == want for i in range(len(heard)))


async def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on ``page`` (injected from outside the
    page, so its Content-Security-Policy stays as it is)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate((AXE / "axe.min.js").read_text(encoding="utf-8"))
    result: dict[str, Any] = await page.evaluate(
        """() => axe.run(document).then((r) => ({
            passed: r.passes.map((p) => p.id),
            violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) })) }))"""
    )
    # axe really looked: the rules every page must pass were checked and passed.
    assert {"color-contrast", "html-has-lang", "document-title"} <= set(result["passed"])
    return [v for v in result["violations"] if v["impact"] in BLOCKING]
