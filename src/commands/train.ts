/**
 * `execwm train`: train a model on a trace corpus with the next-token + state objective.
 */
import type { Command } from 'commander';
import { CorpusError } from '../../corpus/errors.js';
import type { BackendName } from '../../training/backend.js';
import { DEFAULT_TRAIN_CONFIG as D, PRESET_NAMES, type PresetName, type TrainConfigInput } from '../../training/config.js';
import { TrainingError } from '../../training/errors.js';
import { UsageError, UserError } from '../errors.js';
import { integer, nonNegativeInt, nonNegativeNumber, parsedFlag, positiveInt } from '../flags.js';
import { createProgress, type Progress } from '../progress.js';

interface TrainFlags {
  corpus: string;
  out: string;
  preset?: string;
  stateWeight?: number;
  outputWeight?: number;
  positions?: string;
  smearKeys?: boolean;
  canon?: boolean;
  digits?: string;
  steps?: number;
  tokens?: number;
  batch?: number;
  lr?: number;
  warmup?: number;
  vocabSize?: number;
  evalEvery?: number;
  checkpointEvery?: number;
  seed?: number;
  backend?: string;
  threads?: number;
  workers?: number;
  resume?: boolean;
  /** `true` for `--diff` alone, else the mode given (`cwm` or `changed`). */
  diff?: boolean | string;
  /** True with --operands, false with --no-operands. */
  operands?: boolean;
  /** False with --no-output-examples (commander defaults it to true). */
  outputExamples?: boolean;
  tasks?: string;
  quiet?: boolean;
  json?: boolean;
}

/** `--diff` alone or `--diff cwm`: CWM's `".."`; `--diff changed`: only the changed locals. */
function diffFlag(value: boolean | string | undefined): Pick<TrainConfigInput, 'diff' | 'changedOnly'> {
  if (value === undefined) return {};
  if (value === 'none') return { diff: false, changedOnly: false };
  if (value === true || value === 'cwm') return { diff: true, changedOnly: false };
  if (value === 'changed') return { diff: true, changedOnly: true };
  throw new UsageError(`--diff takes none, cwm or changed, got ${JSON.stringify(value)}`);
}

