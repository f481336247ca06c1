// Caregiver view: one tile per assigned patient, live over Server-Sent Events.
import {
  session, post, el, num, signed, clock, ago,
  LEVEL_LABEL, QUALITY_LABEL, FLAG_LABEL,
} from "/assets/common.js";
import { Prompter } from "/assets/prompts.js";
import { TIMING } from "/assets/timing.js";
import { Watcher } from "/assets/watch.js";

const RANK = { ok: 0, caution: 1, cool_down: 2 };
const Z95 = 1.96;
const FLAG_WINDOW_S = 60;
const tilesEl = document.getElementById("tiles");
const bannersEl = document.getElementById("banners");
const emptyEl = document.getElementById("empty");
const tiles = new Map();
const PATIENT_ACK_BY = "patient:self";
const SOUND_KEY = "heatmon.caregiverSound";
const soundBtn = document.getElementById("sound");
const watchBanner = document.getElementById("watch-banner");
const announceEl = document.getElementById("announce");
const connEl = document.getElementById("conn");
const prompter = new Prompter();
let soundOn = false;
try { soundOn = window.localStorage.getItem(SOUND_KEY) === "1"; } catch { /* private mode */ }
let connection = null; // the watcher's reason: null while heatmon is reachable
let resumedTimer = null;

const me = await session();
if (me.kind !== "caregiver") window.location.href = "/login";
document.getElementById("who").textContent = me.login;
document.getElementById("logout").addEventListener("click", async () => {
  await post("/api/logout");
  window.location.href = "/login";
});

function sparkOptions(width, tile) {
  return {
    width, height: 64,
    cursor: { show: false }, legend: { show: false }, select: { show: false },
    axes: [{ show: false }, { show: false }],
    scales: {
      x: { time: true },
      y: {
        range: (u, min, max) => {
          const thr = tile.threshold ?? 0.5;
          return [Math.min(-0.05, min ?? 0), Math.max(thr + 0.1, max ?? 0)];
        },
      },
    },
    series: [
      {},
      { label: "core rise", stroke: "#1452a3", width: 2, points: { show: false } },
      { label: "95 % upper", stroke: "rgba(20,82,163,0.25)", width: 1, points: { show: false } },
      { label: "95 % lower", stroke: "rgba(20,82,163,0.25)", width: 1, points: { show: false } },
      { label: "threshold", stroke: "#a35f00", width: 1, dash: [4, 4], points: { show: false } },
    ],
    // The estimate's 95 % interval as a band around the line.
    bands: [{ series: [2, 3], fill: "rgba(20,82,163,0.15)" }],
  };
}

// A history point is [time, rise, sd, heart rate, skin]: the sparkline's columns.
function sparkColumns(points, threshold) {
  const band = (p, sign) => (p[1] == null || p[2] == null ? null : p[1] + sign * Z95 * p[2]);
  return [
    points.map((p) => p[0]), points.map((p) => p[1]),
    points.map((p) => band(p, 1)), points.map((p) => band(p, -1)),
    points.map(() => threshold),
  ];
}

function makeTile(p) {
  const name = p.display_name || p.patient;
  const t = { patient: p.patient, name, threshold: null, flags: [], symptoms: [], pending: new Map() };
  const dd = (cls) => el("dd", { class: cls, text: "–" });
  t.hr = dd("hr"); t.rise = dd("rise"); t.skin = dd("skin"); t.mtt = dd("mtt"); t.thr = dd("thr");
  t.chip = el("span", { class: "chip", text: "waiting" });
  t.badges = el("footer", { class: "badges" });
  t.watch = el("p", { class: "watch", hidden: "" });
  t.cooling = el("p", { class: "cooling" });
  t.lastReadingAt = performance.now();
  t.sessionOpen = false;
  t.spark = el("div", { class: "spark" });
  const cell = (label, node) => el("div", {}, el("dt", { text: label }), node);
  t.root = el("article", { class: "tile", "data-patient": p.patient, "data-level": "waiting" },
    el("header", {}, el("h2", { text: name }), el("span", { class: "pid", text: p.patient }), t.chip),
    el("dl", { class: "vitals" },
      cell("Heart rate", t.hr), cell("Core rise (est.)", t.rise),
      cell("Skin temp", t.skin), cell("To threshold", t.mtt), cell("Threshold", t.thr)),
    t.watch, t.cooling, t.spark, t.badges);
  t.points = [];
  tilesEl.append(t.root);
  t.plot = new uPlot(sparkOptions(Math.max(200, t.spark.clientWidth || 260), t),
    sparkColumns([], null), t.spark);
  new ResizeObserver(() => {
    const w = t.spark.clientWidth;
    if (w > 0 && w !== t.plot.width) t.plot.setSize({ width: w, height: 64 });
  }).observe(t.spark);
  tiles.set(p.patient, t);
  return t;
}

