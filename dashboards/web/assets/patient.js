// Patient view: large, calm and readable from two metres. ok / getting warm / cool down now,
// what to do, a recovery countdown after a cool-down, and an "I feel symptoms" button.
import { session, post, stream, el, signed, clock } from "/assets/common.js";

const STATUS = { ok: "You're fine", caution: "Getting warm", cool_down: "Cool down now" };
const CALM = {
  ok: "Carry on at a comfortable pace.",
  caution: "Take it a little easier for a few minutes.",
  cool_down: "Stop and cool down. Heat symptoms are temporary and ease as you cool.",
};
const patient = decodeURIComponent(window.location.pathname.split("/").pop());
const statusEl = document.getElementById("status");
const messageEl = document.getElementById("message");
const adviceEl = document.getElementById("advice");
const recoveryEl = document.getElementById("recovery");
const numbersEl = document.getElementById("numbers");
const qualityEl = document.getElementById("quality");
// What to do when the readings are not fresh: the level shown may be out of date.
const QUALITY = {
  stale: "No new readings for a while: check that your sensor is on and close by.",
  sensor_off: "Your heart-rate strap has no skin contact: moisten and refit it.",
  no_data: "No readings from your sensor yet.",
};
const notedEl = document.getElementById("noted");
const button = document.getElementById("symptoms");

let level = null;
let lastLevelEvent = null;
let recoveryDeadline = null; // ms epoch
let recovered = null;

await session();

let lastState = null;

function render(state) {
  if (!state) return;
  lastState = state;
  const changed = state.level !== level;
  level = state.level;
  document.body.dataset.level = level;
  const ev = lastLevelEvent && lastLevelEvent.level === level ? lastLevelEvent : null;
  // On the way down from a cool-down the heading says so, not "getting warm".
  const easing = level === "caution" && ev && ev.previous_level === "cool_down";
  statusEl.textContent = easing ? "Cooling down" : STATUS[level] || level;
  if (changed || !ev) {
    // The engine words each change for its direction ("Cooling down: …" on the way down).
    messageEl.textContent = ev ? ev.message : CALM[level];
    const advice = ev && ev.advice.length ? ev.advice : [];
    adviceEl.replaceChildren(...advice.map((a) => el("li", { text: a })));
  }
  if (state.minutes_to_recovery != null && level !== "ok") {
    recoveryDeadline = Date.now() + state.minutes_to_recovery * 60000;
  } else if (level === "cool_down") {
    recoveryDeadline = null;
  }
  qualityEl.hidden = !QUALITY[state.quality];
  qualityEl.textContent = QUALITY[state.quality] || "";
  const hr = state.heart_rate_bpm != null ? ` · heart ${Math.round(state.heart_rate_bpm)} bpm` : "";
  numbersEl.textContent = `core estimated ${signed(state.core_delta_c, 1)} °C${hr}`;
  tick();
}

function tick() {
  if (recovered && level === "ok") {
    recoveryEl.hidden = false;
    recoveryEl.textContent = "You're back to baseline.";
    return;
  }
  if (recoveryDeadline == null || level === "ok") {
    recoveryEl.hidden = level !== "cool_down";
    if (level === "cool_down") recoveryEl.textContent = "Rest and cool: the countdown starts as you cool.";
    return;
  }
  const left = Math.max(0, Math.round((recoveryDeadline - Date.now()) / 1000));
  const m = Math.floor(left / 60);
  const s = String(left % 60).padStart(2, "0");
  recoveryEl.hidden = false;
  recoveryEl.textContent = `Back to baseline in about ${m}:${s}`;
}
setInterval(tick, 1000);

stream("/api/events", {
  snapshot: (data) => {
    const p = data.patients.find((x) => x.patient === patient);
    if (!p) return;
    lastLevelEvent = p.last_level_event;
    recovered = p.last_recovered;
    level = null;
    render(p.state);
  },
  state: (m) => { if (m.patient === patient) render(m.state); },
  alert: (m) => {
    if (m.patient !== patient) return;
    if (m.event.kind === "level") {
      lastLevelEvent = m.event;
      if (m.event.level !== "ok") recovered = null;
      level = null;
    } else if (m.event.kind === "recovered") {
      recovered = m.event;
      messageEl.textContent = m.event.message;
    } else if (m.event.kind === "quality" && lastState) {
      render({ ...lastState, quality: m.event.quality });
    }
  },
});

button.addEventListener("click", async () => {
  button.disabled = true;
  const { ok } = await post(`/api/patients/${encodeURIComponent(patient)}/symptoms`, { note: "" });
  notedEl.textContent = ok
    ? `Noted at ${clock(Date.now() / 1000)}. Your caregiver can see it. Stop, rest and cool down.`
    : "That did not go through. Please tell your caregiver.";
  setTimeout(() => { button.disabled = false; }, 3000);
});
