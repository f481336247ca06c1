// The care-team page: patients (add, edit with the valid ranges shown, archive), patient
// links (QR code), caregivers (invite, reset, disable), who sees whom, the audit log.
// Every rule is enforced by the server; this page only hides what the role cannot do.
import { session, post, getJson, el, signed } from "/assets/common.js";

const $ = (id) => document.getElementById(id);
const errorEl = $("team-error");
let me = null;
let ranges = {};
let current = null; // the open patient's record (with its version)

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

function show(node, kind, text) {
  node.dataset.kind = kind;
  node.textContent = text;
}

function short(value) {
  if (value === null || value === undefined) return "";
  return Object.entries(value).map(([k, v]) => `${k}: ${v}`).join(", ");
}

function conflictText(data) {
  const lines = [data.error];
  for (const c of data.changes || []) {
    lines.push(`${c.actor} at ${when(c.at)}: ${short(c.before)} → ${short(c.after)}`);
  }
  return lines.join(" · ");
}

function rangeText(spec) {
  const lo = spec.exclusiveMinimum !== undefined ? `> ${spec.exclusiveMinimum}` : spec.minimum !== undefined ? `≥ ${spec.minimum}` : "";
  const hi = spec.maximum !== undefined ? `≤ ${spec.maximum}` : "";
  if (spec.enum) return spec.enum.join(" / ");
  return [lo, hi].filter(Boolean).join(" and ");
}

function auditRow(e, withSubject) {
  const row = el("tr", { class: e.outcome === "refused" ? "refused" : "" },
    el("td", { text: when(e.at) }), el("td", { text: e.actor }),
    el("td", { text: (e.outcome === "refused" ? "REFUSED " : "") + e.action + (e.detail ? ` (${e.detail})` : "") }));
  if (withSubject) row.append(el("td", { text: `${e.kind} ${e.subject}` }));
  row.append(el("td", { text: short(e.before) }), el("td", { text: short(e.after) }));
  return row;
}

async function loadAudit() {
  const data = await getJson("/api/team/audit?limit=100");
  $("audit").tBodies[0].replaceChildren(...data.entries.map((e) => auditRow(e, true)));
}

async function loadPatients() {
  const data = await getJson("/api/team/patients");
  const body = $("patients").tBodies[0];
  body.replaceChildren(...data.patients.map((p) => {
    const open = el("button", { type: "button", text: "Open", "data-patient": p.id });
    open.addEventListener("click", () => openPatient(p.id));
    return el("tr", { class: p.archived ? "archived" : "", id: `patient-row-${p.id}` },
      el("td", { text: p.id }), el("td", { text: p.display_name || "" }),
      el("td", { text: `${signed(p.profile.threshold_rise_c, 2)} °C` }),
      el("td", { text: `v${p.version}${p.archived ? " (archived)" : ""}` }), el("td", {}, open));
  }));
  const select = $("assign").patient;
  select.replaceChildren(...data.patients.filter((p) => !p.archived).map((p) => el("option", { value: p.id, text: p.id })));
}

async function loadCaregivers() {
  if (me.role !== "admin") return;
  const data = await getJson("/api/team/caregivers");
  $("caregivers").tBodies[0].replaceChildren(...data.caregivers.map((c) => {
    const state = c.disabled ? "disabled" : c.invite_pending ? "invited" : "active";
    const toggle = el("button", { type: "button", text: c.disabled ? "Enable" : "Disable", "data-login": c.login });
    toggle.addEventListener("click", () => caregiverAction(c, { disabled: !c.disabled }));
    const reset = el("button", { type: "button", text: "Reset password", "data-login": c.login });
    reset.addEventListener("click", () => caregiverAction(c, {}, true));
    return el("tr", { id: `caregiver-row-${c.login}` }, el("td", { text: c.login }), el("td", { text: c.role }),
      el("td", { text: state }), el("td", { text: c.patients.join(", ") }), el("td", {}, toggle, reset));
  }));
  $("assign").login.replaceChildren(...data.caregivers.map((c) => el("option", { value: c.login, text: c.login })));
}

async function caregiverAction(c, change, reset = false) {
  const url = `/api/team/caregivers/${c.login}${reset ? "/reset" : ""}`;
  const { ok, data } = await post(url, { version: c.version, ...change });
  if (!ok) show(errorEl, "error", data.changes ? conflictText(data) : data.error);
  else if (data.invite_url) show($("invite-msg"), "ok", `New one-time link for ${c.login}: ${data.invite_url}`);
  await refresh();
}

function profileForm(record) {
  const form = $("profile");
  const inputs = [];
  for (const [name, spec] of Object.entries(ranges)) {
    const editable = spec.threshold ? record.may_edit_thresholds : record.may_edit_profile;
    const value = name === "display_name" ? record.display_name : record.profile[name];
    let input;
    if (spec.enum) {
      input = el("select", { name }, ...spec.enum.map((v) => el("option", { value: v, text: v })));
      input.value = value;
    } else if (spec.type === "boolean") {
      input = el("input", { name, type: "checkbox" });
      input.checked = Boolean(value);
    } else {
      const attrs = { name, id: `field-${name}`, value: value ?? "" };
      if (spec.type === "number" || spec.type === "integer") {
        attrs.type = "number";
        attrs.step = spec.type === "integer" ? "1" : "0.01";
        if (spec.minimum !== undefined) attrs.min = String(spec.minimum);
        if (spec.maximum !== undefined) attrs.max = String(spec.maximum);
      }
      input = el("input", attrs);
    }
    input.disabled = !editable;
    inputs.push(el("label", {}, `${name.replaceAll("_", " ")}`, input, el("span", { class: "range", text: rangeText(spec) })));
  }
  const save = el("button", { type: "submit", class: "primary", id: "save-profile", text: "Save" });
  save.disabled = !(record.may_edit_thresholds || record.may_edit_profile);
  form.replaceChildren(...inputs, save);
}

