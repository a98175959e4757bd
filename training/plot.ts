/**
 * Line charts as small self-contained SVGs (no plotting library): the loss curve
 * of a run — train next-token and state losses per step, and the validation losses
 * as dashed lines — and any other series against the step (bench/ablation.ts).
 */
import { writeFile } from 'node:fs/promises';
import type { MetricsLine } from './metrics.js';

const W = 640;
const H = 360;
const PAD = { left: 56, right: 150, top: 24, bottom: 40 };

export interface LineSeries {
  label: string;
  color: string;
  dashed: boolean;
  points: [number, number][];
}

export interface LineChart {
  title: string;
  series: LineSeries[];
  /** The y axis starts at 0 (`zero`, the default) or at the lowest point (`data`: small differences show). */
  yAxis?: 'zero' | 'data';
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Renders the SVG text of a line chart against the step (series without points are left out). */
export function lineChartSvg(chart: LineChart): string {
  const series = chart.series.filter((s) => s.points.length > 0);
  const all = series.flatMap((s) => s.points);
  const maxX = Math.max(1, ...all.map(([x]) => x));
  const maxY = Math.max(1e-9, ...all.map(([, y]) => y)) * 1.05;
  const minY = chart.yAxis === 'data' && all.length > 0 ? Math.min(...all.map(([, y]) => y)) * 0.98 : 0;
  const px = (x: number) => PAD.left + (x / maxX) * (W - PAD.left - PAD.right);
  const py = (y: number) => H - PAD.bottom - ((y - minY) / (maxY - minY)) * (H - PAD.top - PAD.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${PAD.left}" y="16" font-size="13">${esc(chart.title)}</text>`,
    `<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="#333"/>`,
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="#333"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = minY + ((maxY - minY) * i) / 4;
    const x = Math.round((maxX * i) / 4);
    parts.push(
      `<text x="${PAD.left - 6}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`,
      `<line x1="${PAD.left}" y1="${py(y)}" x2="${W - PAD.right}" y2="${py(y)}" stroke="#eee"/>`,
      `<text x="${px(x)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${x}</text>`,
    );
  }
  parts.push(`<text x="${(PAD.left + W - PAD.right) / 2}" y="${H - 6}" text-anchor="middle">step</text>`);
  series.forEach((s, i) => {
    // Long runs: at most ~600 points per line keeps the file small.
    const stride = Math.max(1, Math.ceil(s.points.length / 600));
    const pts = s.points.filter((_, j) => j % stride === 0 || j === s.points.length - 1);
    const d = pts.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('');
    const dash = s.dashed ? ' stroke-dasharray="5,3"' : '';
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"${dash}/>`);
    const ly = PAD.top + 10 + i * 16;
    parts.push(
      `<line x1="${W - PAD.right + 10}" y1="${ly}" x2="${W - PAD.right + 34}" y2="${ly}" stroke="${s.color}" stroke-width="1.5"${dash}/>`,
      `<text x="${W - PAD.right + 40}" y="${ly + 4}">${esc(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** The loss curve of `metrics` (train and val lines of metrics.jsonl). */
export function lossPlotSvg(metrics: readonly MetricsLine[], title = 'execwm training loss'): string {
  const train = metrics.filter((m) => m.type === 'train');
  const val = metrics.filter((m) => m.type === 'val');
  return lineChartSvg({
    title,
    series: [
      { label: 'train next-token', color: '#1f77b4', dashed: false, points: train.map((m): [number, number] => [m.step, m.next]) },
      { label: 'train state', color: '#d62728', dashed: false, points: train.map((m): [number, number] => [m.step, m.state]) },
      { label: 'val next-token', color: '#1f77b4', dashed: true, points: val.map((m): [number, number] => [m.step, m.next]) },
      { label: 'val state', color: '#d62728', dashed: true, points: val.map((m): [number, number] => [m.step, m.state]) },
    ],
  });
}

/** Writes the loss curve of `metrics` to `file`. */
export async function writeLossPlot(file: string, metrics: readonly MetricsLine[]): Promise<void> {
  await writeFile(file, lossPlotSvg(metrics));
}
