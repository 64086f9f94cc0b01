// Shared by every page (loaded first; modules run in document order): the JSON API helper
// with the CSRF token, readable errors, local and relative times.
const token = document.querySelector('meta[name="csrf-token"]').content;

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// A same-origin JSON request; a refusal throws ApiError with the API's own message.
export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.headers['X-CSRF-Token'] = token;
    init.body = JSON.stringify(body ?? {});
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `benchd did not answer (${e.message}); is it running?`);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: shown as text below */ }
  if (!resp.ok) {
    const err = data && data.error;
    throw new ApiError(resp.status, err ? err.code : `http_${resp.status}`,
      err ? err.message : `${resp.status} ${resp.statusText}: ${text.slice(0, 200)}`);
  }
  return data;
}

export function flash(message) {
  const el = document.getElementById('flash');
  el.textContent = message;
  el.hidden = !message;
}

export function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

export function relative(date) {
  const s = (Date.now() - date.getTime()) / 1000;
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

const localFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  second: '2-digit', timeZoneName: 'short' });

const shortFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

// <time class="when" datetime=ISO> -> "Dec 4, 06:12 · 5 min ago" (local), the full local
// time with its zone as the title;
// <span class="duration" data-start data-end> -> "1m12s".
export function localTimes(root = document) {
  for (const t of root.querySelectorAll('time.when')) {
    const d = new Date(t.dateTime);
    if (isNaN(d)) continue;
    t.title = localFormat.format(d);
    t.textContent = `${shortFormat.format(d)} · ${relative(d)}`;
  }
  for (const el of root.querySelectorAll('.duration')) {
    if (!el.dataset.start) continue;
    const end = el.dataset.end ? new Date(el.dataset.end) : new Date();
    el.textContent = duration((end - new Date(el.dataset.start)) / 1000);
  }
}

globalThis.benchd = { api, flash, duration, relative, localTimes, ApiError };
localTimes();
