// Every interval of the pages' prompts and of the "not watching" watchdog, in seconds
// (docs/dashboards.md, "Prompts and the watchdog", lists them). A test may shorten them,
// never lengthen them: an init script sets `window.__heatmonTiming = { promptRepeatS: 1 }`
// before the page's scripts run; anything larger than the default is ignored.
const DEFAULTS = Object.freeze({
  promptRepeatS: 30, // a cool_down prompt repeats this often until "I'm cooling down"
  pingS: 5, // the page asks the server (/healthz) this often
  pingTimeoutS: 4, // a ping unanswered this long has failed
  streamGraceS: 5, // the live stream down this long: not watching
  failingS: 5, // pings failing this long in a row: not watching
  silentS: 12, // no ping answered this long (requests that hang): not watching
  readingsStaleS: 30, // no new reading this long while a session is open: not watching
  resumedShownS: 10, // "watching again" stays on the screen this long
});

function shortened(defaults, overrides) {
  const out = {};
  for (const [key, value] of Object.entries(defaults)) {
    const o = Number(overrides ? overrides[key] : NaN);
    out[key] = Number.isFinite(o) && o > 0 ? Math.min(value, o) : value;
  }
  return Object.freeze(out);
}

export const TIMING = shortened(DEFAULTS, globalThis.__heatmonTiming);