function setVital(t, kind, value, time) {
  if (kind === "heart_rate_bpm") {
    t.hr.textContent = `${num(value, 0)} bpm`;
    t.hr.dataset.time = String(time);
    t.hr.dataset.value = String(value);
  } else if (kind === "skin_temp_c") {
    t.skin.textContent = `${num(value, 1)} °C`;
  } else if (kind === "battery_percent") {
    t.battery = value;
    renderBadges(t);
  }
}

function applyState(t, s) {
  if (t.level && s.level !== t.level) announceEl.textContent = `${t.name}: ${LEVEL_LABEL[s.level] || s.level}`;
  t.state = s;
  t.level = s.level;
  t.threshold = s.threshold_rise_c;
  t.root.dataset.level = s.level;
  t.root.dataset.quality = s.quality;
  t.chip.dataset.level = s.level;
  t.chip.textContent = LEVEL_LABEL[s.level] || s.level;
  const ci = s.core_temp_sd_c != null ? ` <small>±${num(Z95 * s.core_temp_sd_c, 2)}</small>` : "";
  t.rise.innerHTML = `${signed(s.core_delta_c, 2)} °C${ci}`;
  t.rise.title = "estimated rise of core temperature since the start of the session, ± 95 % interval";
  t.thr.textContent = `${signed(s.threshold_rise_c, 2)} °C`;
  t.thr.dataset.value = String(s.threshold_rise_c);
  if (s.heart_rate_bpm != null && !t.hr.dataset.time) t.hr.textContent = `${num(s.heart_rate_bpm, 0)} bpm`;
  if (s.skin_temp_c != null) t.skin.textContent = `${num(s.skin_temp_c, 1)} °C`;
  if (s.core_delta_c >= s.threshold_rise_c) t.mtt.textContent = "reached";
  else if (s.minutes_to_threshold != null) t.mtt.textContent = `${num(s.minutes_to_threshold, 0)} min`;
  else t.mtt.textContent = "not rising";
  renderBadges(t);
  order(t);
}

function pushPoint(t, point) {
  t.points.push(point);
  const horizon = point[0] - 30 * 60;
  while (t.points.length && t.points[0][0] < horizon) t.points.shift();
  t.plot.setData(sparkColumns(t.points, t.threshold));
}

function setHistory(t, history) {
  t.points = history.slice();
  t.plot.setData(sparkColumns(t.points, t.threshold));
}

function renderBadges(t) {
  const badges = [];
  const s = t.state;
  if (s && s.quality !== "good") badges.push(["warn", QUALITY_LABEL[s.quality] || s.quality]);
  const latest = s ? s.time : 0;
  const counts = {};
  for (const [time, flag] of t.flags) {
    if (time >= latest - FLAG_WINDOW_S) counts[flag] = (counts[flag] || 0) + 1;
  }
  for (const [flag, n] of Object.entries(counts)) {
    badges.push(["warn", `${FLAG_LABEL[flag] || flag} ×${n}`]);
  }
  if (t.battery != null && t.battery < 20) badges.push(["warn", `battery ${num(t.battery, 0)} %`]);
  if (s && s.measured_core_c != null) badges.push(["", "core measured"]);
  else if (s) badges.push(["", `estimated (${s.estimator})`]);
  for (const sym of t.symptoms.slice(-1)) {
    badges.push(["symptom", `symptoms ${clock(sym.received ?? sym.epoch)}`]);
  }
  t.badges.replaceChildren(...badges.map(([cls, text]) => el("span", { class: `badge ${cls}`, text })));
}

function order(t) {
  const rank = RANK[t.level] ?? -1;
  const urgent = t.pending.size > 0 ? 0 : 1;
  t.root.style.order = String(urgent * 10 + (2 - rank));
}

