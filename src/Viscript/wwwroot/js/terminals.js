// The terminal panes of the page: creation, focus, layout, the taskbar.
import { $ } from './dom.js';
import { Pane } from './pane.js';

export const panes = new Map();
let nextPaneId = 1;
let focused = null;
let changed = () => {};

/** What to call when a command may have changed the process table. */
export function onProcessesChanged(handler) { changed = handler; }

const host = {
  panes,
  newPane: () => newPane(),
  closePane: (id) => closePane(id),
  focusPane: (id, keyboard) => focusPane(id, keyboard),
  changed: () => changed(),
};

export function newPane() {
  const pane = new Pane(nextPaneId++, host);
  panes.set(pane.id, pane);
  layoutPanes();
  focusPane(pane.id, true);
  return pane;
}

export function closePane(id) {
  const pane = panes.get(id);
  if (!pane) return;
  pane.dispose();
  panes.delete(id);
  if (focused === id) focused = null;
  layoutPanes();
  const last = [...panes.keys()].pop();
  if (last !== undefined) focusPane(last, true);
}

export function focusPane(id, moveKeyboard) {
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

export function layoutPanes() {
  const n = panes.size;
  const cols = n <= 1 ? 1 : n <= 4 ? 2 : 3;
  $('#terminals').style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  $('#terminals').classList.toggle('empty', n === 0);
}

export function focusedPane() {
  return (focused !== null && panes.get(focused)) || [...panes.values()].pop() || newPane();
}

