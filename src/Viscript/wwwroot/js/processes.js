// The running-apps table: host, state, pid, uptime, CPU and memory (from each host's sampler), and the action buttons.
// Rows of this host are keyed by id, rows of an agent by HOST:ID (the same address the commands take).
import { $, el } from './dom.js';
import { api, problemLines } from './api.js';
import { drawCharts } from './charts.js';
import { fmtBytes, fmtUptime } from './format.js';
import { chartHost, localHost, reachableHosts, renderHosts } from './hosts.js';

const ACTIONS = ['ping', 'ru', 'sd', 'restart', 'logs'];
const ACTION_TITLES = { ping: 'Signal round trip', ru: 'Resource usage', sd: 'Shut down', restart: 'Restart', logs: 'Recent output' };
let processes = [];
let samples = new Map();

const keyOf = (host, id) => (host && host !== localHost() ? `${host}:${id}` : String(id));

function lastSample(key) {
  const s = samples.get(key);
  return s && s.samples.length ? s.samples[s.samples.length - 1] : null;
}

function renderProcesses() {
  const tbody = $('#processes tbody');
  const seen = new Set();
  for (const p of processes) {
    const key = keyOf(p.host, p.id);
    seen.add(key);
    let row = tbody.querySelector(`tr[data-id="${CSS.escape(key)}"]`);
    if (!row) {
      row = el('tr', { 'data-id': key, 'data-host': p.host ?? localHost() ?? '' });
      for (const c of ['host', 'id', 'app', 'state', 'pid', 'uptime', 'cpu', 'mem', 'actions']) row.append(el('td', { class: c }));
      tbody.append(row);
    }
    const actions = row.querySelector('td.actions');
    if (!actions.childElementCount) {
      for (const a of ACTIONS) {
        actions.append(el('button', { type: 'button', class: 'act act-' + a, 'data-action': a, 'data-id': key, title: ACTION_TITLES[a], text: a }));
      }
    }
    const last = lastSample(key);
    const live = ['Starting', 'Running', 'Stopping'].includes(p.state);
    row.dataset.state = p.state;
    row.querySelector('.host').textContent = p.host ?? localHost() ?? '-';
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
    empty = el('tr', { class: 'empty' }, el('td', { colspan: '9', text: 'No apps running. Start one from the Start menu.' }));
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
      const [procs, hostList] = await Promise.all([api('/processes'), api('/hosts')]);
      if (hostList.ok) renderHosts(hostList.data);
      if (procs.ok) processes = procs.data;
      // Each reachable host's sampler (an agent's through the primary); an unreachable host has none.
      const names = reachableHosts();
      const local = localHost();
      const answers = await Promise.all(names.map((h) => api(h === local ? '/samples' : '/samples?host=' + encodeURIComponent(h))));
      const next = new Map();
      answers.forEach((a, i) => { if (a.ok) for (const s of a.data) next.set(keyOf(names[i], s.id), { ...s, host: names[i] }); });
      if (names.length === 0 || answers.some((a) => a.ok)) samples = next;
      renderProcesses();
      const shown = chartHost() ?? local;
      drawCharts(new Map([...samples].filter(([, s]) => !shown || s.host === shown)));
    } while (refreshAgain);
  })();
  try { await refreshing; } finally { refreshing = null; }
}

$('#chart-host').addEventListener('change', () => refreshProcesses());

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
