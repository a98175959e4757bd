/**
 * `execwm stats <corpus>`: what a corpus holds — counts by status and split,
 * steps per trace, events, value types, truncations, and text histograms.
 */
import type { Command } from 'commander';
import type { Manifest, Split } from '../../corpus/index.js';
import { readManifest } from '../../corpus/manifest.js';
import { TRUNCATION_MARKER, type TraceEvent } from '../schema.js';
import { parseSplit, withCorpusErrors } from './corpus.js';

export interface Distribution {
  min: number;
  median: number;
  mean: number;
  p90: number;
  max: number;
}

export interface CorpusStats {
  traces: number;
  byStatus: Manifest['counts']['byStatus'];
  bySplit: Manifest['counts']['bySplit'];
  inputs: number;
  errors: number;
  mutants: Manifest['counts']['mutants'];
  steps: { total: number; perTrace: Distribution; byEvent: Record<TraceEvent, number>; maxDepth: number };
  /** Variables per trace (distinct names over all its frames). */
  variablesPerTrace: Distribution;
  /** Value occurrences by Python type, over the locals of every call/line step and every return value. */
  valueTypes: Record<string, number>;
  values: number;
  truncatedValues: number;
  tracesWithTruncation: number;
  tracesWithStdout: number;
  /** Traces per bucket of step counts: `[low, high]` inclusive, count. */
  stepHistogram: { low: number; high: number; count: number }[];
}

