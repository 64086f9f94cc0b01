// Pin, unpin and discard buttons on the results pages; the API decides who may.
import { api, flash } from './common.js';

const ACTIONS = {
  pin: (run) => api('POST', `/api/results/${run}/pin`, {}),
  unpin: (run) => api('DELETE', `/api/results/${run}/pin`, {}),
  discard: (run) => api('DELETE', `/api/results/staged/${run}`, {}),
};

document.addEventListener('click', async (ev) => {
  const button = ev.target.closest('button');
  if (!button) return;
  const action = Object.keys(ACTIONS).find((a) => button.classList.contains(a));
  if (!action) return;
  if (action === 'discard' && !confirm(`Delete the files of staged run ${button.dataset.run}?`)) return;
  button.disabled = true;
  try {
    await ACTIONS[action](button.dataset.run);
    location.reload();
  } catch (e) {
    flash(`${action} ${button.dataset.run}: ${e.message}`);
    button.disabled = false;
  }
});
