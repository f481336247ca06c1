// History view: a past session's heart rate, estimated core rise, skin temperature and
// alerts on one chart, read from InfluxDB through the API.
import { session, getJson, el, clock, signed, LEVEL_LABEL } from "/assets/common.js";

const patientSel = document.getElementById("patient");
const sessionSel = document.getElementById("session");
const statusEl = document.getElementById("history-status");
const chartEl = document.getElementById("chart");
const alertsEl = document.getElementById("alerts");
let plot = null;

const me = await session();
if (me.kind !== "caregiver") window.location.href = "/login";
document.getElementById("who").textContent = me.login;
const params = new URLSearchParams(window.location.search);
patientSel.replaceChildren(...me.patients.map((p) => el("option", { value: p, text: p })));
if (params.get("patient")) patientSel.value = params.get("patient");

async function loadSessions() {
  statusEl.textContent = "loading sessions…";
  try {
    const data = await getJson(`/api/patients/${encodeURIComponent(patientSel.value)}/sessions`);
    sessionSel.replaceChildren(...data.sessions.map((s) =>
      el("option", { value: s.session, text: `${new Date(s.time).toLocaleString()} · ${s.activity || ""}` })));
    if (params.get("session")) sessionSel.value = params.get("session");
    statusEl.textContent = data.sessions.length ? "" : "no stored sessions";
    if (data.sessions.length) await loadSession();
  } catch (err) {
    statusEl.textContent = `history unavailable: ${err.message}`;
  }
}

async function loadSession() {
  statusEl.textContent = "loading…";
  const url = `/api/patients/${encodeURIComponent(patientSel.value)}/sessions/${encodeURIComponent(sessionSel.value)}`;
  let data;
  try {
    data = await getJson(url);
  } catch (err) {
    statusEl.textContent = `history unavailable: ${err.message}`;
    return;
  }
  const th = data.thermal.filter((r) => r.time != null);
  const thermal = [th.map((r) => r.time / 1000), th.map((r) => r.heart_rate_bpm),
    th.map((r) => r.core_delta_c), th.map((r) => r.skin_temp_c), th.map((r) => r.threshold_rise_c)];
  // Alerts and symptom reports as markers on the rise axis, one series per kind.
  const markers = (rows) => [rows.map((r) => r.time / 1000), rows.map((r) => r.core_delta_c ?? 0)];
  const levels = (level) => data.alerts.filter((a) => a.kind === "level" && a.level === level);
  const joined = uPlot.join([
    thermal, markers(levels("caution")), markers(levels("cool_down")), markers(levels("ok")),
    markers(data.symptoms.filter((s) => s.time != null)),
  ]);
  const levelColour = { ok: "#2e7d32", caution: "#a35f00", cool_down: "#1452a3" };
  const marker = (label, fill, size) => ({
    label, scale: "rise", stroke: fill, fill, width: 2, paths: () => null,
    points: { show: true, size, fill, stroke: "#fff", width: 1.5 },
  });
  const opts = {
    width: Math.max(400, chartEl.clientWidth), height: 420,
    scales: { x: { time: true }, bpm: { auto: true }, rise: { auto: true }, skin: { auto: true } },
    axes: [
      {},
      { scale: "rise", label: "core rise (°C)" },
      { scale: "bpm", label: "heart rate (bpm)", side: 1, grid: { show: false } },
      { scale: "skin", label: "skin (°C)", side: 1, grid: { show: false } },
    ],
    series: [
      {},
      { label: "heart rate (bpm)", scale: "bpm", stroke: "#c0392b", width: 1.5 },
      { label: "core rise est. (°C)", scale: "rise", stroke: "#1452a3", width: 2.5 },
      { label: "skin temp (°C)", scale: "skin", stroke: "#7f8c8d", width: 1.5 },
      { label: "threshold", scale: "rise", stroke: "#a35f00", width: 1, dash: [6, 4], points: { show: false } },
      marker("alert: getting warm", levelColour.caution, 13),
      marker("alert: cool down", levelColour.cool_down, 15),
      marker("back to OK", levelColour.ok, 11),
      marker("symptoms", "#7b4a8c", 13),
    ],
  };
  if (plot) plot.destroy();
  plot = new uPlot(opts, joined, chartEl);
  alertsEl.replaceChildren(...data.alerts.map((a) => {
    const item = el("li", { text: `${clock(a.time / 1000)} · ${a.kind === "level" ? LEVEL_LABEL[a.level] || a.level : a.kind} · ${signed(a.core_delta_c, 2)} °C · ${a.message}` });
    item.style.color = levelColour[a.level] || "inherit";
    return item;
  }), ...data.symptoms.map((s) => el("li", { text: `${clock(s.time / 1000)} · symptoms reported ${s.note || ""}` })));
  statusEl.textContent = `${th.length} points, ${data.alerts.length} alerts`;
}

patientSel.addEventListener("change", () => { params.delete("session"); loadSessions(); });
sessionSel.addEventListener("change", loadSession);
if (me.patients.length) await loadSessions();
else statusEl.textContent = "no patients are assigned to you";
