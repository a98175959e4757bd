/**
 * `npm run ablation`: does the state objective help?
 *
 * Trains the same model with the same seed and the same token budget for each
 * λ (state-loss weight) on one synthetic corpus, then evaluates each run on the
 * held-out test split of that corpus and on a generalization set of `hard`
 * programs (longer, with helpers and recursion) it never saw in training:
 * variable accuracy (teacher-forced), and output accuracy — direct (context →
 * return value) for every λ, by rollout (the whole trace generated) for λ > 0.
 *
 * Writes docs/results.md (tables, the loss curves, a reading of the numbers) and
 * bench/results/ablation.json. Sized for well under an hour on two cores (the
 * run in docs/results.md used these defaults); every setting can be scaled with
 * environment variables (see `settings` below).
 *
 * Each stage runs the `execwm` CLI, so the commands in the document reproduce it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`Expected ${name} to be a positive integer, got ${raw}`);
  return n;
}

const settings = {
  /** Working folder (corpora, runs, reports); not committed. */
  dir: process.env.ABLATION_DIR ?? join(root, 'runs', 'ablation'),
  /** Synthetic training corpus: programs and preset. */
  programs: envInt('ABLATION_PROGRAMS', 2000),
  preset: process.env.ABLATION_PRESET ?? 'medium',
  /** Generalization set: `hard` programs, all in its test split. */
  hardPrograms: envInt('ABLATION_HARD_PROGRAMS', 200),
  /** Same model, seed and token budget for every λ. */
  modelPreset: process.env.ABLATION_MODEL ?? 'small',
  steps: envInt('ABLATION_STEPS', 500),
  batch: envInt('ABLATION_BATCH', 16),
  seed: envInt('ABLATION_SEED', 1),
  /** Traces evaluated per split (teacher-forced and direct) and rollouts per split. */
  evalLimit: envInt('ABLATION_EVAL_LIMIT', 60),
  rolloutLimit: envInt('ABLATION_ROLLOUT_LIMIT', 10),
  lambdas: (process.env.ABLATION_LAMBDAS ?? '0,0.25,1').split(',').map(Number),
  /** State encoding of the training sequences (`execwm train --diff`): changed (the demo's) or cwm. */
  diff: process.env.ABLATION_DIFF ?? 'changed',
  /** Wasm threads for training (the stages run one at a time, so training may use every core). */
  threads: envInt('ABLATION_THREADS', Math.min(cpus().length, 4)),
};

const commands: string[] = [];

