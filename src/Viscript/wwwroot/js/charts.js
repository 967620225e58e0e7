// CPU and memory charts per process over the last 10 minutes, drawn as SVG (no chart library).
import { $, el, svgEl, PALETTE } from './dom.js';
import { fmtBytes } from './format.js';

const WINDOW_MS = 10 * 60 * 1000;
let latest = new Map();

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function drawChart(svg, samples, pick, format) {
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

/** Draws both charts and the legend from the samples (id -> series); without an argument, redraws the last ones. */
export function drawCharts(samples = latest) {
  latest = samples;
  drawChart($('#cpu-chart'), samples, (s) => s.cpuPercent, (v) => v.toFixed(v < 10 ? 1 : 0) + ' %');
  drawChart($('#mem-chart'), samples, (s) => s.rssBytes, fmtBytes);
  const legend = $('#chart-legend');
  legend.replaceChildren(...[...samples.values()].filter((s) => s.samples.length).map((s) =>
    el('span', { class: 'key' }, el('i', { style: `background:${PALETTE[s.id % PALETTE.length]}` }), `${s.app ?? 'client'} #${s.id}`)));
}
