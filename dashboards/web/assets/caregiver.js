// Caregiver view: one tile per assigned patient, live over Server-Sent Events.
import {
  session, post, stream, el, num, signed, clock, ago,
  LEVEL_LABEL, QUALITY_LABEL, FLAG_LABEL,
} from "/assets/common.js";

const RANK = { ok: 0, caution: 1, cool_down: 2 };
const Z95 = 1.96;
const FLAG_WINDOW_S = 60;
const tilesEl = document.getElementById("tiles");
const bannersEl = document.getElementById("banners");
const emptyEl = document.getElementById("empty");
const tiles = new Map();

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
  t.spark = el("div", { class: "spark" });
  const cell = (label, node) => el("div", {}, el("dt", { text: label }), node);
  t.root = el("article", { class: "tile", "data-patient": p.patient, "data-level": "waiting" },
    el("header", {}, el("h2", { text: name }), el("span", { class: "pid", text: p.patient }), t.chip),
    el("dl", { class: "vitals" },
      cell("Heart rate", t.hr), cell("Core rise (est.)", t.rise),
      cell("Skin temp", t.skin), cell("To threshold", t.mtt), cell("Threshold", t.thr)),
    t.spark, t.badges);
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

function snapshot(data) {
  tilesEl.replaceChildren();
  bannersEl.replaceChildren();
  tiles.clear();
  for (const p of data.patients) {
    const t = makeTile(p);
    t.flags = p.flags;
    t.symptoms = p.symptoms;
    if (p.state) applyState(t, p.state);
    setHistory(t, p.history);
    for (const [kind, v] of Object.entries(p.vitals)) setVital(t, kind, v.value, v.time);
    for (const ev of p.pending) addBanner(t, ev);
    renderBadges(t);
    order(t);
  }
  emptyEl.hidden = data.patients.length > 0;
}

const handlers = {
  snapshot,
  sample: (m) => { const t = tiles.get(m.patient); if (t) setVital(t, m.kind, m.value, m.time); },
  state: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    applyState(t, m.state);
    if (m.point) pushPoint(t, m.point);
  },
  alert: (m) => {
    const t = tiles.get(m.patient);
    if (!t) return;
    if (m.event.kind === "quality" && t.state) applyState(t, { ...t.state, quality: m.event.quality });
    if (m.event.requires_ack) addBanner(t, m.event);
  },
  ack: (m) => { const t = tiles.get(m.patient); if (t) removeBanner(t, m.event_id); },
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
    if (t && m.stop == null) setHistory(t, []);
  },
};

stream("/api/events", handlers, document.getElementById("conn"));
