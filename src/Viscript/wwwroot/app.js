// viscript web GUI: a client of the control API (docs/gui.md). Plain ES module, no bundler.
import { Terminal } from './lib/xterm.mjs';
import { FitAddon } from './lib/addon-fit.mjs';

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};

// ---------------------------------------------------------------- control API access

// A token given once as ?token= is moved into this tab's session storage and removed from the address bar.
const TOKEN_KEY = 'viscript-token';
{
  const params = new URLSearchParams(location.search);
  if (params.has('token')) {
    sessionStorage.setItem(TOKEN_KEY, params.get('token'));
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  }
}

function authHeaders(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: 'Bearer ' + token } : extra;
}

/** Calls the control API; never throws for HTTP errors: returns {ok, status, data}. */
async function api(path, { method = 'GET', body, signal } = {}) {
  let res;
  try {
    res = await fetch('/api' + path, {
      method,
      signal,
      headers: authHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return { ok: false, status: 0, data: { detail: 'viscript is not reachable (' + err.message + ')' } };
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (res.status === 401) showTokenBox();
  return { ok: res.ok, status: res.status, data };
}

/** Reads a server-sent event stream through fetch (EventSource cannot send the bearer header). */
async function streamEvents(path, onEvent, signal) {
  const res = await fetch('/api' + path, { headers: authHeaders({ Accept: 'text/event-stream' }), signal });
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { /* not json */ }
    if (res.status === 401) showTokenBox();
    return { ok: false, status: res.status, data };
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trimStart();
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
  return { ok: true };
}

function problemLines(data) {
  if (!data) return ['(no answer)'];
  if (Array.isArray(data.lines) && data.lines.length) return data.lines;
  return [data.detail || data.title || JSON.stringify(data)];
}

function showTokenBox() {
  const box = $('#token-box');
  if (box.hidden) {
    box.hidden = false;
    $('#token-input').focus();
  }
}

$('#token-box').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token-input').value.trim());
  location.reload();
});
if (document.body.dataset.needsToken === 'true' && !sessionStorage.getItem(TOKEN_KEY)) showTokenBox();

// ---------------------------------------------------------------- terminals

const RED = '\x1b[31m';
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';
const LOCAL_HELP = [
  'Terminal commands (this page):',
  '  new_term (nt)         Open another terminal.',
  '  close_term <n>        Close terminal n (no argument: this one).',
  '  list_terms (lt)       List terminals.',
  '  focus <n> / defocus   Focus terminal n / none.',
];

const panes = new Map();
let nextPaneId = 1;
let focused = null;

class Pane {
  constructor() {
    this.id = nextPaneId++;
    this.mode = 'prompt'; // prompt | busy | attach | follow
    this.buf = '';
    this.pos = 0;
    this.history = [];
    this.historyIndex = 0;
    this.stream = null; // AbortController of an attach/follow stream
    this.typeAhead = ''; // keys typed while a command runs, replayed at the next prompt
    this.cursorRow = 0; // row of the cursor within the (wrapped) input line
    this.targetId = null;
    // An unfinished output line of the attached/followed app (a prompt): shown at once as the start of the input row.
    this.shown = null; // text of the unfinished line so far
    this.shownStream = null;
    this.cut = 0; // chars of it already on an earlier row (the user pressed Enter after it)
    this.rowOpen = false; // whether the input row starts with it

    this.element = el('div', { class: 'pane', 'data-term': String(this.id) });
    const head = el('div', { class: 'pane-head' },
      el('span', { class: 'pane-title', text: 'Terminal ' + this.id }),
      el('span', { class: 'pane-mode' }),
      el('button', { type: 'button', class: 'pane-move pane-earlier', title: 'Move terminal left/up', 'aria-label': 'Move terminal ' + this.id + ' earlier', text: '\u25c0', onclick: (e) => { e.stopPropagation(); this.move(-1); } }),
      el('button', { type: 'button', class: 'pane-move pane-later', title: 'Move terminal right/down', 'aria-label': 'Move terminal ' + this.id + ' later', text: '\u25b6', onclick: (e) => { e.stopPropagation(); this.move(1); } }),
      el('button', { type: 'button', class: 'pane-large', title: 'Enlarge: full width, double height (again: back)', 'aria-label': 'Enlarge terminal ' + this.id, 'aria-pressed': 'false', text: '\u2922', onclick: (e) => { e.stopPropagation(); this.toggleLarge(); } }),
      el('button', { type: 'button', class: 'pane-close', title: 'Close terminal', 'aria-label': 'Close terminal ' + this.id, text: '\u00d7', onclick: (e) => { e.stopPropagation(); closePane(this.id); } }));
    this.body = el('div', { class: 'pane-body' });
    this.element.append(head, this.body);
    this.element.addEventListener('mousedown', () => focusPane(this.id, false));
    $('#terminals').append(this.element);

    this.term = new Terminal({
      convertEol: true,
      cursorBlink: true,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      theme: { background: '#101418', foreground: '#d8dee4', cursor: '#f0f0f0' },
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(this.body);
    this.term.onData((d) => this.onData(d));
    this.term.textarea?.addEventListener('focus', () => focusPane(this.id, false));
    this.resizer = new ResizeObserver(() => this.refit());
    this.resizer.observe(this.body);
    this.refit();
    this.term.write('? for help\r\n');
    this.prompt();

    this.taskButton = el('button', { type: 'button', class: 'task', 'data-term': String(this.id), text: 'Terminal ' + this.id, onclick: () => focusPane(this.id, true) });
    $('#tasks').append(this.taskButton);
  }

  refit() {
    try { this.fit.fit(); } catch { /* not laid out yet */ }
  }

  /** Moves the pane one place earlier (-1) or later (+1) in the grid; its taskbar button follows. */
  move(delta) {
    for (const [node, selector] of [[this.element, '#terminals > .pane'], [this.taskButton, '#tasks > .task']]) {
      const all = [...document.querySelectorAll(selector)];
      const i = all.indexOf(node);
      const j = i + delta;
      if (i < 0 || j < 0 || j >= all.length) continue;
      if (delta < 0) all[j].before(node);
      else all[j].after(node);
    }
    this.term.focus();
  }

  /** Toggles the large size: the pane spans every column and two rows (the terminal refits to it). */
  toggleLarge() {
    const large = this.element.classList.toggle('large');
    $('.pane-large', this.element).setAttribute('aria-pressed', String(large));
    this.term.focus();
  }

  promptText() {
    if (this.mode === 'prompt') return '> ';
    if (this.mode === 'attach') return this.rowOpen ? this.partialText() : '';
    if (this.mode === 'follow' && this.rowOpen) return this.partialText();
    return null; // busy/follow: no input line
  }

  partialText() {
    const text = (this.shown ?? '').slice(this.cut);
    return this.cut === 0 && this.shownStream === 'stderr' ? '[stderr] ' + text : text;
  }

  clearPartial() {
    this.shown = null;
    this.shownStream = null;
    this.cut = 0;
    this.rowOpen = false;
  }

  /** An unfinished line (SSE "partial"): everything since the last newline, shown without waiting for it. */
  showPartial(e) {
    const continues = this.shown !== null && this.shownStream === e.stream && e.text.startsWith(this.shown);
    if (!continues) {
      if (this.rowOpen) this.term.write(this.eraseInput() + this.partialText() + '\r\n');
      this.cut = 0;
    }
    this.shown = e.text;
    this.shownStream = e.stream;
    this.rowOpen = this.shown.length > this.cut;
    this.redraw();
  }

  /** A complete line: it finishes the unfinished one shown before (only the missing part is added), or prints as is. */
  showLine(e) {
    const continues = this.shown !== null && this.shownStream === e.stream && e.text.startsWith(this.shown);
    let text = formatLogLine(e);
    if (continues && this.cut > 0) text = e.text.slice(this.cut);
    else if (!continues && this.rowOpen) this.term.write(this.eraseInput() + this.partialText() + '\r\n');
    this.clearPartial();
    if (continues && text === '') this.redraw();
    else this.print([text]);
  }

  /** Escape codes that erase the input line, which may wrap over several rows, leaving the cursor at its start. */
  eraseInput() {
    const up = this.cursorRow > 0 ? `\x1b[${this.cursorRow}A` : '';
    this.cursorRow = 0;
    return up + '\r\x1b[J';
  }

  /** Rewrites the input line (prompt + buffer) and puts the cursor where it belongs, wrapping at the pane width. */
  redraw() {
    const p = this.promptText();
    if (p === null) return;
    const cols = Math.max(1, this.term.cols);
    const total = p.length + this.buf.length;
    const at = p.length + this.pos;
    let s = this.eraseInput() + p + this.buf;
    // xterm defers the wrap at the last column: force it so the cursor really is at the start of the next row.
    if (total > 0 && total % cols === 0) s += ' \r\x1b[K';
    const endRow = Math.floor(total / cols);
    const row = Math.floor(at / cols);
    const col = at % cols;
    if (endRow > row) s += `\x1b[${endRow - row}A`;
    s += '\r' + (col > 0 ? `\x1b[${col}C` : '');
    this.cursorRow = row;
    this.term.write(s);
  }

  /** Moves the cursor past the input line and starts a new row (the line stays on screen). */
  finishLine(suffix = '') {
    this.pos = this.buf.length;
    this.redraw();
    this.cursorRow = 0;
    this.term.write(suffix + '\r\n');
  }

  prompt() {
    this.buf = '';
    this.pos = 0;
    this.historyIndex = this.history.length;
    this.redraw();
    if (this.typeAhead && this.mode === 'prompt') {
      const keys = this.typeAhead;
      this.typeAhead = '';
      this.onData(keys);
    }
  }

  /** Prints output lines above the input line, keeping what is being typed. */
  print(lines, color = '') {
    const p = this.promptText();
    let s = p === null ? '' : this.eraseInput();
    for (const line of lines) s += color + line + (color ? RESET : '') + '\r\n';
    this.term.write(s);
    this.redraw();
  }

  setMode(mode) {
    this.mode = mode;
    const label = mode === 'attach' ? `attached to ${this.targetId} (CTRL+Z detaches)`
      : mode === 'follow' ? `following ${this.targetId} (CTRL+Z stops)`
      : mode === 'busy' ? 'running...' : '';
    $('.pane-mode', this.element).textContent = label;
  }

  onData(data) {
    if (this.mode === 'busy') {
      if (data === '\x03') this.typeAhead = '';
      else this.typeAhead += data;
      return;
    }
    let i = 0;
    while (i < data.length) {
      const c = data[i];
      if (c === '\x1b') {
        // CSI / SS3 sequences: arrows, home/end, delete.
        const m = /^\x1b(?:\[([0-9;]*)([A-Za-z~])|O([A-Za-z]))/.exec(data.slice(i));
        if (m) {
          this.key(m[2] === '~' ? m[1] + '~' : (m[2] || m[3]));
          i += m[0].length;
          continue;
        }
        i++;
        continue;
      }
      if (c === '\r' || c === '\n') {
        // A pasted CRLF counts once.
        if (c === '\r' && data[i + 1] === '\n') i++;
        this.enter();
        if (this.mode === 'busy') {
          this.typeAhead = data.slice(i + 1) + this.typeAhead;
          return;
        }
      } else if (c === '\x7f' || c === '\b') this.key('backspace');
      else if (c === '\x01') this.key('H');
      else if (c === '\x05') this.key('F');
      else if (c === '\x03') this.interrupt();
      else if (c === '\x1a') this.detach();
      else if (c === '\x0c') { this.term.clear(); this.cursorRow = 0; this.redraw(); }
      else if (c === '\x15') { this.buf = this.buf.slice(this.pos); this.pos = 0; this.redraw(); }
      else if (c === '\x0b') { this.buf = this.buf.slice(0, this.pos); this.redraw(); }
      else if (c === '\x17') this.deleteWord();
      else if (c >= ' ') this.insert(c);
      i++;
    }
  }

  editable() { return this.mode === 'prompt' || this.mode === 'attach'; }

  insert(text) {
    if (!this.editable()) return;
    this.buf = this.buf.slice(0, this.pos) + text + this.buf.slice(this.pos);
    this.pos += text.length;
    this.redraw();
  }

  deleteWord() {
    if (!this.editable()) return;
    let start = this.pos;
    while (start > 0 && this.buf[start - 1] === ' ') start--;
    while (start > 0 && this.buf[start - 1] !== ' ') start--;
    this.buf = this.buf.slice(0, start) + this.buf.slice(this.pos);
    this.pos = start;
    this.redraw();
  }

  key(k) {
    if (!this.editable()) return;
    switch (k) {
      case 'D': if (this.pos > 0) this.pos--; break;
      case 'C': if (this.pos < this.buf.length) this.pos++; break;
      case 'H': case '1~': case '7~': this.pos = 0; break;
      case 'F': case '4~': case '8~': this.pos = this.buf.length; break;
      case 'backspace':
        if (this.pos === 0) return;
        this.buf = this.buf.slice(0, this.pos - 1) + this.buf.slice(this.pos);
        this.pos--;
        break;
      case '3~':
        this.buf = this.buf.slice(0, this.pos) + this.buf.slice(this.pos + 1);
        break;
      case 'A':
        if (this.mode !== 'prompt' || this.historyIndex === 0) return;
        this.historyIndex--;
        this.buf = this.history[this.historyIndex];
        this.pos = this.buf.length;
        break;
      case 'B':
        if (this.mode !== 'prompt' || this.historyIndex >= this.history.length) return;
        this.historyIndex++;
        this.buf = this.history[this.historyIndex] ?? '';
        this.pos = this.buf.length;
        break;
      default: return;
    }
    this.redraw();
  }

  interrupt() {
    if (this.mode === 'follow') { this.detach(); return; }
    if (this.mode === 'prompt') {
      this.finishLine('^C');
      this.prompt();
    }
  }

  enter() {
    if (this.mode === 'attach') {
      const line = this.buf;
      this.buf = '';
      this.pos = 0;
      const before = this.rowOpen ? this.partialText() : '';
      this.term.write(this.eraseInput() + before + DIM + line + RESET + '\r\n');
      // The prompt stays on that row; what the app writes next starts a new one.
      if (this.rowOpen) { this.cut = this.shown.length; this.rowOpen = false; }
      this.sendInput(line);
      return;
    }
    if (this.mode !== 'prompt') return;
    const line = this.buf;
    this.finishLine();
    if (line.trim() && this.history[this.history.length - 1] !== line) this.history.push(line);
    this.buf = '';
    this.pos = 0;
    this.run(line);
  }

  /** Types a command into the pane as if the user had, then runs it (used by the start menu). */
  typeAndRun(line) {
    if (this.mode !== 'prompt') {
      this.print([`(busy: ${line} not run)`], RED);
      return;
    }
    this.buf = line;
    this.pos = line.length;
    this.redraw();
    this.enter();
  }

  async run(line) {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) { this.prompt(); return; }
    if (this.runLocal(words)) return;
    this.setMode('busy');
    const { ok, data } = await api('/command', { method: 'POST', body: { line } });
    this.setMode('prompt');
    if (!ok) {
      this.print(problemLines(data), RED);
      this.prompt();
      refreshProcesses();
      return;
    }
    const lines = [...data.lines];
    if (/^(help|h|\?)$/i.test(words[0]) && words.length === 1) lines.push('', ...LOCAL_HELP);
    this.term.write(lines.map((l) => l + '\r\n').join(''));
    switch (data.action) {
      case 'clear':
        this.cursorRow = 0;
        this.term.clear();
        this.term.write('\x1b[2J\x1b[H');
        break;
      case 'quit':
        closePane(this.id);
        return;
      case 'attach':
        this.startStream(data.targetId, 'attach');
        return;
      case 'follow':
        this.startStream(data.targetId, 'follow');
        return;
      default:
        break;
    }
    this.prompt();
    refreshProcesses();
  }

  runLocal(words) {
    const [cmd, arg] = [words[0].toLowerCase(), words[1]];
    const done = (lines, color) => { if (lines) this.print(lines, color); this.prompt(); return true; };
    switch (cmd) {
      case 'new_term': case 'nt':
        newPane();
        return done(null);
      case 'list_terms': case 'lt': case 'list_term': {
        const ids = [...panes.keys()];
        return done([`${ids.length} Terminal${ids.length === 1 ? '' : 's'}:`, ...ids.map((id) => `    ${id}${id === this.id ? '    (FOCUSED)' : ''}`)]);
      }
      case 'close_term': {
        const id = arg === undefined ? this.id : Number(arg);
        if (!panes.has(id)) return done([`Terminal with id ${arg} doesn't exist.`], RED);
        closePane(id);
        if (id !== this.id) this.prompt();
        return true;
      }
      case 'focus': {
        const id = Number(arg);
        if (!panes.has(id)) return done([`Terminal with id ${arg} doesn't exist.`], RED);
        this.prompt();
        focusPane(id, true);
        return true;
      }
      case 'defocus':
        this.prompt();
        focusPane(null, false);
        return true;
      default:
        return false;
    }
  }

  startStream(id, mode) {
    this.targetId = id;
    this.setMode(mode);
    if (mode === 'attach') this.print([`${DIM}Attached to ${id}: typed lines go to its input; CTRL+Z detaches.${RESET}`]);
    const controller = new AbortController();
    this.stream = controller;
    const tail = mode === 'attach' ? 20 : 0;
    streamEvents(`/processes/${id}/logs?follow=true&n=${tail}`, (name, e) => {
      if (this.stream !== controller) return;
      if (name === 'line') this.showLine(e);
      else if (name === 'partial') this.showPartial(e);
      else if (name === 'end') {
        this.print([`${DIM}[${id}] ${e.state || 'ended'}${RESET}`]);
        this.endStream(false);
      }
    }, controller.signal).then((r) => {
      if (this.stream !== controller) return;
      if (!r.ok) this.print(problemLines(r.data), RED);
      this.endStream(false);
    }).catch((err) => {
      if (this.stream !== controller) return;
      if (err.name !== 'AbortError') this.print([`stream failed: ${err.message}`], RED);
      this.endStream(false);
    });
  }

  endStream(announce) {
    const wasAttach = this.mode === 'attach';
    const id = this.targetId;
    this.stream?.abort();
    this.stream = null;
    if (this.rowOpen) this.term.write(this.eraseInput() + this.partialText() + '\r\n');
    else if (wasAttach) this.term.write(this.eraseInput());
    this.clearPartial();
    this.setMode('prompt');
    if (announce) this.term.write(`${DIM}${wasAttach ? 'Detached from' : 'Stopped following'} ${id}.${RESET}\r\n`);
    this.targetId = null;
    this.prompt();
  }

  detach() {
    if (this.mode === 'attach' || this.mode === 'follow') {
      this.finishLine('^Z');
      this.endStream(true);
    } else if (this.mode === 'prompt') {
      this.print(['No app is attached.']);
    }
  }

  async sendInput(line) {
    const id = this.targetId;
    const { ok, data } = await api(`/processes/${id}/stdin`, { method: 'POST', body: { line } });
    if (!ok && this.mode === 'attach' && this.targetId === id) this.print(problemLines(data), RED);
  }

  dispose() {
    this.stream?.abort();
    this.resizer.disconnect();
    this.term.dispose();
    this.element.remove();
    this.taskButton.remove();
  }
}

function formatLogLine(l) {
  if (l.stream === 'stderr') return `${RED}[stderr]${RESET} ${l.text}`;
  if (l.stream === 'system') return `${DIM}[viscript] ${l.text}${RESET}`;
  return l.text;
}

function newPane() {
  const pane = new Pane();
  panes.set(pane.id, pane);
  layoutPanes();
  focusPane(pane.id, true);
  return pane;
}

function closePane(id) {
  const pane = panes.get(id);
  if (!pane) return;
  pane.dispose();
  panes.delete(id);
  if (focused === id) focused = null;
  layoutPanes();
  const last = [...panes.keys()].pop();
  if (last !== undefined) focusPane(last, true);
}

function focusPane(id, moveKeyboard) {
  focused = id;
  for (const [pid, p] of panes) {
    p.element.classList.toggle('focused', pid === id);
    p.taskButton.classList.toggle('active', pid === id);
    p.taskButton.setAttribute('aria-pressed', String(pid === id));
  }
  if (id === null) {
    document.activeElement?.blur?.();
  } else if (moveKeyboard) {
    panes.get(id)?.term.focus();
  }
}

function layoutPanes() {
  const n = panes.size;
  const cols = n <= 1 ? 1 : n <= 4 ? 2 : 3;
  $('#terminals').style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  $('#terminals').classList.toggle('empty', n === 0);
}

function focusedPane() {
  return (focused !== null && panes.get(focused)) || [...panes.values()].pop() || newPane();
}

$('#new-term').addEventListener('click', () => newPane());

// ---------------------------------------------------------------- start menu

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
  pane.typeAndRun(`start ${app}${args ? ' ' + args : ''}`);
}
startMenu.addEventListener('click', (e) => {
  const button = e.target.closest('button.start-app');
  if (button) startApp(button.dataset.app);
});
startMenu.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && e.target.matches('input.args')) { e.preventDefault(); startApp(e.target.dataset.app); }
});

