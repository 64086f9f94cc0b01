// The Run form: experiments from /api/experiments, the start request, the API's validation
// messages next to their field, and the button disabled with a spinner while a job of this
// page is starting, queued or running (job.js tells its state with a `benchd:job` event).
import { api, flash } from './common.js';

const form = document.getElementById('run-form');
const button = document.getElementById('run-button');
const FINAL = ['completed', 'failed', 'cancelled', 'unknown'];

function busy(on, text) {
  button.disabled = on;
  button.classList.toggle('busy', on);
  button.querySelector('.label').textContent = text || 'Run';
}

function fieldErrors(message) {
  for (const p of form.querySelectorAll('.field-error')) p.textContent = '';
  const m = /^([a-z_]+)/.exec(message || '');
  const name = m && form.querySelector(`.field-error[data-for="${m[1]}"]`) ? m[1] : 'body';
  form.querySelector(`.field-error[data-for="${name}"]`).textContent = message;
  return name;
}

async function loadExperiments() {
  const box = document.getElementById('experiments');
  try {
    const list = await api('GET', '/api/experiments');
    for (const e of list) {
      const label = document.createElement('label');
      label.className = 'check';
      const input = Object.assign(document.createElement('input'),
        { type: 'checkbox', name: 'experiments', value: e.experiment });
      const text = document.createElement('span');
      text.innerHTML = '<b></b> <span class="muted"></span>';
      text.querySelector('b').textContent = e.experiment;
      text.querySelector('.muted').textContent =
        `${e.title} · reference ${e.reference.name} (${e.reference.model})`;
      label.append(input, text);
      box.append(label);
    }
    tick();
    document.getElementById('experiments-loading').textContent =
      'None ticked: all experiments.';
  } catch (e) {
    document.getElementById('experiments-loading').textContent =
      `Cannot list the experiments: ${e.message}`;
  }
}

function config() {
  const data = new FormData(form);
  const body = {};
  const experiments = data.getAll('experiments');
  if (experiments.length) body.experiments = experiments;
  for (const name of ['n', 'seed', 'perf_rounds', 'priority']) {
    const raw = String(data.get(name) ?? '').trim();
    if (raw === '') continue;
    body[name] = /^-?\d+$/.test(raw) ? Number(raw) : raw;  // the API names a bad value
  }
  const label = String(data.get('label') ?? '').trim();
  if (label) body.label = label;
  const notify = String(data.get('notify') ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
  if (notify.length) body.notify = notify.map((url) => ({ url }));
  return body;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  fieldErrors('');
  flash('');
  busy(true, 'Starting…');
  try {
    const rec = await api('POST', '/api/benchmark/jobs', config());
    location.assign(`/?job=${rec.job_id}`);    // the page shows the job; a refresh keeps it
  } catch (e) {
    busy(false);
    fieldErrors(e.message);
  }
});

let filled = false;
function fill(config) {   // the form shows what the job on the page was asked to run
  if (filled) return;
  filled = true;
  for (const name of ['n', 'seed', 'perf_rounds', 'priority', 'label']) {
    if (config[name] != null) form.elements[name].value = config[name];
  }
  if (config.notify) form.elements.notify.value = config.notify.map((t) => t.url).join('\n');
  experimentsWanted = config.experiments || [];
  tick();
}
let experimentsWanted = [];
function tick() {
  for (const box of form.querySelectorAll('input[name="experiments"]')) {
    box.checked = experimentsWanted.includes(box.value);
  }
}

window.addEventListener('benchd:job', (ev) => {
  fill(ev.detail.config || {});
  const s = ev.detail.status;
  if (FINAL.includes(s)) busy(false);
  else busy(true, { queued: 'Queued…', paused: 'Paused', preempted: 'Preempted…',
                   pausing: 'Pausing…', preempting: 'Preempting…' }[s] || 'Running…');
});

loadExperiments();
