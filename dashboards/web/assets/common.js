// Shared helpers of the heatmon pages: the session (with its CSRF token), JSON calls and
// formatting. No patient data is cached in the browser beyond the open page.

let current = null;

export async function session() {
  const resp = await fetch("/api/session", { credentials: "same-origin", cache: "no-store" });
  if (!resp.ok) throw new Error(`session: HTTP ${resp.status}`);
  current = await resp.json();
  return current;
}

export function setCsrf(token) {
  if (current) current.csrf = token;
  else current = { csrf: token };
}

export async function post(url, body = {}) {
  if (!current) await session();
  const resp = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": current.csrf },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await resp.json(); } catch { /* empty body */ }
  return { ok: resp.ok, status: resp.status, data };
}

export async function getJson(url) {
  const resp = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
  return data;
}

export const LEVEL_LABEL = { ok: "OK", caution: "Getting warm", cool_down: "Cool down now" };
export const QUALITY_LABEL = {
  no_data: "no data",
  sensor_off: "sensor off",
  stale: "data stale",
};
export const FLAG_LABEL = {
  invalid: "invalid reading",
  out_of_range: "out of range",
  zero: "strap off skin",
  no_contact: "no skin contact",
  doubled: "HR artefact",
  duplicate: "duplicate",
  out_of_order: "out of order",
};

export function num(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

export function signed(value, digits) {
  if (value === null || value === undefined) return "–";
  const v = Number(value);
  return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits);
}

export function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

// "just now", "4 min ago", "1 h 5 min ago": how long since a wall-clock time.
export function ago(epochSeconds, nowSeconds = Date.now() / 1000) {
  const minutes = Math.floor(Math.max(0, nowSeconds - epochSeconds) / 60);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min ago`;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// The live stream (Server-Sent Events) and whether heatmon is watching: /assets/watch.js.