function addBanner(t, ev) {
  if (t.pending.has(ev.id)) return;
  const ack = el("button", { type: "button", class: "ack", text: "Acknowledge" });
  const banner = el("div", { class: "banner", role: "alert", "data-patient": t.patient, "data-event": ev.id },
    el("strong", { text: `${t.name}: ${LEVEL_LABEL[ev.level] || ev.level}` }),
    el("span", { text: `core est. ${signed(ev.core_delta_c, 2)} °C` }),
    el("span", { class: "when", text: `since ${clock(ev.received ?? ev.epoch)}` }),
    el("span", { class: "ago", "data-since": String(ev.received ?? ev.epoch), text: "" }),
    ack);
  ack.addEventListener("click", async () => {
    ack.disabled = true;
    const url = `/api/patients/${encodeURIComponent(t.patient)}/alerts/${encodeURIComponent(ev.id)}/ack`;
    const { ok, status } = await post(url);
    if (ok || status === 404) removeBanner(t, ev.id);
    else ack.disabled = false;
  });
  t.pending.set(ev.id, banner);
  bannersEl.append(banner);
  refreshAges();
  order(t);
}

// Banners show the wall-clock time the alert reached the server (the samples' own clock
// may differ: in the demo it runs many times faster) and how long it has waited.
function refreshAges() {
  for (const node of bannersEl.querySelectorAll(".ago")) {
    node.textContent = `(${ago(Number(node.dataset.since))})`;
  }
}
setInterval(refreshAges, 15000);

function removeBanner(t, eventId) {
  const banner = t.pending.get(eventId);
  if (banner) banner.remove();
  t.pending.delete(eventId);
  order(t);
}

// The patient tapped "I'm cooling down": the banner says so (until dismissed here), the tile
// keeps a line for the rest of the episode.
function patientAnswered(t, ack) {
  t.cooling.textContent = `Tapped "I'm cooling down" at ${clock(ack.received)}`;
  t.coolingEvent = ack.event_id;
  const banner = t.pending.get(ack.event_id);
  if (!banner) return;
  t.pending.delete(ack.event_id);
  banner.dataset.ackedBy = "patient";
  const dismiss = el("button", { type: "button", class: "ack", text: "Dismiss" });
  dismiss.addEventListener("click", () => banner.remove());
  banner.querySelector("button.ack").replaceWith(dismiss);
  banner.querySelector("strong").textContent = `${t.name}: cooling down`;
  dismiss.before(el("span", { class: "answered", text: `tapped "I'm cooling down" at ${clock(ack.received)}` }));
  order(t);
}

// Is heatmon watching this patient? Not when the page has lost heatmon, nor while a
// session is open and no reading has arrived for TIMING.readingsStaleS seconds (or the
// engine says the data are stale or the strap is off).
function tileWatch(t) {
  let reason = null;
  if (connection) reason = "Not watching: the connection to heatmon is lost";
  else if (t.sessionOpen && t.state && (t.state.quality === "stale" || t.state.quality === "sensor_off")) {
    reason = "Not watching: no fresh readings from the sensor";
  } else if (t.sessionOpen && performance.now() - t.lastReadingAt > TIMING.readingsStaleS * 1000) {
    reason = `Not watching: no readings for ${Math.round((performance.now() - t.lastReadingAt) / 1000)} s`;
  }
  const was = t.root.dataset.watching === "no";
  t.root.dataset.watching = reason ? "no" : "yes";
  t.watch.hidden = !reason;
  t.watch.textContent = reason || "";
  if (reason && !was && !connection) {
    announceEl.textContent = `${t.name}: heatmon cannot see the readings`;
    if (soundOn) prompter.tone("not_watching");
  }
}
setInterval(() => { for (const t of tiles.values()) tileWatch(t); }, 1000);

function reading(t) {
  t.lastReadingAt = performance.now();
}