/** Turns parsed flags into a training config input, refusing bad combinations as usage errors. */
export async function configFromFlags(flags: TrainFlags): Promise<TrainConfigInput> {
  const { resolveTrainConfig } = await import('../../training/config.js');
  const { BACKEND_NAMES } = await import('../../training/backend.js');
  if (flags.steps !== undefined && flags.tokens !== undefined) throw new UsageError('give --steps or --tokens, not both');
  if (flags.preset !== undefined && !PRESET_NAMES.includes(flags.preset as PresetName)) {
    throw new UsageError(`--preset must be one of ${PRESET_NAMES.join(', ')}, got ${JSON.stringify(flags.preset)}`);
  }
  if (flags.backend !== undefined && !BACKEND_NAMES.includes(flags.backend as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got ${JSON.stringify(flags.backend)}`);
  }
  const { parseTaskMix } = await import('../../training/tasks.js');
  const tasks = parsedFlag('--tasks', flags.tasks, parseTaskMix);
  const input: TrainConfigInput = {
    preset: flags.preset as PresetName | undefined,
    stateWeight: flags.stateWeight,
    outputWeight: flags.outputWeight,
    positionEncoding: flags.positions as TrainConfigInput['positionEncoding'],
    smearKeys: flags.smearKeys,
    canon: flags.canon,
    digitOrder: flags.digits as TrainConfigInput['digitOrder'],
    steps: flags.steps,
    tokens: flags.tokens,
    batchSize: flags.batch,
    lr: flags.lr,
    warmupSteps: flags.warmup,
    vocabSize: flags.vocabSize,
    evalEvery: flags.evalEvery,
    checkpointEvery: flags.checkpointEvery,
    seed: flags.seed,
    backend: flags.backend as BackendName | undefined,
    ...diffFlag(flags.diff),
    operands: flags.operands,
    outputExamples: flags.outputExamples === false ? false : undefined,
    tasks,
  };
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as TrainConfigInput;
  try {
    resolveTrainConfig(defined);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return defined;
}

/** The `--diff` mode the default config trains with. */
const DEFAULT_DIFF = D.diff ? (D.changedOnly ? 'changed' : 'cwm') : 'none';
const diffMode = (mode: string) => (mode === DEFAULT_DIFF ? `${mode} (default)` : mode);

export function registerTrain(program: Command): void {
  program
    .command('train')
    .summary('train a transformer on a corpus: next-token loss + λ · state loss (CWM format)')
    .description(
      'Train a decoder-only transformer on the ok traces of a corpus: next-token loss on code and ' +
        'actions plus λ · state loss on variable values (CWM format, see DESIGN.md). Writes the run ' +
        'folder: checkpoint/ (weights, optimizer, tokenizer, configs), metrics.jsonl, loss.svg.',
    )
    .requiredOption('--corpus <dir>', 'corpus folder (needs ok traces in the train and val splits)')
    .requiredOption('--out <dir>', 'run folder to create (refused if it holds another run, unless --resume)')
    .option('--preset <name>', `model size: ${PRESET_NAMES.join(', ')} (default ${D.preset})`)
    .option('--state-weight <λ>', `weight of the state loss; 0 trains the next-token-only baseline (default ${D.stateWeight})`, nonNegativeNumber('--state-weight'))
    .option('--output-weight <μ>', 'give the answers of output examples a loss of their own with this weight (default: they count as next-token targets)', nonNegativeNumber('--output-weight'))
    .option('--positions <kind>', `how the model sees positions: rope (rotary) or learned (absolute embeddings) (default ${D.positionEncoding})`)
    .option('--smear-keys', `attention keys mix in the previous position's key (a learned weight per head), which makes copying from the source easier to learn${D.smearKeys ? ' (default)' : ''}`)
    .option('--no-smear-keys', `plain attention keys${D.smearKeys ? '' : ' (default)'}`)
    .option(
      '--canon',
      'canon layers: before each attention and MLP, every position adds a learned per-channel mix of itself and the 3 positions ' +
        `before it (within its document), so spans of the source are matched in one attention${D.canon ? ' (default)' : ''}`,
    )
    .option('--no-canon', `no canon layers${D.canon ? '' : ' (default)'}`)
    .option('--digits <order>', `how numbers are spelled to the model: msd (as written) or lsd (least significant digit first, the order of a sum's carries; decoded back for every output) (default ${D.digitOrder})`)
    .option('--steps <n>', `optimizer steps (default ${D.steps})`, positiveInt('--steps'))
    .option('--tokens <n>', 'token budget instead of --steps (steps = tokens / (batch · context))', positiveInt('--tokens'))
    .option('--batch <n>', `sequences per step (default ${D.batchSize})`, positiveInt('--batch'))
    .option('--lr <rate>', `peak learning rate after warm-up, cosine decay after (default ${D.lr})`, nonNegativeNumber('--lr'))
    .option('--warmup <n>', 'warm-up steps (default 5% of steps, at most 200)', nonNegativeInt('--warmup'))
    .option('--vocab-size <n>', `tokenizer vocabulary: 256 bytes + special tokens + BPE merges (default ${D.vocabSize})`, positiveInt('--vocab-size'))
    .option('--eval-every <n>', `steps between validation losses (default ${D.evalEvery})`, positiveInt('--eval-every'))
    .option('--checkpoint-every <n>', `steps between checkpoints (default ${D.checkpointEvery}; always at the end)`, positiveInt('--checkpoint-every'))
    .option('--seed <n>', `seed of weights, packing and batch order (default ${D.seed})`, integer('--seed'))
    .option('--backend <name>', `tfjs backend: auto, node-gpu, node, wasm, cpu (default ${D.backend}: node-gpu, node, wasm, cpu)`)
    .option(
      '--threads <n>',
      'wasm threads (default 1): more split the matrix products across cores, with the same losses; ' +
        'slower when other work holds the cores',
      positiveInt('--threads'),
    )
    .option(
      '--workers <n>',
      'data-parallel workers (default 1): each computes the gradients of a share of every batch on its own thread ' +
        '(with its own --threads), the same run up to rounding; at most --batch',
      positiveInt('--workers'),
    )
    .option(
      '--diff [mode]',
      `how states are written: ${diffMode('changed')} writes only the locals that changed since the previous line of the ` +
        `same call; ${diffMode('cwm')} (or --diff alone) writes every local with ".." for the unchanged (CWM format); ${diffMode('none')} spells every value`,
    )
    .option(
      '--operands',
      'after each line of a trace, the current values of the locals the line names (`acc += x<|arg_sep|>{"acc": "3", "x": "2"}`), ' +
        `so the next state follows from the line and the values right before it${D.operands ? ' (default)' : ''}`,
    )
    .option('--no-operands', `lines without their operands' values${D.operands ? '' : ' (default)'}`)
    .option(
      '--tasks <list>',
      'mix derived tasks into the train split: all, or name[:weight],... of step,next,out,until,back,coverage,nextline,value,input (weight = examples per trace; default none)',
    )
    .option('--no-output-examples', 'leave out the output examples (source and call -> return value) that train direct output prediction')
    .option('--resume', 'continue the run in --out from its checkpoint (same settings and corpus)')
    .option('--quiet', 'no progress output')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  execwm train --corpus data/c1 --out runs/r1 --preset small --steps 2000\n' +
        '  execwm train --corpus data/c1 --out runs/base0 --state-weight 0     # next-token-only baseline\n' +
        '  execwm train --corpus data/c1 --out runs/r1 --resume                # after an interruption\n' +
        '  execwm train --corpus data/c1 --out runs/mix --tasks next,back:0.5  # debugger actions and inverse steps mixed in',
    )
    .action(async (flags: TrainFlags) => {
      const config = await configFromFlags(flags);
      const { resolveTrainConfig } = await import('../../training/config.js');
      const { train } = await import('../../training/train.js');
      const total = resolveTrainConfig(config).steps;
      // Created at the first step, so a refused run prints only its one-line error.
      let bar: Progress | null = null;
      const progress = {
        update(step: number, fields: Record<string, number>) {
          bar ??= createProgress({ label: 'train', total, unit: 'steps', quiet: flags.quiet ?? false });
          bar.update(step, fields);
        },
        stop() {
          bar?.stop();
        },
      };
      let result;
      try {
        result = await train({ corpus: flags.corpus, out: flags.out, config, resume: flags.resume ?? false, threads: flags.threads, workers: flags.workers, progress });
      } catch (err) {
        if (err instanceof TrainingError || err instanceof CorpusError) throw new UserError(err.message);
        throw err;
      }
      const summary = {
        out: result.out,
        step: result.step,
        backend: result.backend,
        params: result.paramCount,
        modelConfig: result.modelConfig,
        val: result.val,
        trainRows: result.rowStats.train,
        valRows: result.rowStats.val,
      };
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(summary)}\n`);
      } else {
        const v = result.val;
        if (result.history.length === 0) {
          process.stdout.write(`nothing to do: ${result.out} is complete at step ${result.step}\n`);
          return;
        }
        const skipped = result.rowStats.train.skipped;
        process.stdout.write(
          `trained ${result.step} steps, ${(result.paramCount / 1e6).toFixed(2)}M params on ${result.backend}` +
            (v ? `: val loss ${v.loss.toFixed(3)} (next ${v.next.toFixed(3)}, output ${(v.output ?? 0).toFixed(3)}, state ${v.state.toFixed(3)})` : '') +
            (result.rowStats.train.taskExamples > 0 ? `; ${result.rowStats.train.taskExamples} task examples mixed in` : '') +
            (skipped > 0 ? `; ${skipped} train traces too long for the context were skipped` : '') +
            ` → ${result.out}\n`,
        );
      }
    });
}
