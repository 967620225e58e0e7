// viscript web GUI: a client of the control API (docs/gui.md). Plain ES modules, no bundler.
import { $ } from './dom.js';
import { initSignInBox, signInFromFragment, streamEvents } from './api.js';
import { newPane, onProcessesChanged, panes } from './terminals.js';
import { loadApps } from './menu.js';
import { refreshProcesses } from './processes.js';
import { drawCharts } from './charts.js';
import { refreshTopology } from './topology.js';
import { refreshLedger } from './ledger.js';

async function followEvents() {
  const status = $('#status');
  for (let delay = 1000; ; delay = Math.min(delay * 2, 15000)) {
    try {
      status.textContent = 'live';
      status.className = 'status live';
      const r = await streamEvents('/events', (name) => {
        if (name === 'state' || name === 'registered' || name === 'disconnected') refreshProcesses();
      });
      if (!r.ok && r.status === 401) { status.textContent = 'token needed'; return; }
    } catch { /* network error: retry */ }
    status.textContent = 'reconnecting';
    status.className = 'status down';
    await new Promise((res) => setTimeout(res, delay));
    refreshProcesses();
  }
}


const showSignIn = initSignInBox();
const signedIn = await signInFromFragment();
if (signedIn === false) showSignIn();
else if (signedIn === null && document.body.dataset.needsToken === 'true') showSignIn();
onProcessesChanged(refreshProcesses);
$('#new-term').addEventListener('click', () => newPane());

// The server rendered the table and the start menu; replace them with live data and keep them fresh.
newPane();
loadApps();
refreshProcesses();
followEvents();
setInterval(refreshProcesses, 2000);
refreshTopology().then((configured) => { if (configured) setInterval(refreshTopology, 5000); });
refreshLedger().then((configured) => { if (configured) setInterval(refreshLedger, 10000); });
window.addEventListener('resize', () => { for (const p of panes.values()) p.refit(); drawCharts(); });
