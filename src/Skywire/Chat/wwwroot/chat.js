// Sky-Messenger page (skywire chat web). Plain ES module, no libraries. It holds no secret: the sign-in token
// arrives in the link's fragment, is removed from the address bar at once and traded for an HttpOnly cookie.

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

const state = {
  me: null,
  contacts: new Map(),      // key -> nickname
  conversations: new Map(), // peer -> Map(messageKey -> entry)
  unread: new Map(),        // peer -> count
  selected: null,
  events: null,
};

const msgKey = (m) => `${m.outgoing ? 'o' : 'i'}:${m.id}`;
const isKey = (k) => /^0[23][0-9a-fA-F]{64}$/.test(k);
const nameOf = (key) => state.contacts.get(key) || `${key.slice(0, 10)}…`;

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    showSignIn();
    throw new Error('not signed in');
  }
  const data = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error((data && data.error) || `HTTP ${res.status}`);
  return data;
}

async function signIn(token) {
  const res = await fetch('/api/session', { method: 'POST', headers: { Authorization: `Bearer ${token}` }, credentials: 'same-origin' });
  if (!res.ok) throw new Error('the token was refused');
}

function showSignIn() {
  $('app').hidden = true;
  $('signin').hidden = false;
  if (state.events) { state.events.close(); state.events = null; }
}

function setStatus(connected) {
  const s = $('status');
  s.textContent = connected ? 'connected to the messenger' : 'offline: reconnecting to the messenger…';
  s.className = `status ${connected ? 'online' : 'offline'}`;
}

async function load() {
  const snap = await api('GET', '/api/state');
  state.me = snap.key;
  $('my-key').textContent = snap.key;
  $('my-fingerprint').textContent = snap.fingerprint;
  setStatus(snap.connected);
  state.contacts = new Map(snap.contacts.map((c) => [c.key, c.nickname]));
  state.conversations = new Map();
  for (const m of snap.messages) put(m, false);
  $('signin').hidden = true;
  $('app').hidden = false;
  renderContacts();
  renderConversation();
  listen();
}

// A message's state only moves forward (the answer to a send can arrive after the event that it was delivered).
const RANK = { sending: 0, received: 0, sent: 1, failed: 2, delivered: 3 };

function put(m, live) {
  let conv = state.conversations.get(m.peer);
  if (!conv) state.conversations.set(m.peer, conv = new Map());
  const old = conv.get(msgKey(m));
  const isNew = !old;
  if (old && RANK[m.state] < RANK[old.state]) return;
  conv.set(msgKey(m), m);
  if (live && isNew && !m.outgoing && m.peer !== state.selected) {
    state.unread.set(m.peer, (state.unread.get(m.peer) || 0) + 1);
  }
}

function listen() {
  if (state.events) return;
  const es = new EventSource('/api/events');
  state.events = es;
  es.addEventListener('message', (e) => {
    const ev = JSON.parse(e.data);
    put(ev.message, true);
    renderContacts();
    if (ev.message.peer === state.selected) renderConversation();
  });
  es.addEventListener('contact', (e) => {
    const c = JSON.parse(e.data).contact;
    if (c.nickname) state.contacts.set(c.key, c.nickname); else state.contacts.delete(c.key);
    renderContacts();
    if (c.key === state.selected) renderConversation();
  });
  es.addEventListener('status', (e) => setStatus(JSON.parse(e.data).connected));
  es.onerror = () => {
    // The chat process went away (or restarted): show it, and reload the state once the stream is back.
    $('status').textContent = 'page disconnected from skywire chat web…';
    $('status').className = 'status offline';
    es.onopen = () => { es.onopen = null; state.events = null; es.close(); load().catch(() => {}); };
  };
}

function peers() {
  const all = new Set([...state.contacts.keys(), ...state.conversations.keys()]);
  const last = (p) => {
    const conv = state.conversations.get(p);
    return conv ? Math.max(0, ...[...conv.values()].map((m) => m.at)) : 0;
  };
  return [...all].sort((a, b) => last(b) - last(a) || nameOf(a).localeCompare(nameOf(b)));
}

function renderContacts() {
  const ul = $('contacts');
  ul.replaceChildren();
  for (const p of peers()) {
    const li = el('li', `contact${p === state.selected ? ' selected' : ''}`);
    li.dataset.key = p;
    li.title = p;
    li.append(el('span', 'name', nameOf(p)));
    const n = state.unread.get(p);
    if (n) li.append(el('span', 'unread', String(n)));
    li.addEventListener('click', () => select(p));
    ul.append(li);
  }
}

