// The hosts of a cluster (docs/viscript.md "Cluster"): the host list with state, the start menu's and the charts'
// host pickers. Fed by refreshProcesses (GET /api/hosts); a daemon without agents lists only itself.
import { $, el } from './dom.js';
import { fmtBytes } from './format.js';

let hosts = [];

/** This daemon's name (rows of other hosts are addressed HOST:ID). */
export const localHost = () => hosts.find((h) => h.local)?.name ?? null;

/** Names of the hosts that answer now (this one and the connected agents). */
export const reachableHosts = () => hosts.filter((h) => h.state === 'local' || h.state === 'connected').map((h) => h.name);

function ago(time) {
  if (!time) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  return s < 2 ? 'now' : `${s}s ago`;
}

function fillPicker(select, names) {
  const current = select.value;
  if ([...select.options].map((o) => o.value).join() !== names.join()) {
    select.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
    if (names.includes(current)) select.value = current;
  }
  select.hidden = names.length < 2;
}

export function renderHosts(list) {
  hosts = list;
  const tbody = $('#hosts tbody');
  tbody.replaceChildren(...list.map((h) => {
    const s = h.stats;
    return el('tr', { 'data-host': h.name, 'data-state': h.state, title: h.reason ?? h.address ?? '' },
      el('td', { class: 'name', text: h.name }),
      el('td', { class: 'state state-' + h.state, text: h.state }),
      el('td', { class: 'seen', text: h.local ? '-' : ago(h.lastSeen) }),
      el('td', { class: 'version', text: h.version ?? '-' }),
      el('td', { class: 'load', text: s?.load1 != null ? s.load1.toFixed(2) : '-' }),
      el('td', { class: 'mem', text: s?.memoryAvailableBytes != null ? `${fmtBytes(s.memoryAvailableBytes)} / ${fmtBytes(s.memoryTotalBytes)}` : '-' }),
      el('td', { class: 'running', text: s ? `${s.running}/${s.processes}` : '-' }));
  }));
  const names = reachableHosts();
  fillPicker($('#start-host'), names);
  $('#start-host-pick').hidden = names.length < 2;
  fillPicker($('#chart-host'), names);
}

/** The host the start menu starts on (null: this one). */
export const startHost = () => { const v = $('#start-host').value; return v && v !== localHost() ? v : null; };

/** The host whose resources the charts show (null: this one). */
export const chartHost = () => { const v = $('#chart-host').value; return v && v !== localHost() ? v : null; };