async function loadApps() {
  const { ok, data } = await api('/apps');
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

// ---------------------------------------------------------------- running apps

const ACTIONS = ['ping', 'ru', 'sd', 'restart', 'logs'];
const ACTION_TITLES = { ping: 'Signal round trip', ru: 'Resource usage', sd: 'Shut down', restart: 'Restart', logs: 'Recent output' };
let processes = [];
let samples = new Map();

function fmtUptime(s) {
  if (s === null || s === undefined) return '-';
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, sec = s % 60;
  if (d) return `${d}d${h}h`;
  if (h) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

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
async function refreshProcesses() {
  if (refreshing) { refreshAgain = true; return refreshing; }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      const [procs, samp] = await Promise.all([api('/processes'), api('/samples')]);
      if (procs.ok) processes = procs.data;
      if (samp.ok) samples = new Map(samp.data.map((s) => [s.id, s]));
      renderProcesses();
      drawCharts();
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

// ---------------------------------------------------------------- charts (SVG, no library)

const PALETTE = ['#4fc3f7', '#ffb74d', '#81c784', '#e57373', '#ba68c8', '#fff176', '#4db6ac', '#f06292', '#a1887f', '#90a4ae'];
const WINDOW_MS = 10 * 60 * 1000;
const SVG = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function drawChart(svg, pick, format) {
  const width = Math.max(200, svg.clientWidth || 400);
  const height = 120;
  const pad = { l: 58, r: 8, t: 8, b: 18 };
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const now = Date.now();
  const series = [...samples.values()].filter((s) => s.samples.some((x) => pick(x) != null));
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.samples.map(pick).filter((v) => v != null))));
  const x = (t) => pad.l + (width - pad.l - pad.r) * (1 - Math.min(1, Math.max(0, (now - t) / WINDOW_MS)));
  const y = (v) => pad.t + (height - pad.t - pad.b) * (1 - v / max);
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    svg.append(svgEl('line', { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: 'grid' }));
    const label = svgEl('text', { x: pad.l - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' });
    label.textContent = format(v);
    svg.append(label);
  }
  for (const [text, t, anchor] of [['10 min ago', now - WINDOW_MS, 'start'], ['now', now, 'end']]) {
    const label = svgEl('text', { x: x(t), y: height - 4, 'text-anchor': anchor, class: 'axis' });
    label.textContent = text;
    svg.append(label);
  }
  for (const s of series) {
    const color = PALETTE[s.id % PALETTE.length];
    // Gaps (process not running) split the line.
    let points = [];
    const flush = () => {
      if (points.length > 1) svg.append(svgEl('polyline', { points: points.join(' '), fill: 'none', stroke: color, 'stroke-width': '1.6' }));
      else if (points.length === 1) svg.append(svgEl('circle', { cx: points[0].split(',')[0], cy: points[0].split(',')[1], r: 2, fill: color }));
      points = [];
    };
    for (const sample of s.samples) {
      const v = pick(sample);
      const t = Date.parse(sample.time);
      if (v == null || now - t > WINDOW_MS) { if (v == null) flush(); continue; }
      points.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    }
    flush();
  }
  if (series.length === 0) {
    const t = svgEl('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'axis' });
    t.textContent = 'no samples yet';
    svg.append(t);
  }
}

function drawCharts() {
  drawChart($('#cpu-chart'), (s) => s.cpuPercent, (v) => v.toFixed(v < 10 ? 1 : 0) + ' %');
  drawChart($('#mem-chart'), (s) => s.rssBytes, fmtBytes);
  const legend = $('#chart-legend');
  legend.replaceChildren(...[...samples.values()].filter((s) => s.samples.length).map((s) =>
    el('span', { class: 'key' }, el('i', { style: `background:${PALETTE[s.id % PALETTE.length]}` }), `${s.app ?? 'client'} #${s.id}`)));
}

// ---------------------------------------------------------------- topology (SVG)

const short = (key) => key.slice(0, 8);

function drawTopology(topo) {
  const box = $('#topology');
  if (!topo.configured) {
    box.replaceChildren(el('p', { class: 'muted', text: 'No Skywire manager configured. Start viscript with --manager PUBKEY@host:port --manager-key-file <admin key> to draw the mesh.' }));
    return;
  }
  if (topo.error) {
    box.replaceChildren(el('p', { class: 'error', text: `Manager ${topo.manager}: ${topo.error}` }));
    return;
  }
  const width = Math.max(260, box.clientWidth || 400);
  const height = 260;
  const cx = width / 2, cy = height / 2, r = Math.min(width, height) / 2 - 40;
  // Sorted, so the picture stays put between refreshes whatever order the manager lists things in.
  const byKey = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  topo.nodes.sort((a, b) => byKey(a.key, b.key));
  topo.links.sort((a, b) => byKey(a.from + a.to, b.from + b.to));
  topo.routes.sort((a, b) => byKey(a.sessionId, b.sessionId));
  const pos = new Map();
  topo.nodes.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, topo.nodes.length) - Math.PI / 2;
    pos.set(n.key, topo.nodes.length === 1 ? [cx, cy] : [cx + r * Math.cos(a), cy + r * Math.sin(a)]);
  });
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, class: 'topo', role: 'img', 'aria-label': 'Mesh topology' });
  const drawn = new Set();
  for (const l of topo.links) {
    const a = pos.get(l.from), b = pos.get(l.to);
    if (!a || !b) continue;
    const pair = [l.from, l.to].sort().join('|');
    svg.append(svgEl('line', { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: l.up ? 'link up' : 'link down' }));
    if (drawn.has(pair)) continue;
    drawn.add(pair);
    const label = svgEl('text', { x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 4, 'text-anchor': 'middle', class: 'rtt' });
    label.textContent = l.up ? `${l.rttMs.toFixed(1)} ms${l.loss > 0 ? ` ${(l.loss * 100).toFixed(0)}%` : ''}` : 'down';
    svg.append(label);
  }
  topo.routes.forEach((route, i) => {
    const pts = route.path.map((k) => pos.get(k)).filter(Boolean);
    if (pts.length < 2) return;
    const off = 3 * ((i % 5) - 2);
    svg.append(svgEl('polyline', { points: pts.map(([px, py]) => `${px + off},${py + off}`).join(' '), class: 'route', stroke: PALETTE[i % PALETTE.length] }));
  });
  for (const n of topo.nodes) {
    const [px, py] = pos.get(n.key);
    const g = svgEl('g', { class: n.online ? 'node online' : 'node offline', 'data-key': n.key });
    const title = svgEl('title');
    title.textContent = `${n.key}\n${n.linkAddress}\napps: ${n.apps.join(', ') || '-'}`;
    g.append(title, svgEl('circle', { cx: px, cy: py, r: 14 }));
    const t = svgEl('text', { x: px, y: py + 28, 'text-anchor': 'middle' });
    t.textContent = short(n.key) + (n.apps.length ? ` (${n.apps.join(',')})` : '');
    g.append(t);
    svg.append(g);
  }
  const routes = el('ul', { class: 'routes' }, ...topo.routes.map((route, i) =>
    el('li', {}, el('i', { style: `background:${PALETTE[i % PALETTE.length]}` }),
      `${route.sessionId}: ${route.path.map(short).join(' \u2192 ')}${route.reroutes ? ` (rerouted ${route.reroutes}x)` : ''}`)));
  box.replaceChildren(svg, el('p', { class: 'muted', text: `${topo.nodes.length} nodes, ${topo.links.length} links, ${topo.routes.length} routes (manager ${topo.manager})` }), routes);
}

async function refreshTopology() {
  const { ok, data } = await api('/topology');
  if (ok) drawTopology(data);
  else $('#topology').replaceChildren(el('p', { class: 'error', text: problemLines(data).join(' ') }));
  return ok && data.configured;
}

// ---------------------------------------------------------------- live updates

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

// The server rendered the table and the start menu; replace them with live data and keep them fresh.
newPane();
loadApps();
refreshProcesses();
followEvents();
setInterval(refreshProcesses, 2000);
refreshTopology().then((configured) => { if (configured) setInterval(refreshTopology, 5000); });
window.addEventListener('resize', () => { for (const p of panes.values()) p.refit(); drawCharts(); });