async function fingerprint(key) {
  const bytes = new Uint8Array(key.match(/../g).map((h) => parseInt(h, 16)));
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const hex = [...hash.slice(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
  return hex.match(/..../g).join(' ');
}

function select(peer) {
  state.selected = peer;
  state.unread.delete(peer);
  renderContacts();
  renderConversation();
  $('compose-text').focus();
}

const STATE_TEXT = { sending: 'sending…', sent: 'sent (at the messenger)', delivered: 'delivered', failed: 'failed', received: '' };

function renderConversation() {
  const peer = state.selected;
  $('empty-hint').hidden = !!peer;
  $('peer').hidden = !peer;
  $('compose').hidden = !peer;
  const ol = $('messages');
  ol.replaceChildren();
  if (!peer) return;
  $('peer-name').textContent = nameOf(peer);
  $('peer-key').textContent = peer;
  $('peer-fingerprint').textContent = '…';
  fingerprint(peer).then((fp) => { if (state.selected === peer) $('peer-fingerprint').textContent = fp; });
  $('rename-nick').value = state.contacts.get(peer) || '';
  const conv = [...(state.conversations.get(peer) || new Map()).values()].sort((a, b) => a.at - b.at);
  for (const m of conv) {
    const li = el('li', `msg ${m.outgoing ? 'out' : 'in'}`);
    li.dataset.id = m.id;
    li.dataset.state = m.state;
    li.append(el('div', 'text', m.text));
    const meta = el('div', 'meta');
    meta.append(el('span', 'time', new Date(m.at).toLocaleTimeString()));
    if (m.outgoing) {
      const st = el('span', `state ${m.state}`, ` · ${STATE_TEXT[m.state] || m.state}${m.detail ? `: ${m.detail}` : ''}`);
      meta.append(st);
    } else if (m.wasStored) {
      meta.append(el('span', 'stored', ' · arrived while you were offline'));
    }
    li.append(meta);
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

async function send() {
  const text = $('compose-text').value;
  if (!text.trim() || !state.selected) return;
  $('send-error').textContent = '';
  try {
    const entry = await api('POST', '/api/messages', { to: state.selected, text });
    $('compose-text').value = '';
    put(entry, false);
    renderConversation();
  } catch (err) {
    $('send-error').textContent = err.message;
  }
}

function wire() {
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await signIn($('signin-token').value.trim());
      $('signin-token').value = '';
      $('signin-error').textContent = '';
      await load();
    } catch (err) {
      $('signin-error').textContent = err.message;
    }
  });
  $('add-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = $('add-key').value.trim().toLowerCase();
    const nick = $('add-nick').value.trim();
    $('add-error').textContent = '';
    if (!isKey(key)) { $('add-error').textContent = 'a public key is 66 hex characters starting with 02 or 03'; return; }
    if (key === state.me) { $('add-error').textContent = 'that is your own key'; return; }
    try {
      if (nick) {
        const c = await api('PUT', `/api/contacts/${key}`, { nickname: nick });
        state.contacts.set(c.key, c.nickname);
      } else if (!state.conversations.has(key)) {
        state.conversations.set(key, new Map());
      }
      $('add-key').value = '';
      $('add-nick').value = '';
      select(key);
    } catch (err) {
      $('add-error').textContent = err.message;
    }
  });
  $('rename-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!state.selected) return;
    try {
      const c = await api('PUT', `/api/contacts/${state.selected}`, { nickname: $('rename-nick').value });
      if (c.nickname) state.contacts.set(c.key, c.nickname); else state.contacts.delete(c.key);
      renderContacts();
      renderConversation();
    } catch (err) {
      $('send-error').textContent = err.message;
    }
  });
  $('compose').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('compose-text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); }
  });
}

async function main() {
  wire();
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    // The token never stays in the address bar or history, and a fragment is never sent to a server.
    history.replaceState(null, '', location.pathname);
    try {
      await signIn(decodeURIComponent(m[1]));
    } catch (err) {
      showSignIn();
      $('signin-error').textContent = err.message;
      return;
    }
  }
  try {
    await load();
  } catch {
    showSignIn();
  }
}

main();
