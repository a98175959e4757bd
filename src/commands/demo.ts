/**
 * `execwm demo`: the whole pipeline on built-in synthetic programs, as a user would
 * run it — `execwm trace`, `execwm train`, `execwm eval` — then tables of the
 * headline figures beside their baselines: on held-out synthetic programs, and on
 * hand-written functions the generator never produces (eval/data/handwritten.jsonl).
 *
 * Each stage runs as its own `execwm` process with the same flags a person would
 * type (printed before it starts), so the demo shows the commands as well as the
 * results, and a failure points at the stage that failed.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { existsSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { EvalError } from '../../eval/errors.js';
import { pct } from '../../eval/metrics.js';
import { readReport, type StoredReport } from '../../eval/report.js';
import { UserError } from '../errors.js';
import { positiveInt } from '../flags.js';
import { packagePath } from '../paths.js';

export interface DemoOptions {
  /** Folder for the corpus, the run and the report. */
  out: string;
  /** Synthetic programs to trace. */
  programs: number;
  /** Difficulty preset of the synthetic programs. */
  programPreset: string;
  /** Model preset. */
  modelPreset: string;
  /** Optimizer steps. */
  steps: number;
  /** Tokenizer vocabulary (BPE merges): 1024 packs a frame into fewer tokens than the default 512. */
  vocabSize: number;
  /** Sequences per step. */
  batch: number;
  /** Held-out traces to evaluate (null: the whole test split). */
  evalLimit: number | null;
  /** Also generate whole traces from the source alone and score their return values (CWM's route to outputs). */
  rollout: boolean;
  /** Held-out traces to roll out: a seeded sample, since a rollout costs a whole trace of decoding. */
  rolloutLimit: number;
  /** Also evaluate on the hand-written functions shipped in eval/data/. */
  handwritten: boolean;
  /** How many of them (null: all). */
  handwrittenLimit: number | null;
  /** Seed of programs, weights and sampling. */
  seed: number;
  /** Keep an existing demo folder's corpus and run instead of starting over. */
  reuse: boolean;
  quiet: boolean;
}

/** Defaults sized to finish in about ten minutes on two cores without a GPU. */
export const DEMO_DEFAULTS: DemoOptions = {
  out: 'runs/demo',
  programs: 4000,
  programPreset: 'easy',
  modelPreset: 'small',
  steps: 1350,
  vocabSize: 1024,
  batch: 8,
  evalLimit: null,
  rollout: true,
  rolloutLimit: 60,
  handwritten: true,
  handwrittenLimit: null,
  seed: 1,
  reuse: false,
  quiet: false,
};

/** The smallest settings that still run every stage (for a smoke test). */
export const DEMO_QUICK: Partial<DemoOptions> = {
  programs: 80,
  steps: 20,
  batch: 8,
  evalLimit: 6,
  rolloutLimit: 4,
  handwrittenLimit: 6,
};

/** The hand-written evaluation set shipped with the package. */
export const HANDWRITTEN_SET = packagePath('eval', 'data', 'handwritten.jsonl');

export interface Figure {
  label: string;
  model: number | null;
  baseline: number | null;
  baselineLabel: string;
}

function runStage(title: string, args: string[], quiet: boolean): Promise<number> {
  const started = performance.now();
  if (!quiet) process.stderr.write(`\n== ${title}\n$ execwm ${args.join(' ')}\n`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [packagePath('bin', 'execwm.js'), ...args], {
      stdio: ['ignore', quiet ? 'ignore' : 'inherit', quiet ? 'ignore' : 'inherit'],
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) {
        reject(new UserError(`demo stage "${title}" failed (exit ${code}); rerun the command above to see why`));
        return;
      }
      if (!quiet) process.stderr.write(`== ${title}: done in ${seconds.toFixed(0)} s\n`);
      resolvePromise(seconds);
    });
  });
}

/**
 * The headline figures of a report, each beside the baseline it must beat: copy-previous-state
 * for states; for call frames (no previous state to copy) the most frequent value of each
 * argument name; the most frequent return value for outputs.
 */
export function demoFigures(report: StoredReport): Figure[] {
  const tf = report.teacherForced;
  const copy = tf?.baselines.copyPrevious ?? null;
  const call = tf?.breakdowns?.event?.find((row) => row.key === 'call') ?? null;
  const figures: Figure[] = [
    { label: 'variable accuracy', model: tf?.model.variableAccuracy ?? null, baseline: copy?.variableAccuracy ?? null, baselineLabel: 'copy-previous-state' },
    { label: 'state exact match', model: tf?.model.stateExactMatch ?? null, baseline: copy?.stateExactMatch ?? null, baselineLabel: 'copy-previous-state' },
  ];
  if (call) {
    figures.push({
      label: 'call-frame variables',
      model: call.figures.model?.variableAccuracy ?? null,
      baseline: call.figures.mostFrequent?.variableAccuracy ?? null,
      baselineLabel: 'most-frequent-value',
    });
  }
  for (const out of [report.output, report.rolloutOutput]) {
    if (!out) continue;
    figures.push({
      label: out.mode === 'rollout' ? `output accuracy (rollout, ${out.model.programs} programs)` : `output accuracy (${out.mode})`,
      model: out.model.equalAccuracy,
      baseline: out.baseline?.equalAccuracy ?? null,
      baselineLabel: 'most frequent return value',
    });
  }
  return figures;
}

