/**
 * `npm run ablation`: does the state objective help?
 *
 * Trains the same model with the same token budget for each λ (state-loss weight)
 * and each of several seeds on one synthetic corpus, then evaluates each run on the
 * held-out test split of that corpus and on a generalization set of `hard`
 * programs (longer, with helpers and recursion) it never saw in training:
 * variable accuracy (teacher-forced), and output accuracy — direct (context →
 * return value) and by rollout (the whole trace generated, then its return value:
 * CWM's route) on the same test programs, for every λ. Figures are reported as the
 * mean over seeds with their range, so a difference smaller than the spread reads
 * as one.
 *
 * Writes docs/results.md (tables, the loss curves, a reading of the numbers, and
 * the hand-kept experiment table, which a rerun keeps) and
 * bench/results/ablation.json. Sized for about an hour on two idle cores; every
 * setting can be scaled with environment variables (see `settings` below).
 *
 * Each stage runs the `execwm` CLI, so the commands in the document reproduce it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pct } from '../eval/metrics.js';
import { readReport, type StoredReport } from '../eval/report.js';
import { readMetrics, type MetricsLine } from '../training/metrics.js';
import { lineChartSvg } from '../training/plot.js';

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
  hardPrograms: envInt('ABLATION_HARD_PROGRAMS', 100),
  /** Same model, seed and token budget for every λ; batches of 8, the trainer's default (docs/results.md). */
  modelPreset: process.env.ABLATION_MODEL ?? 'small',
  steps: envInt('ABLATION_STEPS', 800),
  batch: envInt('ABLATION_BATCH', 8),
  /** Seeds of the corpus (the first) and of each run's weights and sampling. */
  seeds: (process.env.ABLATION_SEEDS ?? '1,2,3').split(',').map(Number),
  /** Traces evaluated per set (teacher-forced, direct and rollout outputs on the test set). */
  evalLimit: envInt('ABLATION_EVAL_LIMIT', 30),
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

/** One SVG with the validation next-token loss of every run (the term all λ share). */
function curvesSvg(runs: { lambda: number; metrics: MetricsLine[] }[]): string {
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  return lineChartSvg({
    title: 'validation next-token loss (code + action tokens) by step',
    yAxis: 'data',
    series: runs.map((r, i) => ({
      label: `λ = ${r.lambda}`,
      color: colors[i % colors.length]!,
      dashed: false,
      points: r.metrics.filter((m) => m.type === 'val').map((m): [number, number] => [m.step, m.next]),
    })),
  });
}

/** One training run (a λ and a seed) and its evaluations. */
interface Run {
  lambda: number;
  seed: number;
  run: string;
  metrics: MetricsLine[];
  evals: Record<'test' | 'hard', StoredReport>;
}

