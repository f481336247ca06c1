// Patient view: large, calm and readable from two metres, and heard and felt when the
// person is not looking. One phase at a time, each with one heading, one message and at
// most one recovery line (/assets/phases.js), so the page never says two things at once.
// On cool_down it sounds, vibrates and speaks the advice every TIMING.promptRepeatS
// seconds until "I'm cooling down" is tapped or the level drops; caution and recovered get
// one gentler cue. When heatmon cannot see the readings (stream lost, server silent,
// readings stale) it says so in words and with a sound, and says when it sees them again.
import { session, post, el, signed, clock } from "/assets/common.js";
import { Device } from "/assets/device.js";
import { currentLevelEvent, phaseOf, phaseView, recoveredEvent } from "/assets/phases.js";
import { Prompter } from "/assets/prompts.js";
import { TIMING } from "/assets/timing.js";
import { Watcher } from "/assets/watch.js";

const NOT_WATCHING = "heatmon cannot see your readings — stop if you feel warm.";
const WATCH_DETAIL = {
  stream: "The connection to heatmon is lost. This page keeps trying.",
  server: "heatmon is not answering. This page keeps trying.",
  readings: "No new readings are arriving from your sensor.",
  link: "heatmon has restarted: open the link your caregiver gave you again.",
};
const WATCHING_AGAIN = "heatmon can see your readings again.";
// What to do when the readings are not fresh: the level shown may be out of date.
const QUALITY = {
  stale: "No new readings for a while: check that your sensor is on and close by.",
  sensor_off: "Your heart-rate strap has no skin contact: moisten and refit it.",
  no_data: "No readings from your sensor yet.",
};
const PATIENT_ACK_BY = "patient:self";

const patient = decodeURIComponent(window.location.pathname.split("/").pop());
const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const messageEl = $("message");
const adviceEl = $("advice");
const recoveryEl = $("recovery");
const numbersEl = $("numbers");
const qualityEl = $("quality");
const watchEl = $("watch");
const announceEl = $("announce");
const lastKnownEl = $("last-known");
const coolingBtn = $("cooling");
const coolingNoted = $("cooling-noted");
const soundState = $("sound-state");
const quietBtn = $("quiet");
const notedEl = $("noted");
const symptomsBtn = $("symptoms");

const prompter = new Prompter();
let lastState = null;
let lastLevelEvent = null;
let recovered = null;
let sessionOpen = false;
let recoveryDeadline = null; // ms epoch
let lastReadingAt = 0; // performance.now() of the latest reading or state
let phase = "waiting";
let prompting = null; // { id, timer, count } while a cool_down prompt repeats
const answered = new Set(); // cool_down event ids the patient has answered
const cued = new Set(); // caution / recovered event ids already cued
let firstSnapshot = true;
let connection = null; // the watcher's reason
let linkLost = false; // heatmon no longer knows this phone's session
let notWatching = null; // what the page shows: null or a WATCH_DETAIL key
let resumedTimer = null;

// The CSRF token; if heatmon does not answer now, post() asks again when it is needed and
// the watchdog below says that heatmon is not watching.
await session().catch(() => null);

// -- sound unlock, quiet mode, wake lock, service worker ------------------------------------

function showSoundState() {
  if (!prompter.unlocked) {
    soundState.textContent = "Tap anywhere to turn on sound and spoken prompts.";
  } else if (prompter.quiet) {
    soundState.textContent = "Quiet mode: no sound or speech; the phone vibrates and the screen shows your prompts.";
  } else {
    soundState.textContent = "Sound and spoken prompts are on.";
  }
  quietBtn.textContent = `Quiet mode: ${prompter.quiet ? "on" : "off"}`;
  quietBtn.setAttribute("aria-pressed", String(prompter.quiet));
}

function unlockOnce(ev) {
  if (prompter.unlocked) return;
  prompter.unlock();
  document.body.dataset.sound = "on";
  showSoundState();
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
  // A cool_down prompt that started before the tap is heard from now on (unless the tap
  // is the answer to it).
  if (prompting && ev.target !== coolingBtn) firePrompt();
}
document.addEventListener("pointerdown", unlockOnce, true);
document.addEventListener("keydown", unlockOnce, true);
quietBtn.addEventListener("click", () => {
  prompter.setQuiet(!prompter.quiet);
  showSoundState();
});
showSoundState();

const device = new Device();
const holdScreen = () => device.holdScreen(sessionOpen);
const notify = (title, body, tag) => device.notify(title, body, tag);
const closeNotifications = (tag) => device.closeNotifications(tag);
document.addEventListener("visibilitychange", () => device.shown(sessionOpen));

// -- one phase, one set of words ----------------------------------------------------------

// What the page knows, for the pure functions of /assets/phases.js.
function known() {
  return { state: lastState, levelEvent: lastLevelEvent, recovered, sessionOpen };
}
const levelEvent = () => currentLevelEvent(known());
const currentRecovered = () => recoveredEvent(known());

