// Threshold suggestions on the caregiver page: for each assigned patient, the personal
// threshold heatmon suggests, the sessions and rises behind it (as a chart and a table),
// and Accept / Reject. Nothing changes until a caregiver presses one of them.
import { session, post, getJson, el, signed, num } from "/assets/common.js";

const REFRESH_MS = 20000;
const Z95 = 1.96;
const SVG = "http://www.w3.org/2000/svg";
const section = document.getElementById("suggestions");
const list = document.getElementById("suggestion-list");
const names = new Map();
const decided = new Map(); // suggestion id → what the caregiver just did (kept on refresh)
let busy = false;

const me = await session();

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text != null) node.textContent = text;
  return node;
}

function day(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

// Each session's onset (rise ± 95 %) as a dot with a bar; the threshold in force dashed,
// the suggested one solid, the estimated onset rise as a band.
function chart(s) {
  const W = 340, H = 130, L = 44, R = 8, T = 8, B = 22;
  const ev = s.evidence;
  const values = [s.current_c, s.suggested_c, 0];
  for (const r of ev) {
    const sd = r.rise_sd_c ?? 0;
    values.push(r.rise_c - Z95 * sd, r.rise_c + Z95 * sd);
  }
  const lo = Math.floor((Math.min(...values) - 0.05) * 10) / 10;
  const hi = Math.ceil((Math.max(...values) + 0.05) * 10) / 10;
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const x = (i) => L + (W - L - R) * ((i + 0.5) / Math.max(ev.length, 1));
  const root = svg("svg", {
    class: "onset-chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": `symptom onsets of ${ev.length} sessions against the thresholds`,
  });
  for (let v = lo; v <= hi + 1e-9; v += 0.1) {
    root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    root.append(svg("text", { x: L - 4, y: y(v) + 4, class: "tick" }, `${signed(v, 1)}`));
  }
  const band = Z95 * s.onset_sd_c;
  root.append(svg("rect", {
    x: L, width: W - L - R, y: y(s.onset_mean_c + band),
    height: Math.max(1, y(s.onset_mean_c - band) - y(s.onset_mean_c + band)), class: "onset-band",
  }));
  root.append(svg("line", { x1: L, x2: W - R, y1: y(s.current_c), y2: y(s.current_c), class: "current" }));
  root.append(svg("line", { x1: L, x2: W - R, y1: y(s.suggested_c), y2: y(s.suggested_c), class: "suggested" }));
  ev.forEach((r, i) => {
    const sd = r.rise_sd_c ?? 0;
    root.append(svg("line", { x1: x(i), x2: x(i), y1: y(r.rise_c - Z95 * sd), y2: y(r.rise_c + Z95 * sd), class: "err" }));
    root.append(svg("circle", { cx: x(i), cy: y(r.rise_c), r: 4, class: "onset" }));
    root.append(svg("text", { x: x(i), y: H - 6, class: "tick mid" }, `#${i + 1}`));
  });
  return root;
}

function card(patient, s) {
  const name = names.get(patient) || patient;
  const node = el("article", { class: "suggestion", "data-patient": patient, "data-suggestion": s.id, "data-status": s.status });
  node.append(
    el("h3", { text: `${name}: personal threshold ${signed(s.suggested_c, 2)} °C suggested` }),
    el("p", { class: "what" },
      el("span", { text: "Now " }), el("strong", { class: "now", text: `${signed(s.current_c, 2)} °C` }),
      el("span", { text: " → suggested " }), el("strong", { class: "new", text: `${signed(s.suggested_c, 2)} °C` }),
      el("span", { class: "reason", text: ` · ${s.reason}` })),
  );
  const legend = el("p", { class: "legend" },
    el("span", { class: "key current", text: "threshold in force" }),
    el("span", { class: "key suggested", text: "suggested" }),
    el("span", { class: "key onset", text: "symptoms began (± 95 %)" }));
  node.append(chart(s), legend);
  const rows = s.evidence.map((r, i) => el("tr", { "data-session": r.session },
    el("td", { text: `#${i + 1}` }), el("td", { text: day(r.time) }),
    el("td", { class: "rise", text: `${signed(r.rise_c, 2)} °C${r.rise_sd_c != null ? ` ± ${num(Z95 * r.rise_sd_c, 2)}` : ""}` }),
    el("td", { class: "session", text: r.session })));
  node.append(el("table", { class: "evidence" },
    el("thead", {}, el("tr", {}, el("th", { text: "" }), el("th", { text: "Session" }),
      el("th", { text: "Symptoms at (est. rise)" }), el("th", { text: "Id" }))),
    el("tbody", {}, ...rows)));
  const status = el("p", { class: "decision", role: "status" });
  const done = decided.get(s.id);
  if (s.status !== "pending" || done) {
    status.textContent = done || `${s.status} by ${s.decided_by} at ${day(s.decided_at)}`;
    node.append(status);
    return node;
  }
  const accept = el("button", { type: "button", class: "primary accept", text: `Accept ${signed(s.suggested_c, 2)} °C` });
  const reject = el("button", { type: "button", class: "reject", text: "Reject" });
  const decide = async (action) => {
    accept.disabled = reject.disabled = true;
    busy = true;
    const url = `/api/patients/${encodeURIComponent(patient)}/suggestions/${encodeURIComponent(s.id)}/${action}`;
    const { ok, data } = await post(url);
    busy = false;
    if (ok) {
      const d = data.suggestion;
      const text = action === "accept"
        ? `Accepted by ${d.decided_by} at ${day(d.decided_at)}: ${name}'s threshold is now ${signed(d.suggested_c, 2)} °C.`
        : `Rejected by ${d.decided_by} at ${day(d.decided_at)}: the threshold stays ${signed(d.current_c, 2)} °C.`;
      decided.set(s.id, text);
      node.dataset.status = d.status;
      accept.remove(); reject.remove();
      status.textContent = text;
    } else {
      status.textContent = data.error || "That did not work; reload the page.";
      accept.disabled = reject.disabled = false;
    }
  };
  accept.addEventListener("click", () => decide("accept"));
  reject.addEventListener("click", () => decide("reject"));
  node.append(el("div", { class: "actions" }, accept, reject), status);
  return node;
}

async function refresh() {
  if (busy || me.kind !== "caregiver") return;
  const cards = [];
  for (const patient of me.patients) {
    let view;
    try {
      view = await getJson(`/api/patients/${encodeURIComponent(patient)}/thresholds`);
    } catch {
      continue; // not enabled, or not reachable just now
    }
    for (const s of view.suggestions) {
      if (s.status === "pending" || decided.has(s.id)) cards.push(card(patient, s));
    }
  }
  if (busy) return;
  list.replaceChildren(...cards);
  section.hidden = cards.length === 0;
}

if (me.kind === "caregiver") {
  try {
    const { patients } = await getJson("/api/patients");
    for (const p of patients) names.set(p.patient, p.display_name || p.patient);
  } catch { /* names are a nicety */ }
  await refresh();
  setInterval(refresh, REFRESH_MS);
}