function snapshot(data) {
  tilesEl.replaceChildren();
  bannersEl.replaceChildren();
  tiles.clear();
  for (const p of data.patients) {
    const t = makeTile(p);
    t.flags = p.flags;
    t.symptoms = p.symptoms;
    t.sessionOpen = p.session ? p.session.stop == null : p.state !== null;
    if (p.state) applyState(t, p.state);
    setHistory(t, p.history);
    for (const [kind, v] of Object.entries(p.vitals)) setVital(t, kind, v.value, v.time);
    for (const ev of p.pending) addBanner(t, ev);
    const ack = p.last_ack;
    if (ack && ack.by === PATIENT_ACK_BY && p.last_level_event && p.last_level_event.id === ack.event_id) {
      patientAnswered(t, ack);
    }
    renderBadges(t);
    order(t);
    tileWatch(t);
  }
  emptyEl.hidden = data.patients.length > 0;
}

const handlers = {
  snapshot,
  sample: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    reading(t);
    setVital(t, m.kind, m.value, m.time);
  },
  state: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    reading(t);
    t.sessionOpen = true;
    applyState(t, m.state);
    if (m.point) pushPoint(t, m.point);
    tileWatch(t);
  },
  alert: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    if (m.event.kind === "quality" && t.state) applyState(t, { ...t.state, quality: m.event.quality });
    if (m.event.kind === "level" && m.event.id !== t.coolingEvent) {
      t.cooling.textContent = "";
      t.coolingEvent = null;
    }
    if (m.event.requires_ack) {
      addBanner(t, m.event);
      if (soundOn && m.event.level === "cool_down") {
        prompter.tone("cool_down");
        prompter.speak(`${t.name}: cool down now.`);
      }
    }
    tileWatch(t);
  },
  ack: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    if (m.by === PATIENT_ACK_BY) patientAnswered(t, m);
    else removeBanner(t, m.event_id);
  },
  flag: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    t.flags.push([m.time, m.flag]);
    if (t.flags.length > 50) t.flags.shift();
    renderBadges(t);
  },
  symptom: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    t.symptoms.push(m.symptom);
    renderBadges(t);
  },
  session: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    t.sessionOpen = m.stop == null;
    if (t.sessionOpen) { setHistory(t, []); reading(t); }
    tileWatch(t);
  },
};

// -- sound on a new cool_down (a toggle, kept in localStorage) --------------------------------

function showSound() {
  soundBtn.textContent = `Sound on new cool-down: ${soundOn ? "on" : "off"}`;
  soundBtn.setAttribute("aria-pressed", String(soundOn));
}
soundBtn.addEventListener("click", () => {
  soundOn = !soundOn;
  try { window.localStorage.setItem(SOUND_KEY, soundOn ? "1" : "0"); } catch { /* private mode */ }
  if (soundOn) { prompter.unlock(); prompter.tone("caution"); }
  showSound();
});
// Browsers allow sound only after a tap on the page: the first one unlocks it.
document.addEventListener("pointerdown", () => { if (soundOn && !prompter.unlocked) prompter.unlock(); }, true);
showSound();

// -- the live stream and "not watching" -------------------------------------------------------

function showConnection(reason) {
  connection = reason;
  if (reason) {
    clearTimeout(resumedTimer);
    watchBanner.dataset.state = "lost";
    connEl.dataset.state = "lost";
    connEl.textContent = "not watching";
    watchBanner.textContent = "heatmon cannot see your patients' readings: the connection to heatmon is lost. This page keeps trying.";
    watchBanner.hidden = false;
    if (soundOn) prompter.tone("not_watching");
  } else {
    connEl.dataset.state = "live";
    connEl.textContent = "live";
    watchBanner.dataset.state = "resumed";
    watchBanner.textContent = "heatmon can see your patients' readings again.";
    clearTimeout(resumedTimer);
    resumedTimer = setTimeout(() => {
      if (!connection) { watchBanner.hidden = true; watchBanner.textContent = ""; }
    }, TIMING.resumedShownS * 1000);
  }
  for (const t of tiles.values()) tileWatch(t);
}

const watcher = new Watcher({
  url: "/api/events",
  handlers,
  onChange: (reason, previous) => {
    if (reason || previous) showConnection(reason);
  },
  onRefused: async () => {
    // Logged out or expired (or heatmon restarted): back to the login.
    const me = await session().catch(() => null);
    if (me && me.kind !== "caregiver") window.location.href = "/login";
  },
});
watcher.start();
// The stream's own state, for the small indicator next to the title.
setInterval(() => {
  if (connection) return;
  const open = watcher.streamOpen;
  connEl.dataset.state = open ? "live" : "lost";
  connEl.textContent = open ? "live" : "reconnecting…";
}, 500);
