/**
 * `execwm eval`: how well does a model predict what the variables hold?
 * Writes report.json and report.html, prints a summary table beside the baselines.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CorpusError } from '../../corpus/errors.js';
import { SPLITS, type Split } from '../../corpus/splits.js';
import { EvalError } from '../../eval/errors.js';
import { renderSummary, writeReport } from '../../eval/report.js';
import { EVAL_DEFAULTS, type EvalProgress } from '../../eval/config.js';
import type { BackendName } from '../../training/backend.js';
import { TrainingError } from '../../training/errors.js';
import { UsageError, UserError } from '../errors.js';
import { nonNegativeInt, parsedFlag, positiveInt } from '../flags.js';
import { createProgress, type Progress } from '../progress.js';
import { VERSION } from '../version.js';

interface EvalFlags {
  model: string;
  corpus?: string;
  cruxeval?: string;
  split: string;
  limit?: number;
  seed: number;
  out?: string;
  rollout?: boolean;
  baselinesFrom?: string;
  backend: string;
  batchSize: number;
  examples: number;
  maxRolloutTokens: number;
  tasks?: string;
  json?: boolean;
  quiet?: boolean;
}

function progressFor(quiet: boolean): EvalProgress {
  let bar: Progress | null = null;
  return {
    start(label, total, unit) {
      bar = createProgress({ label, total, unit, quiet });
    },
    advance(delta, fields) {
      bar?.increment(delta, fields);
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}

async function runEval(flags: EvalFlags): Promise<void> {
  if (!flags.corpus === !flags.cruxeval) throw new UsageError('give exactly one of --corpus DIR or --cruxeval FILE');
  if (!SPLITS.includes(flags.split as Split)) throw new UsageError(`--split must be one of ${SPLITS.join(', ')}, got ${flags.split}`);
  const { BACKEND_NAMES } = await import('../../training/backend.js');
  if (!BACKEND_NAMES.includes(flags.backend as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got ${flags.backend}`);
  }
  if (flags.cruxeval && flags.baselinesFrom !== undefined && flags.tasks === undefined) {
    throw new UsageError('--baselines-from with --cruxeval fits the baselines of --tasks; give --tasks too');
  }
  const { parseTaskList } = await import('../../training/tasks.js');
  const tasks = parsedFlag('--tasks', flags.tasks, parseTaskList);
  const { PROGRAM_LIMITS, sandboxRunner } = await import('../../eval/equality.js');
  const { evaluateCorpus, evaluateCruxeval } = await import('../../eval/run.js');
  // One sandbox, started on first use, for Python == and for running programs (generated inputs
  // of --tasks input, CRUXEval functions traced for --tasks): a second would boot Pyodide again.
  const runner = sandboxRunner({ limits: PROGRAM_LIMITS });
  const common = {
    modelDir: flags.model,
    backend: flags.backend as BackendName,
    batchSize: flags.batchSize,
    rollout: flags.rollout ?? false,
    maxRolloutTokens: flags.maxRolloutTokens,
    execwmVersion: VERSION,
    progress: progressFor(flags.quiet ?? false),
    runner,
    programRunner: runner,
  };
  const out = flags.out ?? join(flags.model, flags.cruxeval ? 'eval-cruxeval' : `eval-${flags.split}`);
  try {
    let result;
    let perProblem: string | null = null;
    if (flags.cruxeval) {
      const crux = await evaluateCruxeval({ ...common, file: flags.cruxeval, limit: flags.limit, tasks, seed: flags.seed, baselineCorpusDir: flags.baselinesFrom });
      perProblem = crux.perProblem.map((p) => JSON.stringify(p)).join('\n');
      result = crux;
    } else {
      result = await evaluateCorpus({
        ...common,
        corpusDir: flags.corpus!,
        split: flags.split as Split,
        limit: flags.limit,
        seed: flags.seed,
        examples: flags.examples,
        baselineCorpusDir: flags.baselinesFrom,
        tasks,
      });
    }
    const paths = writeReport(out, result.report, result.examples);
    // One line per CRUXEval problem (id, predicted output, scored equal), for comparing models problem by problem.
    if (perProblem !== null) writeFileSync(join(out, 'predictions.jsonl'), `${perProblem}\n`);
    if (flags.json) process.stdout.write(`${JSON.stringify(result.report, null, 2)}\n`);
    else process.stdout.write(`${renderSummary(result.report)}\nreport: ${paths.json}\n        ${paths.html}\n`);
  } catch (err) {
    if (err instanceof EvalError || err instanceof CorpusError || err instanceof TrainingError) throw new UserError(err.message);
    throw err;
  } finally {
    await runner.close();
  }
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('measure how well a model predicts variable values, beside copy-previous and most-frequent baselines')
    .requiredOption('--model <dir>', 'run or checkpoint folder written by `execwm train`')
    .option('--corpus <dir>', 'trace corpus to evaluate on (written by `execwm trace`)')
    .option('--cruxeval <file>', 'CRUXEval JSONL (code, input, output): output prediction on its functions; with --tasks, its functions are traced in the sandbox and the tasks asked of them')
    .option('--split <name>', `corpus split to evaluate (${SPLITS.join(', ')})`, EVAL_DEFAULTS.split)
    .option('--limit <n>', 'evaluate a seeded random sample of n traces (CRUXEval: the first n problems)', positiveInt('--limit'))
    .option('--seed <n>', 'seed of the --limit sample and of the task examples drawn', nonNegativeInt('--seed'), EVAL_DEFAULTS.seed)
    .option('--out <dir>', 'where report.json and report.html go (default: <model>/eval-<split>)')
    .option('--rollout', 'also generate whole traces from the context alone (slow) and score their return values beside the direct ones')
    .option('--baselines-from <dir>', "fit the most-frequent baselines on this corpus's train split (e.g. the training corpus, for a set with no train split such as CRUXEval with --tasks)")
    .option('--backend <name>', 'tfjs backend (auto, node-gpu, node, wasm, cpu)', EVAL_DEFAULTS.backend)
    .option('--batch-size <n>', 'prompts decoded together (any lengths; prompts that share a prefix share its work)', positiveInt('--batch-size'), EVAL_DEFAULTS.batchSize)
    .option('--examples <n>', 'traces shown in the report trace viewer', nonNegativeInt('--examples'), EVAL_DEFAULTS.examples)
    .option('--max-rollout-tokens <n>', 'cap on tokens generated per rollout', positiveInt('--max-rollout-tokens'), EVAL_DEFAULTS.maxRolloutTokens)
    .option('--tasks <list>', 'also score derived tasks: all, or some of step,next,out,until,back,coverage,nextline,value,output,input (README, "Task formats")')
    .option('--json', 'print report.json to stdout instead of the summary table')
    .option('--quiet', 'no progress output')
    .addHelpText(
      'after',
      `
Teacher-forced: for every call/line frame the model sees the true trace up to the
frame's event token and writes the locals; a variable is right when its value string
is identical to the truth (missing = wrong). Figures: variable accuracy, state exact
match, undecodable share, each beside the copy-previous-state and most-frequent-value
baselines, broken down by value type, event, difficulty, step position and role.
Output accuracy (exact and Python == in the sandbox, as CRUXEval scores it) from
direct prediction (context -> value) and, with --rollout, from the return value of
each generated trace. --tasks adds the debugger actions, inverse steps and
REval-style questions derived from the same traces, each beside a simple baseline,
Incremental Consistency over the coverage/value/next-line/output chain, and input
prediction (CRUXEval-I: source and return value -> arguments), scored by running
f(<generated arguments>) in the sandbox and comparing its value with Python ==.
With --cruxeval, --tasks traces its functions in the sandbox first (nothing is
written to disk); --baselines-from gives the most-frequent baselines a train split.

Examples:
  execwm eval --model runs/r1 --corpus data/c1 --split test
  execwm eval --model runs/r1 --corpus data/c1 --limit 200 --seed 1 --rollout
  execwm eval --model runs/r1 --corpus data/c1 --limit 50 --tasks all
  execwm eval --model runs/r1 --cruxeval ../shared/datasets/cruxeval.jsonl
  execwm eval --model runs/r1 --cruxeval cruxeval.jsonl --tasks input --baselines-from data/c1`,
    )
    .action(async (flags: EvalFlags) => runEval(flags));
}