function changedFields(form) {
  const changes = {};
  for (const [name, spec] of Object.entries(ranges)) {
    const input = form.elements[name];
    if (!input || input.disabled) continue;
    const before = name === "display_name" ? current.display_name : current.profile[name];
    let value;
    if (spec.type === "boolean") value = input.checked;
    else if (input.value === "") value = null;
    else if (spec.type === "number" || spec.type === "integer") value = Number(input.value);
    else value = input.value;
    if (value !== before) changes[name] = value;
  }
  return changes;
}

async function openPatient(id) {
  const record = await getJson(`/api/team/patients/${id}`);
  current = record;
  $("patient-section").hidden = false;
  $("patient-title").textContent = `${record.id}${record.display_name ? " · " + record.display_name : ""}`;
  const decided = record.threshold
    ? `; threshold ${signed(record.threshold.threshold_c, 2)} °C set by ${record.threshold.set_by}, ${new Date(record.threshold.set_at).toLocaleString([], { dateStyle: "short", timeStyle: "medium" })}`
    : "";
  $("patient-version").textContent = `version ${record.version}${record.archived ? ", archived" : ""}${decided}`;
  profileForm(record);
  $("archive").hidden = me.role !== "admin";
  $("archive").textContent = record.archived ? "Restore" : "Archive";
  $("links-box").hidden = me.role === "caregiver";
  $("links").replaceChildren(...record.links.map((l) => {
    const item = el("li", { id: `link-${l.id}` }, `${l.active ? "active" : "revoked"} · by ${l.created_by} · ${when(l.created_at)} `);
    if (l.active) {
      const revoke = el("button", { type: "button", text: "Revoke" });
      revoke.addEventListener("click", async () => {
        const { ok, data } = await post(`/api/team/patients/${id}/links/${l.id}/revoke`);
        if (!ok) show(errorEl, "error", data.error);
        await openPatient(id);
      });
      item.append(revoke);
    }
    return item;
  }));
  $("patient-audit").tBodies[0].replaceChildren(...record.audit.map((e) => auditRow(e, false)));
}

async function refresh() {
  await Promise.all([loadPatients(), loadCaregivers(), loadAudit()]);
  if (current) await openPatient(current.id);
}

$("profile").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const msg = $("profile-msg");
  const changes = changedFields(ev.target);
  if (!Object.keys(changes).length) { show(msg, "ok", "Nothing changed."); return; }
  const { ok, status, data } = await post(`/api/team/patients/${current.id}`, { version: current.version, profile: changes });
  if (ok) show(msg, "ok", `Saved: version ${data.version}.`);
  else if (status === 409) show(msg, "error", conflictText(data));
  else show(msg, "error", data.error || `HTTP ${status}`);
  if (ok) await refresh();
  else if (status !== 409) await openPatient(current.id).then(() => show(msg, "error", data.error || `HTTP ${status}`));
});

$("archive").addEventListener("click", async () => {
  const { ok, data } = await post(`/api/team/patients/${current.id}/archive`, { version: current.version, archived: !current.archived });
  if (!ok) show($("profile-msg"), "error", data.changes ? conflictText(data) : data.error);
  await refresh();
});

$("issue-link").addEventListener("click", async () => {
  const { ok, data } = await post(`/api/team/patients/${current.id}/links`);
  if (!ok) { show($("profile-msg"), "error", data.error); return; }
  await openPatient(current.id);
  $("new-link").hidden = false;
  $("link-qr").src = data.qr_svg;
  $("link-url").textContent = data.url;
});

$("new-patient").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const { ok, status, data } = await post("/api/team/patients", {
    id: f.elements.namedItem("id").value, display_name: f.display_name.value || null,
    profile: { threshold_rise_c: Number(f.threshold_rise_c.value) },
  });
  show($("new-patient-msg"), ok ? "ok" : "error", ok ? `Added ${data.id}.` : data.error || `HTTP ${status}`);
  if (ok) { f.reset(); await refresh(); }
});

$("new-caregiver").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  $("invite-url").textContent = "";
  show($("invite-msg"), "ok", "");
  const { ok, data } = await post("/api/team/caregivers", { login: f.login.value, role: f.role.value });
  show($("invite-msg"), ok ? "ok" : "error", ok ? `Invited ${data.login}: send them this one-time link.` : data.error);
  $("invite-url").textContent = ok ? data.invite_url : "";
  if (ok) await refresh();
});

async function assign(assigned) {
  const f = $("assign");
  const { ok, data } = await post("/api/team/assignments", { login: f.login.value, patient: f.patient.value, assigned });
  show($("assign-msg"), ok ? "ok" : "error", ok ? (data.changed ? "Done." : "Nothing to change.") : data.error);
  await refresh();
}
$("assign").addEventListener("submit", (ev) => { ev.preventDefault(); assign(true); });
$("unassign").addEventListener("click", () => assign(false));

$("logout").addEventListener("click", async () => {
  await post("/api/logout");
  window.location.href = "/login";
});

try {
  await session();
  me = await getJson("/api/team/me");
  ranges = await getJson("/api/team/ranges");
  $("who").textContent = `${me.login} (${me.role})`;
  for (const node of document.querySelectorAll("[data-role=admin]")) node.hidden = me.role !== "admin";
  await refresh();
  const wanted = new URLSearchParams(window.location.search).get("patient");
  if (wanted) await openPatient(wanted);
} catch (err) {
  show(errorEl, "error", `${err.message}`);
}