let announced = "";

function render() {
  const p = phaseOf(known());
  phase = p;
  document.body.dataset.phase = p;
  document.body.dataset.level = lastState && sessionOpen ? lastState.level : "waiting";
  const [status, message, advice, recovery] = phaseView(p, known());
  statusEl.textContent = status;
  if (messageEl.textContent !== message) messageEl.textContent = message;
  const adviceKey = advice.join("\n");
  if (adviceEl.dataset.key !== adviceKey) {
    adviceEl.dataset.key = adviceKey;
    adviceEl.replaceChildren(...advice.map((a) => el("li", { text: a })));
  }
  recoveryEl.dataset.kind = recovery || "";
  const state = lastState;
  if (state && sessionOpen) {
    const quality = QUALITY[state.quality];
    qualityEl.hidden = !quality;
    qualityEl.textContent = quality || "";
    const hr = state.heart_rate_bpm != null ? ` · heart ${Math.round(state.heart_rate_bpm)} bpm` : "";
    numbersEl.textContent = `core estimated ${signed(state.core_delta_c, 1)} °C${hr}`;
    if (state.minutes_to_recovery != null && state.level !== "ok") {
      recoveryDeadline = Date.now() + state.minutes_to_recovery * 60000;
    } else if (state.level === "cool_down" || state.minutes_to_recovery == null) {
      recoveryDeadline = null;
    }
  } else {
    qualityEl.hidden = true;
    numbersEl.textContent = "";
  }
  tick();
  // Screen readers hear each new phase (and each new engine message) once.
  const spokenNow = `${status}. ${message}`;
  if (spokenNow !== announced) {
    announced = spokenNow;
    announceEl.textContent = spokenNow;
  }
  maybeCue();
  updatePrompting();
  holdScreen();
  updateWatching();
}

function tick() {
  const kind = recoveryEl.dataset.kind;
  if (!kind) { recoveryEl.hidden = true; recoveryEl.textContent = ""; return; }
  recoveryEl.hidden = false;
  if (kind !== "countdown") { recoveryEl.textContent = kind; return; }
  if (recoveryDeadline == null) {
    recoveryEl.textContent = phase === "cool_down"
      ? "Rest and cool: the countdown starts as you cool."
      : "Keep cooling: heatmon will tell you when you are back to baseline.";
    return;
  }
  const left = Math.max(0, Math.round((recoveryDeadline - Date.now()) / 1000));
  const m = Math.floor(left / 60);
  const s = String(left % 60).padStart(2, "0");
  recoveryEl.textContent = `Back to baseline in about ${m}:${s}`;
}
setInterval(tick, 1000);

// -- cues -----------------------------------------------------------------------------------

// One gentle cue per new caution or recovered event (never for what the page opened on).
function maybeCue() {
  const ev = levelEvent();
  if (phase === "caution" && ev && !cued.has(ev.id)) {
    cued.add(ev.id);
    prompter.cue("caution", `Getting warm. ${ev.advice[0] || "Take it easier."}`);
    notify("Getting warm", ev.message, "heatmon-level");
  } else if (phase === "recovered") {
    const r = currentRecovered();
    if (r && !cued.has(r.id)) {
      cued.add(r.id);
      prompter.cue("recovered", r.message);
      notify("You're back to baseline", r.message, "heatmon-level");
    }
  }
}

function updatePrompting() {
  const ev = phase === "cool_down" ? levelEvent() : null;
  const want = ev && !answered.has(ev.id) ? ev : null;
  if (prompting && (!want || want.id !== prompting.id)) stopPrompting();
  coolingBtn.hidden = !want;
  if (want && !prompting) {
    prompting = { id: want.id, event: want, count: 0, timer: setInterval(firePrompt, TIMING.promptRepeatS * 1000) };
    coolingNoted.textContent = "";
    firePrompt();
  }
}

function spoken(ev, first) {
  const advice = first ? ev.advice.join(" ") : (ev.advice[0] || "");
  return `Cool down now. ${advice} Tap I'm cooling down when you have stopped.`;
}

function firePrompt() {
  if (!prompting) return;
  const ev = prompting.event;
  prompter.cue("cool_down", spoken(ev, prompting.count === 0));
  if (prompting.count === 0) notify("Cool down now", ev.advice[0] || ev.message, "heatmon-cool-down");
  prompting.count += 1;
  document.body.dataset.prompts = String(prompting.count);
}

function stopPrompting() {
  if (!prompting) return;
  clearInterval(prompting.timer);
  prompting = null;
  prompter.stopSpeaking();
  closeNotifications("heatmon-cool-down");
}

