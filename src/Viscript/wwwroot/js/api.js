// Control API access (docs/gui.md). Authentication is a session cookie (HttpOnly, SameSite=Strict) that the daemon
// sets in exchange for the token: the page never stores the token and never sends it in a URL.
import { $ } from './dom.js';

let onUnauthorized = () => {};

/** What to do when the daemon answers 401 (show the sign-in box). */
export function setUnauthorizedHandler(handler) { onUnauthorized = handler; }

/** Exchanges the token for the session cookie; true when the daemon accepted it. */
export async function signIn(token) {
  try {
    const res = await fetch('/api/session', { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * A sign-in link (`viscript cli --gui-url`) carries the token in the fragment, which browsers never send to a server.
 * It is removed from the address bar at once, then exchanged for the cookie. Returns null when there is none.
 */
export async function signInFromFragment() {
  const m = /^#(?:.*&)?token=([^&]*)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return signIn(decodeURIComponent(m[1]));
}

/** Calls the control API; never throws for HTTP errors: returns {ok, status, data}. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  let res;
  try {
    res = await fetch('/api' + path, {
      method,
      signal,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
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
  if (res.status === 401) onUnauthorized();
  return { ok: res.ok, status: res.status, data };
}

/** Reads a server-sent event stream through fetch (events are JSON; comments and unknown lines are skipped). */
export async function streamEvents(path, onEvent, signal) {
  const res = await fetch('/api' + path, { headers: { Accept: 'text/event-stream' }, signal });
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { /* not json */ }
    if (res.status === 401) onUnauthorized();
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

export function problemLines(data) {
  if (!data) return ['(no answer)'];
  if (Array.isArray(data.lines) && data.lines.length) return data.lines;
  return [data.detail || data.title || JSON.stringify(data)];
}

/** The sign-in box: paste the token (from the token file) once; the daemon answers with the session cookie. */
export function initSignInBox() {
  const box = $('#token-box');
  const show = () => {
    if (box.hidden) {
      box.hidden = false;
      $('#token-input').focus();
    }
  };
  box.addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('#token-input');
    if (await signIn(input.value.trim())) {
      input.value = '';
      location.reload();
    } else {
      $('#token-error').hidden = false;
    }
  });
  setUnauthorizedHandler(show);
  return show;
}
