/**
 * A training chart as plain SVG text, no dependencies: loss per step in the upper panel (log scale when the
 * loss spans more than a factor of 20), accuracy per step in the lower panel (0 to 100 %). Points whose
 * value is missing or non-finite are left out of their line. Open the file in any browser.
 *
 * @example
 * ```ts
 * const points: ChartPoint[] = [];
 * // in Trainer callbacks: onStep: (s) => points.push({ step: s.step, loss: s.loss }),
 * //                       onEval: (e) => points.push({ step: e.step, accuracy: e.metrics.accuracy })
 * writeTrainingChart('runs/copy/chart.svg', points, { title: 'Selective Copying' });
 * ```
 */
import { writeFileAtomicSync } from './checkpoint';

/** One step's values; either may be absent. `accuracy` is a fraction in [0, 1]. */
export interface ChartPoint {
  step: number;
  loss?: number;
  accuracy?: number;
}

/** Options of `trainingChartSvg`. */
export interface ChartOptions {
  title?: string;
  /** Pixels. Default 760. */
  width?: number;
  /** Pixels. Default 520. */
  height?: number;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/** About `count` round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

interface Panel {
  top: number;
  height: number;
  label: string;
  color: string;
  values: [number, number][];
  lo: number;
  hi: number;
  log: boolean;
  format: (v: number) => string;
}

/** The SVG text of a loss / accuracy chart over `points`. */
export function trainingChartSvg(points: readonly ChartPoint[], options: ChartOptions = {}): string {
  const W = options.width ?? 760;
  const H = options.height ?? 520;
  const left = 70;
  const right = 20;
  const plotW = W - left - right;
  const steps = points.map((p) => p.step).filter(Number.isFinite);
  const x0 = steps.length ? Math.min(...steps) : 0;
  const x1 = steps.length ? Math.max(...steps) : 1;
  const xOf = (s: number) => left + (x1 > x0 ? ((s - x0) / (x1 - x0)) * plotW : plotW / 2);

  const losses = points.filter((p) => p.loss !== undefined && Number.isFinite(p.loss) && (p.loss as number) >= 0).map((p): [number, number] => [p.step, p.loss as number]);
  const accs = points.filter((p) => p.accuracy !== undefined && Number.isFinite(p.accuracy)).map((p): [number, number] => [p.step, p.accuracy as number]);
  const lmin = losses.length ? Math.min(...losses.map((v) => v[1])) : 0;
  const lmax = losses.length ? Math.max(...losses.map((v) => v[1])) : 1;
  const logLoss = lmin > 0 && lmax / lmin > 20;
  const panelH = (H - 110) / 2;
  const panels: Panel[] = [
    { top: 40, height: panelH, label: 'loss', color: '#1f77b4', values: losses, lo: logLoss ? lmin : 0, hi: lmax > 0 ? lmax : 1, log: logLoss, format: fmt },
    { top: 40 + panelH + 50, height: panelH, label: 'accuracy', color: '#d62728', values: accs, lo: 0, hi: 1, log: false, format: (v) => `${Math.round(v * 100)}%` },
  ];

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  if (options.title) out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>`);
  for (const p of panels) {
    const tr = (v: number) => (p.log ? Math.log10(v) : v);
    const lo = tr(p.lo);
    const hi = tr(p.hi) > lo ? tr(p.hi) : lo + 1;
    const yOf = (v: number) => p.top + p.height - ((tr(v) - lo) / (hi - lo)) * p.height;
    out.push(`<rect x="${left}" y="${p.top}" width="${plotW}" height="${p.height}" fill="none" stroke="#888"/>`);
    const yt = p.log ? ticks(lo, hi, 4).map((e) => 10 ** e) : ticks(p.lo, p.hi, 4);
    for (const v of yt) {
      const y = yOf(v).toFixed(1);
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" stroke="#eee"/>`);
      out.push(`<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(p.format(v))}</text>`);
    }
    out.push(`<text transform="translate(16 ${p.top + p.height / 2}) rotate(-90)" text-anchor="middle">${p.label}${p.log ? ' (log)' : ''}</text>`);
    for (const s of ticks(x0, x1, 6)) {
      const x = xOf(s).toFixed(1);
      out.push(`<text x="${x}" y="${p.top + p.height + 16}" text-anchor="middle">${fmt(s)}</text>`);
    }
    if (p.values.length) {
      const pts = p.values.map(([s, v]) => `${xOf(s).toFixed(1)},${yOf(Math.min(Math.max(v, p.lo), p.hi)).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${p.color}" stroke-width="1.5" points="${pts}"/>`);
      if (p.values.length === 1) {
        const [s, v] = p.values[0];
        out.push(`<circle cx="${xOf(s).toFixed(1)}" cy="${yOf(v).toFixed(1)}" r="3" fill="${p.color}"/>`);
      }
    }
  }
  out.push(`<text x="${left + plotW / 2}" y="${H - 8}" text-anchor="middle">step</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Writes `trainingChartSvg(points, options)` to `file` (atomically, so a viewer never sees half a chart). */
export function writeTrainingChart(file: string, points: readonly ChartPoint[], options: ChartOptions = {}): void {
  writeFileAtomicSync(file, Buffer.from(trainingChartSvg(points, options), 'utf8'));
}
