"""What the browser tests of the patient page put into the page before its scripts run
(``BrowserContext.add_init_script``): records of every call to the APIs that reach a person
without the screen (Web Audio oscillators, ``navigator.vibrate``, ``speechSynthesis.speak``,
the screen wake lock, notifications), each still passed on to the browser's own, a switch
for the page's visibility (headless Chromium is always "visible"), and shorter intervals
for the page's timers (``window.__heatmonTiming``: the page accepts only shorter ones)."""

from __future__ import annotations

import json
from collections.abc import Mapping

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
