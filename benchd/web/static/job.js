// The live view of one job (#job): its state, progress bar, buttons, and its log over the
// WebSocket. The log and the byte offset reached are kept in sessionStorage, so a refresh or
// a dropped connection continues at that offset: no line lost, none repeated.
import { api, duration } from './common.js';

const PROGRESS = '@@benchd-progress ';
const ACTIVE = ['starting', 'running', 'pausing', 'preempting'];  // holding a slot
const WAITING = ['queued', 'paused', 'preempted'];
const FINAL = ['completed', 'failed', 'cancelled', 'unknown'];
const POLL_MS = 2000;
const MAX_KEPT = 2_000_000;   // characters of log kept across a refresh

const el = document.getElementById('job');
if (el) start(el);

function start(el) {
  const $ = (id) => document.getElementById(id);
  const jobId = el.dataset.jobId;
  const mayAct = Boolean(el.dataset.mayAct);   // pause/resume shown only where allowed
  const typical = el.dataset.typicalS ? Number(el.dataset.typicalS) : null;
  const key = `benchd-log:${jobId}`;
  const pane = $('log');
  let rec = JSON.parse(el.dataset.record);
  let cancelling = false, ws = null, done = false, retry = 0;
  let saved = JSON.parse(sessionStorage.getItem(key) || 'null') || { offset: 0, text: '' };
  let pending = '', progress = null;

  pane.textContent = saved.text;
  pane.scrollTop = pane.scrollHeight;

  function show() {
    const s = rec.status;
    const badge = $('job-badge');
    badge.textContent = s;
    badge.className = `badge badge-${s}`;
    badge.dataset.state = s;
    $('job-message').textContent = message();
    const mayCancel = !FINAL.includes(s);
    $('job-cancel').hidden = !mayCancel;
    $('job-cancel').disabled = cancelling;
    $('job-cancel').textContent = cancelling ? 'Cancelling…' : 'Cancel';
    $('job-pause').hidden = !mayAct || !['queued', 'preempted', 'running'].includes(s) || cancelling;
    $('job-resume').hidden = !mayAct || s !== 'paused' || cancelling;
    const run = rec.run_dir ? rec.run_dir.split('/').pop() : null;
    $('job-results').hidden = !run;
    if (run) $('job-results').href = `/results/${run}`;
    $('job-progress').hidden = !(ACTIVE.includes(s) || progress);
    tick();
    window.dispatchEvent(new CustomEvent('benchd:job', { detail: rec }));
  }

  function message() {
    const s = rec.status;
    if (cancelling && !FINAL.includes(s)) return 'Cancelling…';
    switch (s) {
      case 'queued': return `Queued, position ${rec.queue_position ?? '?'}` +
        (rec.estimated_start_s != null ? ` (starts in about ${duration(rec.estimated_start_s)})` : '');
      case 'paused': return `Paused${rec.queue_position ? `, keeps position ${rec.queue_position}` : ''}: it does not start until resumed`;
      case 'preempted': return 'Preempted by a higher-priority job; it resumes when a slot is free';
      case 'starting': return 'Starting…';
      case 'running': return `Running for ${rec.requester_name}`;
      case 'pausing': return rec.stop_mode === 'now' ? 'Pausing now (its current experiment will be redone)…'
        : 'Pausing at the next experiment boundary…';
      case 'preempting': return `Making room for higher-priority job ${rec.preempted_by || ''}` +
        (rec.stop_mode === 'now' ? ' now…' : ' at the next experiment boundary…');
      case 'completed': return `Completed${elapsedText()}`;
      case 'failed': return `Failed${elapsedText()}: ${rec.reason || `exit code ${rec.exit_code}`}`;
      case 'cancelled': return `Cancelled${elapsedText()}` +
        (rec.reason ? `: ${rec.reason.replace(/^cancelled /, '')}` : '');
      default: return `Outcome unknown: ${rec.reason || 'benchd lost track of the job'}`;
    }
  }

  function elapsedS() {
    if (!rec.started_at) return null;
    const end = rec.finished_at ? new Date(rec.finished_at) : new Date();
    return (end - new Date(rec.started_at)) / 1000;
  }
  function elapsedText() { const e = elapsedS(); return e == null ? '' : ` after ${duration(e)}`; }

  function tick() {
    const e = elapsedS();
    $('job-elapsed').textContent = e == null ? '' : `· ${duration(e)} elapsed`;
    $('job-eta').textContent = (typical && e != null && e < typical && !FINAL.includes(rec.status))
      ? `· ETA ${duration(typical - e)}` : '';
  }

  function drawProgress(p) {
    progress = p;
    const fin = ['experiment_done', 'published'].includes(p.phase);
    const frac = p.total ? Math.min(1, ((p.k || 0) - (fin ? 0 : 1)) / p.total) : 0;
    $('job-bar').style.width = `${Math.max(0, frac) * 100}%`;
    const where = p.phase === 'published' ? ['published'] : [p.experiment, p.adapter];
    $('job-progress-text').textContent =
      [`${p.k}/${p.total} experiments`, ...where.filter(Boolean)].join(' · ');
    $('job-progress').hidden = false;
  }

  function flush() {
    if (!pending) return;
    const atEnd = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 8;
    pane.append(pending);
    saved.text += pending;
    pending = '';
    if (saved.text.length > MAX_KEPT) saved.text = saved.text.slice(-MAX_KEPT);
    try { sessionStorage.setItem(key, JSON.stringify(saved)); } catch { /* full: not kept */ }
    if (atEnd) pane.scrollTop = pane.scrollHeight;
  }

  function onMessage(ev) {
    const m = JSON.parse(ev.data);
    if (m.type === 'log') {
      saved.offset = m.offset;
      if (!m.partial && m.line.startsWith(PROGRESS)) {
        try { drawProgress(saved.progress = JSON.parse(m.line.slice(PROGRESS.length))); }
        catch { /* not JSON: shown as a line below */ }
        try { sessionStorage.setItem(key, JSON.stringify(saved)); } catch { /* full */ }
        if (progress) return;
      }
      pending += m.line + (m.partial ? '' : '\n');
      if (pending.length > 65536) flush(); else requestAnimationFrame(flush);
    } else if (m.type === 'cancelling') {
      cancelling = true; show();
    } else if (m.type === 'done') {
      done = true; flush();
      refresh();
    }
  }

  function connect() {
    if (done || ws) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    ws = new WebSocket(`${proto}://${location.host}/api/benchmark/jobs/${jobId}/logs/ws?offset=${saved.offset}`);
    $('log-state').textContent = '(following)';
    ws.onmessage = onMessage;
    ws.onopen = () => { retry = 0; };
    ws.onclose = () => {
      ws = null;
      flush();
      if (done) { $('log-state').textContent = ''; return; }
      $('log-state').textContent = '(reconnecting…)';
      retry = Math.min(retry + 1, 5);
      setTimeout(connect, 500 * 2 ** retry);
    };
  }

  async function refresh() {
    try {
      rec = await api('GET', `/api/benchmark/jobs/${jobId}`);
    } catch (e) {
      $('job-message').textContent = e.message;
      return;
    }
    if (FINAL.includes(rec.status)) cancelling = false;
    show();
    if (!WAITING.includes(rec.status)) connect();
  }

  async function act(button, path, busyText) {
    const error = $('job-action-error');
    error.hidden = true;
    const label = button.textContent;
    button.disabled = true;
    if (busyText) button.textContent = busyText;
    try {
      rec = await api('POST', `/api/benchmark/jobs/${jobId}/${path}`, {});
      if (path === 'cancel') cancelling = false;
      show();
    } catch (e) {
      if (path === 'cancel') cancelling = false;
      error.textContent = e.message;
      error.hidden = false;
      button.textContent = label;
      button.disabled = false;
      show();
    }
  }

  $('job-cancel').addEventListener('click', () => {
    cancelling = true; show();
    act($('job-cancel'), 'cancel', 'Cancelling…');
  });
  $('job-pause').addEventListener('click', () => act($('job-pause'), 'pause'));
  $('job-resume').addEventListener('click', () => act($('job-resume'), 'resume'));

  if (saved.progress) drawProgress(saved.progress);     // as it was before the refresh
  show();
  if (!WAITING.includes(rec.status)) connect();
  setInterval(() => { if (!FINAL.includes(rec.status)) refresh(); else tick(); }, POLL_MS);
  setInterval(tick, 1000);
}
