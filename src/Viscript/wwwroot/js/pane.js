// A terminal pane: xterm.js with its own prompt, line editor, history, and attach/follow streams.
import { Terminal } from '../lib/xterm.mjs';
import { FitAddon } from '../lib/addon-fit.mjs';
import { $, el } from './dom.js';
import { api, problemLines, streamEvents } from './api.js';

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

/**
 * The pane talks to the rest of the page only through `host`: { panes, newPane(), closePane(id), focusPane(id, keyboard),
 * changed() } (changed: something may have changed the process table).
 */
export class Pane {
  constructor(id, host) {
    this.id = id;
    this.host = host;
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
      el('button', { type: 'button', class: 'pane-close', title: 'Close terminal', 'aria-label': 'Close terminal ' + this.id, text: '\u00d7', onclick: (e) => { e.stopPropagation(); this.host.closePane(this.id); } }));
    this.body = el('div', { class: 'pane-body' });
    this.element.append(head, this.body);
    this.element.addEventListener('mousedown', () => this.host.focusPane(this.id, false));
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
    this.term.textarea?.addEventListener('focus', () => this.host.focusPane(this.id, false));
    this.resizer = new ResizeObserver(() => this.refit());
    this.resizer.observe(this.body);
    this.refit();
    this.term.write('? for help\r\n');
    this.prompt();

    this.taskButton = el('button', { type: 'button', class: 'task', 'data-term': String(this.id), text: 'Terminal ' + this.id, onclick: () => this.host.focusPane(this.id, true) });
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
      this.host.changed();
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
        this.host.closePane(this.id);
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
    this.host.changed();
  }

  runLocal(words) {
    const [cmd, arg] = [words[0].toLowerCase(), words[1]];
    const done = (lines, color) => { if (lines) this.print(lines, color); this.prompt(); return true; };
    switch (cmd) {
      case 'new_term': case 'nt':
        this.host.newPane();
        return done(null);
      case 'list_terms': case 'lt': case 'list_term': {
        const ids = [...this.host.panes.keys()];
        return done([`${ids.length} Terminal${ids.length === 1 ? '' : 's'}:`, ...ids.map((id) => `    ${id}${id === this.id ? '    (FOCUSED)' : ''}`)]);
      }
      case 'close_term': {
        const id = arg === undefined ? this.id : Number(arg);
        if (!this.host.panes.has(id)) return done([`Terminal with id ${arg} doesn't exist.`], RED);
        this.host.closePane(id);
        if (id !== this.id) this.prompt();
        return true;
      }
      case 'focus': {
        const id = Number(arg);
        if (!this.host.panes.has(id)) return done([`Terminal with id ${arg} doesn't exist.`], RED);
        this.prompt();
        this.host.focusPane(id, true);
        return true;
      }
      case 'defocus':
        this.prompt();
        this.host.focusPane(null, false);
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