coolingBtn.addEventListener("click", async () => {
  if (!prompting) return;
  const id = prompting.id;
  answered.add(id);
  stopPrompting();
  coolingBtn.hidden = true;
  const url = `/api/patients/${encodeURIComponent(patient)}/alerts/${encodeURIComponent(id)}/patient-ack`;
  const { ok, status } = await post(url);
  const at = clock(Date.now() / 1000);
  if (ok) coolingNoted.textContent = `Noted at ${at}: your caregiver can see you are cooling down.`;
  else if (status === 404) coolingNoted.textContent = `Noted at ${at}. Keep cooling down.`;
  else coolingNoted.textContent = "Noted on this phone, but heatmon did not get it: tell your caregiver you are cooling down.";
});

// -- "not watching" ---------------------------------------------------------------------------

function readingsReason() {
  if (!sessionOpen || !lastState) return null;
  if (lastState.quality === "stale" || lastState.quality === "sensor_off") return "readings";
  if (performance.now() - lastReadingAt > TIMING.readingsStaleS * 1000) return "readings";
  return null;
}

function updateWatching() {
  const reason = (linkLost && "link") || connection || readingsReason();
  if (reason === notWatching) return;
  const was = notWatching;
  notWatching = reason;
  document.body.dataset.watching = reason ? "no" : "yes";
  // What the page last knew stays, but says it is not current.
  lastKnownEl.hidden = !reason || phase === "waiting";
  clearTimeout(resumedTimer);
  if (reason) {
    watchEl.className = "watch lost";
    watchEl.replaceChildren(el("strong", { text: NOT_WATCHING }), el("span", { text: WATCH_DETAIL[reason] }));
    watchEl.hidden = false;
    if (!was) {
      prompter.cue("not_watching", NOT_WATCHING);
      notify("heatmon is not watching", NOT_WATCHING, "heatmon-watch");
    }
  } else {
    watchEl.className = "watch resumed";
    watchEl.replaceChildren(el("strong", { text: WATCHING_AGAIN }));
    watchEl.hidden = false;
    prompter.cue("watching", WATCHING_AGAIN);
    closeNotifications("heatmon-watch");
    resumedTimer = setTimeout(() => { if (!notWatching) watchEl.hidden = true; }, TIMING.resumedShownS * 1000);
  }
}
setInterval(updateWatching, 1000);

// -- the live stream --------------------------------------------------------------------------

function reading() {
  lastReadingAt = performance.now();
}

const watcher = new Watcher({
  url: "/api/events",
  handlers: {
    snapshot: (data) => {
      const p = data.patients.find((x) => x.patient === patient);
      if (!p) return;
      lastLevelEvent = p.last_level_event;
      recovered = p.last_recovered;
      lastState = p.state;
      sessionOpen = p.session ? p.session.stop == null : p.state !== null;
      if (p.last_ack && p.last_ack.by === PATIENT_ACK_BY) answered.add(p.last_ack.event_id);
      if (firstSnapshot) {
        for (const ev of [p.last_level_event, p.last_recovered]) if (ev) cued.add(ev.id);
      }
      linkLost = false;
      reading();
      render();
      firstSnapshot = false;
    },
    state: (m) => {
      if (m.patient !== patient) return;
      lastState = m.state;
      sessionOpen = true;
      reading();
      render();
    },
    sample: (m) => { if (m.patient === patient) reading(); },
    alert: (m) => {
      if (m.patient !== patient) return;
      if (m.event.kind === "level") {
        lastLevelEvent = m.event;
        if (lastState) lastState = { ...lastState, level: m.event.level };
      } else if (m.event.kind === "recovered") {
        recovered = m.event;
      } else if (m.event.kind === "quality" && lastState) {
        lastState = { ...lastState, quality: m.event.quality };
      }
      render();
    },
    ack: (m) => {
      if (m.patient === patient && m.by === PATIENT_ACK_BY) { answered.add(m.event_id); render(); }
    },
    session: (m) => {
      if (m.patient !== patient) return;
      sessionOpen = m.stop == null;
      if (sessionOpen) { recovered = null; reading(); }
      render();
    },
  },
  onChange: (reason) => {
    connection = reason;
    updateWatching();
  },
  onRefused: async () => {
    // Is the patient session still there? If heatmon restarted, the link must be opened again.
    try {
      const me = await fetch("/api/session", { credentials: "same-origin", cache: "no-store" }).then((r) => r.json());
      if (me.kind !== "patient") { linkLost = true; updateWatching(); }
    } catch { /* the watcher reports the lost connection */ }
  },
}).start();

// -- "I feel symptoms" ------------------------------------------------------------------------

symptomsBtn.addEventListener("click", async () => {
  symptomsBtn.disabled = true;
  const { ok } = await post(`/api/patients/${encodeURIComponent(patient)}/symptoms`, { note: "" });
  notedEl.textContent = ok
    ? `Noted at ${clock(Date.now() / 1000)}. Your caregiver can see it. Stop, rest and cool down.`
    : "That did not go through. Please tell your caregiver.";
  setTimeout(() => { symptomsBtn.disabled = false; }, 3000);
});
