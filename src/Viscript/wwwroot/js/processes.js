// The running-apps table: state, pid, uptime, CPU and memory (from the daemon's sampler), and the action buttons.
import { $, el } from './dom.js';
import { api, problemLines } from './api.js';
import { drawCharts } from './charts.js';
import { fmtBytes, fmtUptime } from './format.js';

const ACTIONS = ['ping', 'ru', 'sd', 'restart', 'logs'];
const ACTION_TITLES = { ping: 'Signal round trip', ru: 'Resource usage', sd: 'Shut down', restart: 'Restart', logs: 'Recent output' };
let processes = [];
let samples = new Map();



function lastSample(id) {
  const s = samples.get(id);
  return s && s.samples.length ? s.samples[s.samples.length - 1] : null;
}

function renderProcesses() {
  const tbody = $('#processes tbody');
  const seen = new Set();
  for (const p of processes) {
    seen.add(String(p.id));
    let row = tbody.querySelector(`tr[data-id="${p.id}"]`);
    if (!row) {
      row = el('tr', { 'data-id': String(p.id) });
      for (const c of ['id', 'app', 'state', 'pid', 'uptime', 'cpu', 'mem', 'actions']) row.append(el('td', { class: c }));
      tbody.append(row);
    }
    const actions = row.querySelector('td.actions');
    if (!actions.childElementCount) {
      for (const a of ACTIONS) {
        actions.append(el('button', { type: 'button', class: 'act act-' + a, 'data-action': a, 'data-id': String(p.id), title: ACTION_TITLES[a], text: a }));
      }
    }
    const last = lastSample(p.id);
    const live = ['Starting', 'Running', 'Stopping'].includes(p.state);
    row.dataset.state = p.state;
    row.querySelector('.id').textContent = p.id;
    row.querySelector('.app').textContent = p.app ?? (p.remote ? `remote ${p.remoteEndPoint ?? ''}` : '-');
    const state = row.querySelector('.state');
    state.textContent = p.display;
    state.className = 'state state-' + p.state.toLowerCase();
    // A finished process is always Exited(code); whether it was asked to stop is a separate flag.
    row.dataset.stopRequested = p.stopRequested ? 'true' : 'false';
    state.title = p.state === 'Exited' ? (p.stopRequested ? 'stopped on request (sd/kill/restart)' : 'ended on its own') : '';
    row.querySelector('.pid').textContent = p.pid ?? '-';
    row.querySelector('.uptime').textContent = fmtUptime(p.uptimeSeconds);
    row.querySelector('.cpu').textContent = live && last?.cpuPercent != null ? last.cpuPercent.toFixed(1) + ' %' : '-';
    row.querySelector('.mem').textContent = live && last?.rssBytes != null ? fmtBytes(last.rssBytes) : '-';
  }
  for (const row of tbody.querySelectorAll('tr[data-id]')) if (!seen.has(row.dataset.id)) row.remove();
  let empty = tbody.querySelector('tr.empty');
  if (processes.length === 0 && !empty) {
    empty = el('tr', { class: 'empty' }, el('td', { colspan: '8', text: 'No apps running. Start one from the Start menu.' }));
    tbody.append(empty);
  } else if (processes.length > 0 && empty) empty.remove();
}

let refreshing = null;
let refreshAgain = false;
export async function refreshProcesses() {
  if (refreshing) { refreshAgain = true; return refreshing; }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      const [procs, samp] = await Promise.all([api('/processes'), api('/samples')]);
      if (procs.ok) processes = procs.data;
      if (samp.ok) samples = new Map(samp.data.map((s) => [s.id, s]));
      renderProcesses();
      drawCharts(samples);
    } while (refreshAgain);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

$('#processes').addEventListener('click', async (e) => {
  const button = e.target.closest('button.act');
  if (!button) return;
  const { action, id } = button.dataset;
  const out = $('#action-output');
  out.textContent = `${action} ${id}...`;
  out.classList.remove('error');
  button.disabled = true;
  try {
    // The same command lines as the terminal, so the output reads the same as in the REPL and the CLI.
    const line = action === 'logs' ? `logs ${id} -n 100` : `${action} ${id}`;
    const { ok, data } = await api('/command', { method: 'POST', body: { line } });
    out.textContent = (ok ? data.lines : problemLines(data)).join('\n') || '(no output)';
    out.classList.toggle('error', !ok);
  } finally {
    button.disabled = false;
    refreshProcesses();
  }
});
