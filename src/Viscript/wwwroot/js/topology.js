// The mesh as the topology source reports it: nodes, links with RTT, live routes (SVG).
import { $, el, svgEl, PALETTE } from './dom.js';
import { api, problemLines } from './api.js';

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

export async function refreshTopology() {
  const { ok, data } = await api('/topology');
  if (ok) drawTopology(data);
  else $('#topology').replaceChildren(el('p', { class: 'error', text: problemLines(data).join(' ') }));
  return ok && data.configured;
}