function execwm(args: string[]): void {
  const line = `execwm ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}`;
  commands.push(line.replaceAll(root + '/', ''));
  process.stderr.write(`\n$ ${line}\n`);
  const res = spawnSync(process.execPath, [join(root, 'bin', 'execwm.js'), ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (res.status !== 0) throw new Error(`ablation: \`${line}\` failed with exit ${res.status}`);
}

interface Report {
  teacherForced: {
    model: { variableAccuracy: number | null; stateExactMatch: number | null; undecodableShare: number | null; frames: number };
    baselines: Record<string, { variableAccuracy: number | null; stateExactMatch: number | null }>;
  } | null;
  output: { mode: string; model: { equalAccuracy: number | null; exactAccuracy: number | null; programs: number }; baseline: { equalAccuracy: number | null } | null } | null;
  rollout: { summary: Record<string, number | null> } | null;
}

function readReport(dir: string): Report {
  return JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
}

interface MetricsLine {
  type: 'train' | 'val';
  step: number;
  loss: number;
  next: number;
  state: number;
}

function readMetrics(run: string): MetricsLine[] {
  return readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as MetricsLine);
}

const pct = (x: number | null | undefined): string => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** One SVG with the validation next-token loss of every run (the term all λ share). */
function curvesSvg(runs: { lambda: number; metrics: MetricsLine[] }[]): string {
  const W = 640;
  const H = 320;
  const pad = { l: 56, r: 16, t: 24, b: 40 };
  const series = runs.map((r) => ({ lambda: r.lambda, points: r.metrics.filter((m) => m.type === 'val').map((m) => [m.step, m.next] as const) }));
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return '';
  const maxX = Math.max(...all.map((p) => p[0]));
  const ys = all.map((p) => p[1]);
  const minY = Math.min(...ys);
  const maxY = Math.max(...ys);
  const x = (v: number) => pad.l + ((W - pad.l - pad.r) * v) / Math.max(1, maxX);
  const y = (v: number) => pad.t + ((H - pad.t - pad.b) * (maxY - v)) / Math.max(1e-9, maxY - minY);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${pad.l}" y="16">validation next-token loss (code + action tokens) by step</text>`,
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="#333"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="#333"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = minY + ((maxY - minY) * i) / 4;
    parts.push(`<text x="${pad.l - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
    const s = Math.round((maxX * i) / 4);
    parts.push(`<text x="${x(s)}" y="${H - pad.b + 16}" text-anchor="middle">${s}</text>`);
  }
  series.forEach((s, i) => {
    const color = colors[i % colors.length]!;
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${W - pad.r - 90}" y="${pad.t + 16 * (i + 1)}" fill="${color}">λ = ${s.lambda}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

async function mainAblation(): Promise<void> {
  const started = Date.now();
  const d = settings.dir;
  mkdirSync(d, { recursive: true });
  const corpus = join(d, 'corpus');
  const hard = join(d, 'hard');
  execwm(['trace', '--synthetic', String(settings.programs), '--preset', settings.preset, '--seed', String(settings.seed), '--out', corpus, '--overwrite', '--quiet']);
  // A different seed and the hard preset: programs the runs never saw, all in the test split.
  execwm(['trace', '--synthetic', String(settings.hardPrograms), '--preset', 'hard', '--seed', String(settings.seed + 1000), '--split-ratios', '0,0,1', '--out', hard, '--overwrite', '--quiet']);

  const rows: {
    lambda: number;
    run: string;
    metrics: MetricsLine[];
    evals: Record<string, Report>;
  }[] = [];
  for (const lambda of settings.lambdas) {
    const run = join(d, `run-l${lambda}`);
    execwm([
      'train', '--corpus', corpus, '--out', run, '--preset', settings.modelPreset, '--steps', String(settings.steps),
      '--batch', String(settings.batch), '--seed', String(settings.seed), '--state-weight', String(lambda), '--diff', settings.diff, '--threads', String(settings.threads), '--quiet',
    ]);
    const evals: Record<string, Report> = {};
    for (const [name, dir] of [['test', corpus], ['hard', hard]] as const) {
      const out = join(run, `eval-${name}`);
      execwm(['eval', '--model', run, '--corpus', dir, '--split', 'test', '--limit', String(settings.evalLimit), '--seed', '0', '--out', out, '--quiet']);
      evals[name] = readReport(out);
      if (lambda > 0) {
        const rout = join(run, `eval-${name}-rollout`);
        execwm(['eval', '--model', run, '--corpus', dir, '--split', 'test', '--limit', String(settings.rolloutLimit), '--seed', '0', '--rollout', '--out', rout, '--quiet']);
        evals[`${name}-rollout`] = readReport(rout);
      }
    }
    rows.push({ lambda, run, metrics: readMetrics(run), evals });
  }

  const minutes = (Date.now() - started) / 60000;
  const docs = join(root, 'docs');
  mkdirSync(join(docs, 'ablation'), { recursive: true });
  writeFileSync(join(docs, 'ablation', 'val-next-token-loss.svg'), curvesSvg(rows));
  for (const r of rows) {
    const svg = join(r.run, 'loss.svg');
    if (existsSync(svg)) copyFileSync(svg, join(docs, 'ablation', `loss-l${r.lambda}.svg`));
  }

  const lastVal = (m: MetricsLine[]) => m.filter((x) => x.type === 'val').at(-1);
  const out: string[] = [];
  out.push('# Does the state objective help? (ablation)', '');
  out.push(
    `Same model (\`${settings.modelPreset}\`), seed ${settings.seed}, ${settings.steps} steps of ${settings.batch} sequences for every λ, ` +
      `states encoded with \`--diff ${settings.diff}\`; ` +
      `training corpus: ${settings.programs} synthetic \`${settings.preset}\` programs (train split); evaluated on its held-out test split ` +
      `(\`test\`, up to ${settings.evalLimit} traces) and on ${settings.hardPrograms} unseen \`hard\` programs (\`hard\`, up to ${settings.evalLimit}); ` +
      `rollouts on up to ${settings.rolloutLimit} traces per set. ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${minutes.toFixed(0)} minutes in all.`,
    '',
  );
  out.push('Reproduce: `npm run ablation` (settings: `ABLATION_*` environment variables, see `bench/ablation.ts`). Commands run:', '');
  out.push('```', ...commands, '```', '');
  out.push('## Variable prediction (teacher-forced)', '');
  out.push('| λ | set | variable accuracy | state exact match | undecodable | copy-previous-state | most-frequent-value |', '| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    for (const set of ['test', 'hard']) {
      const tf = r.evals[set]?.teacherForced;
      out.push(
        `| ${r.lambda} | ${set} | ${pct(tf?.model.variableAccuracy)} | ${pct(tf?.model.stateExactMatch)} | ${pct(tf?.model.undecodableShare)} | ` +
          `${pct(tf?.baselines.copyPrevious?.variableAccuracy)} | ${pct(tf?.baselines.mostFrequent?.variableAccuracy)} |`,
      );
    }
  }
  out.push('', 'For λ = 0 the state tokens carry no loss, so its variable figures show what next-token training alone learns about states.', '');
  out.push('## Output prediction', '');
  out.push('| λ | set | direct (Python ==) | rollout (Python ==) | most frequent return value |', '| --- | --- | --- | --- | --- |');
  for (const r of rows) {
    for (const set of ['test', 'hard']) {
      const direct = r.evals[set]?.output;
      const roll = r.evals[`${set}-rollout`]?.output;
      out.push(`| ${r.lambda} | ${set} | ${pct(direct?.model.equalAccuracy)} | ${roll ? pct(roll.model.equalAccuracy) : '—'} | ${pct(direct?.baseline?.equalAccuracy)} |`);
    }
  }
  out.push('', '## Losses', '');
  out.push('| λ | final val loss | val next-token | val state |', '| --- | --- | --- | --- |');
  for (const r of rows) {
    const v = lastVal(r.metrics);
    out.push(`| ${r.lambda} | ${v?.loss.toFixed(3) ?? 'n/a'} | ${v?.next.toFixed(3) ?? 'n/a'} | ${v?.state.toFixed(3) ?? 'n/a'} |`);
  }
  out.push('', '![validation next-token loss](ablation/val-next-token-loss.svg)', '');
  for (const r of rows) if (existsSync(join(docs, 'ablation', `loss-l${r.lambda}.svg`))) out.push(`- λ = ${r.lambda}: [loss curves](ablation/loss-l${r.lambda}.svg)`);
  out.push('', '## Reading', '', '<!-- reading -->', '');
  const target = join(docs, 'results.md');
  const previous = existsSync(target) ? readFileSync(target, 'utf8') : '';
  const reading = previous.match(/<!-- reading -->\n([\s\S]*?)<!-- \/reading -->/)?.[1];
  let text = out.join('\n');
  text = text.replace('<!-- reading -->', `<!-- reading -->\n${reading ?? autoReading(rows)}<!-- /reading -->`);
  writeFileSync(target, text);
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(root, 'bench', 'results', 'ablation.json'),
    `${JSON.stringify({ settings: { ...settings, dir: relative(root, settings.dir) }, minutes, commands, runs: rows.map((r) => ({ lambda: r.lambda, lastVal: lastVal(r.metrics), evals: r.evals })) }, null, 2)}\n`,
  );
  process.stderr.write(`\nablation: wrote docs/results.md and bench/results/ablation.json (${minutes.toFixed(0)} min)\n`);
}

/** A first, mechanical reading; replace it by hand between the markers (a rerun keeps it). */
function autoReading(rows: { lambda: number; evals: Record<string, Report> }[]): string {
  const lines: string[] = [];
  for (const set of ['test', 'hard']) {
    const acc = rows.map((r) => ({ lambda: r.lambda, v: r.evals[set]?.teacherForced?.model.variableAccuracy ?? null, o: r.evals[set]?.output?.model.equalAccuracy ?? null }));
    const best = [...acc].sort((a, b) => (b.v ?? -1) - (a.v ?? -1))[0];
    const bestOut = [...acc].sort((a, b) => (b.o ?? -1) - (a.o ?? -1))[0];
    lines.push(
      `- \`${set}\`: best variable accuracy at λ = ${best?.lambda} (${pct(best?.v)}); best direct output accuracy at λ = ${bestOut?.lambda} (${pct(bestOut?.o)}).`,
    );
  }
  return `${lines.join('\n')}\n`;
}

mainAblation().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
});
