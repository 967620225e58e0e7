// Earnings and spending per node from a Skywire ledger (viscript --ledger DIR; GET /api/ledger runs
// `skywire ledger epochs DIR --json`): cumulative droplets over the closed epochs, earned solid, spent dashed (SVG).
import { $, el, svgEl, PALETTE } from './dom.js';
import { api, problemLines } from './api.js';

const short = (key) => key.slice(0, 8);

function drawLedger(ledger) {
  const box = $('#ledger');
  const epochs = ledger.epochs ?? [];
  const keys = [...new Set(epochs.flatMap((e) => e.nodes.map((n) => n.node)))].sort();
  if (epochs.length === 0 || keys.length === 0) {
    box.replaceChildren(el('p', { class: 'muted', text: `No settled epoch yet (manager ${short(ledger.manager ?? '')}).` }));
    return;
  }
  // Cumulative totals per node after each epoch, from zero one epoch length before the first close.
  const first = epochs[0].closedAtMs, last = epochs[epochs.length - 1].closedAtMs;
  const start = first - (epochs.length > 1 ? (last - first) / (epochs.length - 1) : 60000);
  const totals = new Map(keys.map((k) => [k, { earned: 0, spent: 0, points: [[start, 0, 0]] }]));
  for (const e of epochs) {
    for (const n of e.nodes) { const t = totals.get(n.node); t.earned += n.earned; t.spent += n.spent; }
    for (const t of totals.values()) t.points.push([e.closedAtMs, t.earned, t.spent]);
  }
  const width = Math.max(200, box.clientWidth || 400), height = 140;
  const pad = { l: 70, r: 8, t: 8, b: 18 };
  const t0 = start, t1 = Math.max(start + 1, last);
  const max = Math.max(1, ...[...totals.values()].flatMap((t) => [t.earned, t.spent]));
  const x = (t) => pad.l + (width - pad.l - pad.r) * ((t - t0) / (t1 - t0));
  const y = (v) => pad.t + (height - pad.t - pad.b) * (1 - v / max);
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart ledger-chart', role: 'img', 'aria-label': 'Earned and spent per node' });
  for (const frac of [0, 0.5, 1]) {
    svg.append(svgEl('line', { x1: pad.l, x2: width - pad.r, y1: y(max * frac), y2: y(max * frac), class: 'grid' }));
    const label = svgEl('text', { x: pad.l - 4, y: y(max * frac) + 4, 'text-anchor': 'end', class: 'axis' });
    label.textContent = Math.round(max * frac).toLocaleString();
    svg.append(label);
  }
  keys.forEach((k, i) => {
    const t = totals.get(k);
    const color = PALETTE[i % PALETTE.length];
    for (const [col, dash, kind] of [[1, null, 'earned'], [2, '4 3', 'spent']]) {
      if (t.points.every((p) => p[col] === 0)) continue;
      const attrs = { points: t.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[col]).toFixed(1)}`).join(' '), fill: 'none', stroke: color, 'stroke-width': '1.6', 'data-node': k, 'data-kind': kind };
      if (dash) attrs['stroke-dasharray'] = dash;
      svg.append(svgEl('polyline', attrs));
    }
  });
  const legend = el('div', { class: 'legend' }, ...keys.map((k, i) => {
    const t = totals.get(k);
    return el('span', { class: 'key', 'data-node': k }, el('i', { style: `background:${PALETTE[i % PALETTE.length]}` }),
      `${short(k)} earned ${t.earned.toLocaleString()}, spent ${t.spent.toLocaleString()}`);
  }));
  box.replaceChildren(svg, legend, el('p', { class: 'muted', text: `droplets (1 SKY = 1 000 000), cumulative over ${epochs.length} epoch(s); earned solid, spent dashed` }));
}

/** Draws the chart; resolves to whether a ledger is configured (the section stays hidden otherwise). */
export async function refreshLedger() {
  const { ok, data } = await api('/ledger');
  const section = $('#ledger-section');
  if (ok && data && !data.configured) { section.hidden = true; return false; }
  section.hidden = false;
  if (!ok) $('#ledger').replaceChildren(el('p', { class: 'error', text: problemLines(data).join(' ') }));
  else if (data.error) $('#ledger').replaceChildren(el('p', { class: 'error', text: data.error }));
  else drawLedger(data.ledger);
  return true;
}
