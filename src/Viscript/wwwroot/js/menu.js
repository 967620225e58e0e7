// The Start menu: one entry per configured app (help text, arguments field); starting types the command into the
// focused terminal, as the original GUI did. In a cluster a host picker chooses where: `start HOST:APP` (the apps
// listed are that host's, from its own config.yaml).
import { $, el } from './dom.js';
import { api } from './api.js';
import { startHost } from './hosts.js';
import { focusPane, focusedPane, newPane } from './terminals.js';

const startMenu = $('#start-menu');
function toggleMenu(open = startMenu.hidden) {
  startMenu.hidden = !open;
  $('#start-button').setAttribute('aria-expanded', String(open));
}
$('#start-button').addEventListener('click', (e) => { e.stopPropagation(); toggleMenu(); });
document.addEventListener('mousedown', (e) => {
  if (!startMenu.hidden && !startMenu.contains(e.target) && e.target !== $('#start-button')) toggleMenu(false);
});
document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !startMenu.hidden) toggleMenu(false); });
$('#menu-new-term').addEventListener('click', () => { toggleMenu(false); newPane(); });
$('#menu-defocus').addEventListener('click', () => { toggleMenu(false); focusPane(null, false); });

function startApp(app) {
  const input = startMenu.querySelector(`input.args[data-app="${CSS.escape(app)}"]`);
  const args = input ? input.value.trim() : '';
  toggleMenu(false);
  const pane = focusedPane();
  focusPane(pane.id, true);
  const host = startHost();
  pane.typeAndRun(`start ${host ? host + ':' : ''}${app}${args ? ' ' + args : ''}`);
}
startMenu.addEventListener('click', (e) => {
  const button = e.target.closest('button.start-app');
  if (button) startApp(button.dataset.app);
});
startMenu.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && e.target.matches('input.args')) { e.preventDefault(); startApp(e.target.dataset.app); }
});

$('#start-host').addEventListener('change', () => loadApps());

export async function loadApps() {
  const host = startHost();
  const { ok, data } = await api(host ? '/apps?host=' + encodeURIComponent(host) : '/apps');
  if (!ok) return;
  const list = $('#apps');
  list.replaceChildren();
  if (data.length === 0) list.append(el('li', { class: 'empty', text: 'No apps in config.yaml.' }));
  for (const a of data) {
    list.append(el('li', { class: 'app', 'data-app': a.name },
      el('div', { class: 'app-head' },
        el('button', { type: 'button', class: 'start-app', 'data-app': a.name, text: 'Start ' + a.name }),
        el('span', { class: 'desc', text: a.description })),
      el('pre', { class: 'help', text: a.help }),
      el('label', {}, 'arguments ', el('input', { class: 'args', 'data-app': a.name, placeholder: a.defaultArgs.join(' '), autocomplete: 'off', spellcheck: 'false' }))));
  }
}