/** Mean and range of the defined values (null when none is). */
function spread(values: (number | null | undefined)[]): { mean: number; min: number; max: number; n: number } | null {
  const v = values.filter((x): x is number => typeof x === 'number');
  if (v.length === 0) return null;
  return { mean: v.reduce((a, b) => a + b, 0) / v.length, min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** `72.4% (70.1–74.0)`: the mean over seeds and its range. */
function pctSpread(values: (number | null | undefined)[]): string {
  const s = spread(values);
  if (s === null) return 'n/a';
  return s.n === 1 ? pct(s.mean) : `${pct(s.mean)} (${(100 * s.min).toFixed(1)}–${(100 * s.max).toFixed(1)})`;
}

function numSpread(values: (number | null | undefined)[]): string {
  const s = spread(values);
  if (s === null) return 'n/a';
  return s.n === 1 ? s.mean.toFixed(3) : `${s.mean.toFixed(3)} (${s.min.toFixed(3)}–${s.max.toFixed(3)})`;
}

/** Text between `<!-- name -->` markers of the previous document, kept across reruns. */
function keptBlock(previous: string, name: string): string | undefined {
  return previous.match(new RegExp(`<!-- ${name} -->\\n([\\s\\S]*?)<!-- /${name} -->`))?.[1];
}

async function mainAblation(): Promise<void> {
  const started = Date.now();
  const d = settings.dir;
  const corpusSeed = settings.seeds[0]!;
  mkdirSync(d, { recursive: true });
  const corpus = join(d, 'corpus');
  const hard = join(d, 'hard');
  execwm(['trace', '--synthetic', String(settings.programs), '--preset', settings.preset, '--seed', String(corpusSeed), '--out', corpus, '--overwrite', '--quiet']);
  // A different seed and the hard preset: programs the runs never saw, all in the test split.
  execwm(['trace', '--synthetic', String(settings.hardPrograms), '--preset', 'hard', '--seed', String(corpusSeed + 1000), '--split-ratios', '0,0,1', '--out', hard, '--overwrite', '--quiet']);

  const runs: Run[] = [];
  for (const lambda of settings.lambdas) {
    for (const seed of settings.seeds) {
      const run = join(d, `run-l${lambda}-s${seed}`);
      // A rerun trains afresh: a run folder from an earlier ablation would be refused (or resumed).
      rmSync(run, { recursive: true, force: true });
      execwm([
        'train', '--corpus', corpus, '--out', run, '--preset', settings.modelPreset, '--steps', String(settings.steps),
        '--batch', String(settings.batch), '--seed', String(seed), '--state-weight', String(lambda), '--diff', settings.diff, '--threads', String(settings.threads), '--quiet',
      ]);
      const evals = {} as Run['evals'];
      for (const [name, dir] of [['test', corpus], ['hard', hard]] as const) {
        const out = join(run, `eval-${name}`);
        // The same programs for every run (sample seed 0); rollouts only where outputs have a baseline to beat.
        execwm([
          'eval', '--model', run, '--corpus', dir, '--split', 'test', '--limit', String(settings.evalLimit), '--seed', '0',
          ...(name === 'test' ? ['--rollout'] : []), '--out', out, '--quiet',
        ]);
        evals[name] = readReport(out);
      }
      runs.push({ lambda, seed, run, metrics: readMetrics(run), evals });
    }
  }

  const minutes = (Date.now() - started) / 60000;
  const docs = join(root, 'docs');
  mkdirSync(join(docs, 'ablation'), { recursive: true });
  const firstSeed = runs.filter((r) => r.seed === corpusSeed);
  writeFileSync(join(docs, 'ablation', 'val-next-token-loss.svg'), curvesSvg(firstSeed));
  for (const r of firstSeed) {
    const svg = join(r.run, 'loss.svg');
    if (existsSync(svg)) copyFileSync(svg, join(docs, 'ablation', `loss-l${r.lambda}.svg`));
  }

  const lastVal = (m: MetricsLine[]) => m.filter((x) => x.type === 'val').at(-1);
  const byLambda = settings.lambdas.map((lambda) => ({ lambda, runs: runs.filter((r) => r.lambda === lambda) }));
  const out: string[] = [];
  out.push('# Results', '');
  out.push('## Does the state objective help? (ablation)', '');
  out.push(
    `Same model (\`${settings.modelPreset}\`), ${settings.steps} steps of ${settings.batch} sequences (equal tokens) for every λ, ` +
      `seeds ${settings.seeds.join(', ')} for each (weights and batch order), states encoded with \`--diff ${settings.diff}\`; ` +
      `training corpus: ${settings.programs} synthetic \`${settings.preset}\` programs (train split, seed ${corpusSeed}); evaluated on the same ` +
      `${settings.evalLimit} programs of its held-out test split (\`test\`, outputs both direct and by rollout) and of ${settings.hardPrograms} unseen ` +
      `\`hard\` programs (\`hard\`). Each cell: the mean over seeds, then the range (min–max). ` +
      `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${minutes.toFixed(0)} minutes in all.`,
    '',
  );
  out.push('Reproduce: `npm run ablation` (settings: `ABLATION_*` environment variables, see `bench/ablation.ts`). Commands run:', '');
  out.push('<details><summary>commands</summary>', '', '```', ...commands, '```', '', '</details>', '');
  out.push('### Variable prediction (teacher-forced)', '');
  out.push('| λ | set | variable accuracy | state exact match | undecodable | copy-previous-state (variables / exact) |', '| --- | --- | --- | --- | --- | --- |');
  for (const { lambda, runs: rs } of byLambda) {
    for (const set of ['test', 'hard'] as const) {
      const tf = rs.map((r) => r.evals[set].teacherForced);
      out.push(
        `| ${lambda} | ${set} | ${pctSpread(tf.map((t) => t?.model.variableAccuracy))} | ${pctSpread(tf.map((t) => t?.model.stateExactMatch))} | ` +
          `${pctSpread(tf.map((t) => t?.model.undecodableShare))} | ${pct(tf[0]?.baselines.copyPrevious?.variableAccuracy)} / ${pct(tf[0]?.baselines.copyPrevious?.stateExactMatch)} |`,
      );
    }
  }
  out.push('', 'For λ = 0 the state tokens carry no loss, so its variable figures show what next-token training alone learns about states.', '');
  out.push('### Output prediction (held-out `test` programs)', '');
  out.push('| λ | direct (Python ==) | by rollout (Python ==) | most frequent return value |', '| --- | --- | --- | --- |');
  for (const { lambda, runs: rs } of byLambda) {
    const e = rs.map((r) => r.evals.test);
    out.push(
      `| ${lambda} | ${pctSpread(e.map((x) => x.output?.model.equalAccuracy))} | ${pctSpread(e.map((x) => x.rolloutOutput?.model.equalAccuracy))} | ` +
        `${pct(e[0]?.output?.baseline?.equalAccuracy)} |`,
    );
  }
  out.push('', '### Losses (validation, end of training)', '');
  out.push('| λ | next-token | output | state |', '| --- | --- | --- | --- |');
  for (const { lambda, runs: rs } of byLambda) {
    const v = rs.map((r) => lastVal(r.metrics));
    out.push(`| ${lambda} | ${numSpread(v.map((x) => x?.next))} | ${numSpread(v.map((x) => x?.output))} | ${numSpread(v.map((x) => x?.state))} |`);
  }
  out.push('', `![validation next-token loss, seed ${corpusSeed}](ablation/val-next-token-loss.svg)`, '');
  for (const r of firstSeed) if (existsSync(join(docs, 'ablation', `loss-l${r.lambda}.svg`))) out.push(`- λ = ${r.lambda}: [loss curves](ablation/loss-l${r.lambda}.svg)`);
  out.push('', '### Reading', '', '<!-- reading -->', '');
  out.push('## Experiments', '', '<!-- experiments -->', '');
  const target = join(docs, 'results.md');
  const previous = existsSync(target) ? readFileSync(target, 'utf8') : '';
  let text = out.join('\n');
  text = text.replace('<!-- reading -->', `<!-- reading -->\n${keptBlock(previous, 'reading') ?? autoReading(byLambda)}<!-- /reading -->`);
  text = text.replace('<!-- experiments -->', `<!-- experiments -->\n${keptBlock(previous, 'experiments') ?? ''}<!-- /experiments -->`);
  writeFileSync(target, `${text}\n`);
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(root, 'bench', 'results', 'ablation.json'),
    `${JSON.stringify(
      {
        settings: { ...settings, dir: relative(root, settings.dir) },
        minutes,
        commands,
        runs: runs.map((r) => ({ lambda: r.lambda, seed: r.seed, lastVal: lastVal(r.metrics), evals: r.evals })),
      },
      null,
      2,
    )}\n`,
  );
  process.stderr.write(`\nablation: wrote docs/results.md and bench/results/ablation.json (${minutes.toFixed(0)} min)\n`);
}

/** A first, mechanical reading; replace it by hand between the markers (a rerun keeps it). */
function autoReading(byLambda: { lambda: number; runs: Run[] }[]): string {
  const lines: string[] = [];
  const direct = (rs: Run[]) => spread(rs.map((r) => r.evals.test.output?.model.equalAccuracy));
  const base = byLambda.find((l) => l.lambda === 0);
  for (const { lambda, runs: rs } of byLambda) {
    const v = spread(rs.map((r) => r.evals.test.teacherForced?.model.variableAccuracy));
    const o = direct(rs);
    const r = spread(rs.map((x) => x.evals.test.rolloutOutput?.model.equalAccuracy));
    lines.push(`- λ = ${lambda}: variable accuracy ${pct(v?.mean)}, direct output ${pct(o?.mean)}, rollout output ${pct(r?.mean)} on \`test\`.`);
  }
  if (base) {
    const b = direct(base.runs);
    for (const { lambda, runs: rs } of byLambda.filter((l) => l.lambda > 0)) {
      const o = direct(rs);
      if (!b || !o) continue;
      const overlap = o.min <= b.max && b.min <= o.max;
      lines.push(
        `- Direct output, λ = ${lambda} against λ = 0: ${pct(o.mean - b.mean)} points on average; the seed ranges ${overlap ? 'overlap' : 'do not overlap'}.`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

mainAblation().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
});