function distribution(xs: number[]): Distribution {
  if (xs.length === 0) return { min: 0, median: 0, mean: 0, p90: 0, max: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { min: s[0], median: at(0.5), mean: s.reduce((a, b) => a + b, 0) / s.length, p90: at(0.9), max: s[s.length - 1] };
}

/** Powers-of-two buckets: 0, 1, 2–3, 4–7, … */
function log2Histogram(xs: number[]): CorpusStats['stepHistogram'] {
  const buckets = new Map<number, number>();
  for (const x of xs) {
    const b = x === 0 ? -1 : Math.floor(Math.log2(x));
    buckets.set(b, (buckets.get(b) ?? 0) + 1);
  }
  if (buckets.size === 0) return [];
  const top = Math.max(...buckets.keys());
  const out: CorpusStats['stepHistogram'] = [];
  for (let b = Math.min(...buckets.keys()); b <= top; b++) {
    const low = b < 0 ? 0 : 2 ** b;
    out.push({ low, high: b < 0 ? 0 : 2 ** (b + 1) - 1, count: buckets.get(b) ?? 0 });
  }
  return out;
}

export async function corpusStats(dir: string, options: { split?: Split } = {}): Promise<CorpusStats> {
  const manifest = readManifest(dir);
  const { readCorpus } = await import('../../corpus/reader.js');
  const stepsPerTrace: number[] = [];
  const varsPerTrace: number[] = [];
  const byEvent: Record<TraceEvent, number> = { call: 0, line: 0, return: 0, exception: 0 };
  const valueTypes: Record<string, number> = {};
  let values = 0;
  let truncated = 0;
  let tracesWithTruncation = 0;
  let tracesWithStdout = 0;
  let maxDepth = 0;
  const byStatus = Object.fromEntries(Object.keys(manifest.counts.byStatus).map((k) => [k, 0])) as CorpusStats['byStatus'];
  const bySplit = Object.fromEntries(Object.keys(manifest.counts.bySplit).map((k) => [k, 0])) as CorpusStats['bySplit'];
  for await (const trace of readCorpus(dir, { split: options.split })) {
    byStatus[trace.status] += 1;
    bySplit[trace.split] += 1;
    stepsPerTrace.push(trace.steps.length);
    const names = new Set<string>();
    let cut = false;
    const count = (type: string, repr: string) => {
      values += 1;
      valueTypes[type] = (valueTypes[type] ?? 0) + 1;
      if (repr.endsWith(TRUNCATION_MARKER)) {
        truncated += 1;
        cut = true;
      }
    };
    for (const step of trace.steps) {
      byEvent[step.event] += 1;
      maxDepth = Math.max(maxDepth, step.depth);
      if (step.locals !== null) {
        for (const [name, v] of Object.entries(step.locals)) {
          names.add(name);
          count(v.type, v.repr);
        }
      }
      if (step.event === 'return' && step.arg !== null) count(step.arg.type, step.arg.repr);
    }
    varsPerTrace.push(names.size);
    if (cut) tracesWithTruncation += 1;
    if (trace.stdout !== '') tracesWithStdout += 1;
  }
  const total = stepsPerTrace.reduce((a, b) => a + b, 0);
  const sortedTypes = Object.fromEntries(Object.entries(valueTypes).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
  return {
    traces: stepsPerTrace.length,
    byStatus,
    bySplit,
    inputs: manifest.counts.inputs,
    errors: manifest.counts.errors,
    mutants: manifest.counts.mutants,
    steps: { total, perTrace: distribution(stepsPerTrace), byEvent, maxDepth },
    variablesPerTrace: distribution(varsPerTrace),
    valueTypes: sortedTypes,
    values,
    truncatedValues: truncated,
    tracesWithTruncation,
    tracesWithStdout,
    stepHistogram: log2Histogram(stepsPerTrace),
  };
}

function bar(count: number, max: number, width = 40): string {
  if (max === 0) return '';
  const n = Math.round((count / max) * width);
  return '█'.repeat(count > 0 ? Math.max(1, n) : 0);
}

function table(rows: [string, number][], total: number): string[] {
  const max = Math.max(0, ...rows.map((r) => r[1]));
  const w = Math.max(...rows.map((r) => r[0].length), 4);
  const cw = String(max).length;
  return rows.map(([k, n]) => {
    const pct = total > 0 ? ((100 * n) / total).toFixed(1).padStart(5) : '  0.0';
    return `  ${k.padEnd(w)} ${String(n).padStart(cw)} ${pct}%  ${bar(n, max)}`;
  });
}

const fmt = (d: Distribution) =>
  `min ${d.min}  median ${d.median}  mean ${d.mean.toFixed(1)}  p90 ${d.p90}  max ${d.max}`;

export function formatStats(dir: string, s: CorpusStats): string {
  const out: string[] = [];
  out.push(`corpus ${dir}: ${s.traces} traces from ${s.inputs} inputs, ${s.errors} bad inputs, mutants kept ${s.mutants.kept} / dropped ${s.mutants.dropped}`);
  out.push('', 'by status:', ...table(Object.entries(s.byStatus).filter(([, n]) => n > 0), s.traces));
  out.push('', 'by split:', ...table(Object.entries(s.bySplit), s.traces));
  out.push('', `steps: ${s.steps.total} total; per trace ${fmt(s.steps.perTrace)}; max depth ${s.steps.maxDepth}`);
  out.push(...table(Object.entries(s.steps.byEvent), s.steps.total));
  out.push('', 'steps per trace (histogram):');
  out.push(...table(s.stepHistogram.map((b) => [b.low === b.high ? `${b.low}` : `${b.low}-${b.high}`, b.count]), s.traces));
  out.push('', `variables per trace: ${fmt(s.variablesPerTrace)}`);
  const types = Object.entries(s.valueTypes);
  const shown = types.slice(0, 15);
  const rest = types.slice(15).reduce((a, [, n]) => a + n, 0);
  if (rest > 0) shown.push([`(${types.length - 15} more)`, rest]);
  out.push('', `value types (${s.values} values in call/line locals and return values):`, ...table(shown, s.values));
  out.push(
    '',
    `truncated values: ${s.truncatedValues} (${s.values > 0 ? ((100 * s.truncatedValues) / s.values).toFixed(2) : '0.00'}%), in ${s.tracesWithTruncation} traces`,
    `traces that print: ${s.tracesWithStdout}`,
  );
  return `${out.join('\n')}\n`;
}

export function registerStats(program: Command): void {
  program
    .command('stats')
    .description('summarize a corpus: counts by status and split, steps, value types, truncations, histograms')
    .argument('<corpus>', 'corpus folder')
    .option('--split <split>', 'only traces of train, val or test', parseSplit)
    .option('--json', 'print the numbers as JSON')
    .addHelpText('after', '\nReads every trace once (streaming).\n\nExample:\n  execwm stats data/c1')
    .action(async (corpus: string, opts: { split?: Split; json?: boolean }) => {
      const stats = await withCorpusErrors(() => corpusStats(corpus, { split: opts.split }));
      process.stdout.write(opts.json ? `${JSON.stringify(stats, null, 2)}\n` : formatStats(corpus, stats));
    });
}