export function formatDemoTable(figures: Figure[]): string {
  const rows = [['figure', 'model', 'baseline', 'baseline is', 'model beats it']];
  for (const f of figures) {
    const beats = f.model === null || f.baseline === null ? 'n/a' : f.model > f.baseline ? 'yes' : 'NO';
    rows.push([f.label, pct(f.model), pct(f.baseline), f.baseline === null ? '-' : f.baselineLabel, beats]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('   ').trimEnd()).join('\n');
}

/** The report an evaluation stage wrote; a missing or damaged one is the stage's failure, in one line. */
function readStageReport(dir: string): StoredReport {
  try {
    return readReport(dir);
  } catch (err) {
    if (err instanceof EvalError) throw new UserError(`the evaluation wrote no usable report: ${err.message}`);
    throw err;
  }
}

/** One evaluated set: its title, report folder and figures. */
export interface DemoSet {
  title: string;
  reportDir: string;
  figures: Figure[];
}

export async function runDemo(options: DemoOptions): Promise<{ sets: DemoSet[]; seconds: number }> {
  const started = performance.now();
  const out = resolve(options.out);
  const corpus = join(out, 'corpus');
  const handCorpus = join(out, 'handwritten');
  const run = join(out, 'run');
  const evalDir = join(out, 'eval');
  const rolloutDir = join(out, 'eval-rollout');
  const handEvalDir = join(out, 'eval-handwritten');
  const handwritten = options.handwritten && existsSync(HANDWRITTEN_SET);
  if (!options.reuse) {
    for (const dir of [corpus, handCorpus, run, evalDir, rolloutDir, handEvalDir]) rmSync(dir, { recursive: true, force: true });
  }
  const quietFlag = options.quiet ? ['--quiet'] : [];
  const rolloutFlag = options.rollout ? ['--rollout'] : [];
  const stages = 3 + (options.rollout ? 1 : 0) + (handwritten ? 2 : 0);
  let stage = 0;
  const title = (text: string) => `${++stage}/${stages} ${text}`;
  // Stages run one after another, so training may use every core: one data-parallel worker per
  // core (up to 4, and the batch size); on two cores ~6% faster than two wasm threads (README).
  const workers = Math.min(availableParallelism(), 4, options.batch);
  const parallelFlag = workers >= 2 ? ['--workers', String(workers)] : [];
  if (!(options.reuse && existsSync(join(corpus, 'manifest.json')))) {
    await runStage(
      title('trace synthetic programs'),
      ['trace', '--synthetic', String(options.programs), '--preset', options.programPreset, '--seed', String(options.seed), '--out', corpus, '--overwrite', ...quietFlag],
      options.quiet,
    );
  } else stage++;
  if (handwritten && !(options.reuse && existsSync(join(handCorpus, 'manifest.json')))) {
    await runStage(
      title('trace the hand-written functions (evaluation only: all in the test split)'),
      ['trace', '--jsonl', HANDWRITTEN_SET, '--split-ratios', '0,0,1', '--out', handCorpus, '--overwrite', ...quietFlag],
      options.quiet,
    );
  } else if (handwritten) stage++;
  if (!(options.reuse && existsSync(join(run, 'checkpoint')))) {
    await runStage(
      title('train the model (next-token + state objective, states as changes since the previous line)'),
      // `--diff changed`: a small model trained for minutes learns what a line changes long
      // before it learns to copy CWM's full list of names (docs/results.md has both).
      ['train', '--corpus', corpus, '--out', run, '--preset', options.modelPreset, '--steps', String(options.steps), '--vocab-size', String(options.vocabSize), '--batch', String(options.batch), '--seed', String(options.seed), '--diff', 'changed', ...parallelFlag, ...quietFlag],
      options.quiet,
    );
  } else stage++;
  const sample = (limit: number | null) => (limit === null ? [] : ['--limit', String(limit), '--seed', String(options.seed)]);
  await runStage(
    title(options.evalLimit === null ? 'evaluate on every held-out program' : 'evaluate on held-out programs'),
    ['eval', '--model', run, '--corpus', corpus, '--split', 'test', ...sample(options.evalLimit), '--out', evalDir, ...quietFlag],
    options.quiet,
  );
  const heldOut = readStageReport(evalDir);
  const figures = demoFigures(heldOut);
  if (options.rollout) {
    // Rollouts decode whole traces one after another, so they run on a seeded sample.
    await runStage(
      title('roll out held-out programs (the trace first, then its return value)'),
      ['eval', '--model', run, '--corpus', corpus, '--split', 'test', ...sample(options.rolloutLimit), '--rollout', '--out', rolloutDir, ...quietFlag],
      options.quiet,
    );
    figures.push(...demoFigures(readStageReport(rolloutDir)).filter((f) => f.label.startsWith('output accuracy (rollout')));
  }
  const sets: DemoSet[] = [{ title: `held-out synthetic ${options.programPreset} programs (${heldOut.corpus?.traces ?? 0} of the test split)`, reportDir: evalDir, figures }];
  if (handwritten) {
    await runStage(
      title('evaluate on the hand-written functions'),
      ['eval', '--model', run, '--corpus', handCorpus, '--split', 'test', '--baselines-from', corpus, ...(options.handwrittenLimit === null ? [] : ['--limit', String(options.handwrittenLimit), '--seed', String(options.seed)]), ...rolloutFlag, '--out', handEvalDir, ...quietFlag],
      options.quiet,
    );
    sets.push({ title: 'hand-written functions (eval/data/handwritten.jsonl)', reportDir: handEvalDir, figures: demoFigures(readStageReport(handEvalDir)) });
  }
  return { sets, seconds: (performance.now() - started) / 1000 };
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the whole pipeline on built-in synthetic programs: trace, train, evaluate, report')
    .option('-o, --out <dir>', 'folder for the corpora, run and reports', DEMO_DEFAULTS.out)
    .option('--programs <n>', 'synthetic programs to trace', positiveInt('--programs'), DEMO_DEFAULTS.programs)
    .option('--program-preset <name>', 'synthetic difficulty: easy, medium, hard', DEMO_DEFAULTS.programPreset)
    .option('--model-preset <name>', 'model size: tiny, small, base', DEMO_DEFAULTS.modelPreset)
    .option('--steps <n>', 'optimizer steps', positiveInt('--steps'), DEMO_DEFAULTS.steps)
    .option('--batch <n>', 'sequences per step', positiveInt('--batch'), DEMO_DEFAULTS.batch)
    .option('--vocab-size <n>', 'tokenizer vocabulary', positiveInt('--vocab-size'), DEMO_DEFAULTS.vocabSize)
    .option('--eval-limit <n>', 'held-out traces to evaluate (default: the whole test split)', positiveInt('--eval-limit'))
    .option('--rollout-limit <n>', 'held-out traces to roll out (a seeded sample: each is a whole trace of decoding)', positiveInt('--rollout-limit'), DEMO_DEFAULTS.rolloutLimit)
    .option('--no-rollout', 'skip generating whole traces (outputs are then predicted directly only)')
    .option('--no-handwritten', 'skip the evaluation on the hand-written functions')
    .option('--seed <n>', 'seed of programs, weights and sampling', positiveInt('--seed'), DEMO_DEFAULTS.seed)
    .option('--quick', 'smallest settings that still run every stage (a smoke test, not a result)')
    .option('--reuse', 'keep the corpus and run already in --out and only evaluate again')
    .option('--quiet', 'no progress output from the stages')
    .addHelpText(
      'after',
      '\nThe defaults finish in about ten minutes on two cores. The tables compare the model with\n' +
        'copy-previous-state (variables), the most frequent value of each argument (call frames)\n' +
        'and the most frequent return value (outputs, predicted directly from the source and read\n' +
        'from a generated trace) on test-split programs the model never saw, then on hand-written\n' +
        'functions of CRUXEval\'s shape. The HTML reports have charts and a trace viewer.',
    )
    .action(async (flags: DemoOptions & { quick?: boolean }, command: Command) => {
      // --quick replaces the defaults, not the flags given beside it.
      const quick = Object.entries(flags.quick ? DEMO_QUICK : {}).filter(([key]) => command.getOptionValueSource(key) !== 'cli');
      const options: DemoOptions = { ...DEMO_DEFAULTS, ...flags, ...Object.fromEntries(quick) };
      const { sets, seconds } = await runDemo(options);
      process.stdout.write(`\nexecwm demo: results on programs the model never saw (${seconds.toFixed(0)} s in all)\n`);
      for (const set of sets) {
        const rel = relative(process.cwd(), set.reportDir);
        const where = rel === '' ? '.' : rel.startsWith('..') ? set.reportDir : rel;
        process.stdout.write(`\n${set.title}\n\n${formatDemoTable(set.figures)}\n\n`);
        process.stdout.write(`report: ${join(where, 'report.html')} (numbers in ${join(where, 'report.json')})\n`);
      }
    });
}
