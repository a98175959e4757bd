/** Hand-built traces and a corpus for eval tests (no tracer needed). */
import { DEFAULT_SPLIT_RATIOS, writeCorpus, type CorpusTrace } from '../../corpus/index.js';
import { splitOf } from '../../corpus/splits.js';
import type { Step, Trace, Value } from '../../src/schema.js';
import { saveCheckpoint } from '../../training/checkpoint.js';
import { MODEL_PRESETS, resolveTrainConfig } from '../../training/config.js';
import { GPT } from '../../training/model.js';
import { SPECIAL_TOKEN_LIST } from '../../training/sequence.js';
import * as tf from '../../training/tf.js';
import { trainTokenizer } from '../../training/tokenizer.js';
import { testConfig } from '../corpus/helpers.js';

export const v = (repr: string, type = 'int'): Value => ({ repr, type });

/** A step of `f` (depth 0 unless given), locals and the returned value as repr strings. */
export function step(
  event: Step['event'],
  line: number,
  locals: Record<string, string> | null,
  opts: { arg?: string; func?: string; depth?: number } = {},
): Step {
  return {
    event,
    line,
    func: opts.func ?? 'f',
    depth: opts.depth ?? 0,
    locals: locals === null ? null : Object.fromEntries(Object.entries(locals).map(([k, r]) => [k, v(r)])),
    arg: opts.arg === undefined ? null : v(opts.arg),
    stdout: '',
  };
}

const ints = (vars: Record<string, number>): Record<string, string> =>
  Object.fromEntries(Object.entries(vars).map(([k, x]) => [k, String(x)]));

/**
 * `def f(n): s = start; for i in range(n): s += i; return s`, traced as settrace
 * would: call, then line events with the locals before each line, then return.
 */
export function loopTrace(options: { start: number; n: number }): Trace {
  const { start, n } = options;
  const steps: Step[] = [step('call', 1, ints({ n })), step('line', 2, ints({ n }))];
  let s = start;
  let vars: Record<string, number> = { n, s };
  for (let i = 0; i < n; i++) {
    steps.push(step('line', 3, ints(vars)));
    vars = { n, s, i };
    steps.push(step('line', 4, ints(vars)));
    s += i;
    vars = { n, s, i };
  }
  steps.push(step('line', 3, ints(vars)));
  steps.push(step('line', 5, ints(vars)));
  steps.push(step('return', 5, null, { arg: String(s) }));
  return {
    id: `loop-${start}-${n}`,
    source: `def f(n):\n    s = ${start}\n    for i in range(n):\n        s += i\n    return s\n`,
    entry: `f(${n})`,
    status: 'ok',
    message: null,
    result: v(String(s)),
    steps,
    stdout: '',
  };
}

/** Writes a corpus of loop traces (origins `synthetic:easy` / `synthetic:hard`) to `dir`. */
export async function writeLoopCorpus(dir: string, options: { count: number; onlySplit?: string }): Promise<CorpusTrace[]> {
  const traces: CorpusTrace[] = [];
  for (let k = 0; k < options.count; k++) {
    const t = loopTrace({ start: k, n: 1 + (k % 4) });
    const split = splitOf(t.source, DEFAULT_SPLIT_RATIOS);
    if (options.onlySplit && split !== options.onlySplit) continue;
    traces.push({ ...t, split, origin: k % 2 ? 'synthetic:hard' : 'synthetic:easy' });
  }
  await writeCorpus({ dir, config: testConfig({ inputsPerShard: 16 }), traces });
  return traces;
}

/**
 * Saves a random-init model (untrained: its predictions are noise) as a checkpoint
 * in `runDir`, with a tokenizer trained on `texts`.
 */
export async function writeRandomCheckpoint(
  runDir: string,
  options: { texts: string[]; blockSize: number; diff?: boolean; specialTokens?: readonly string[] },
): Promise<void> {
  const tokenizer = trainTokenizer(options.texts, { vocabSize: 300, specialTokens: options.specialTokens ?? SPECIAL_TOKEN_LIST });
  const trainConfig = resolveTrainConfig({ preset: 'tiny', vocabSize: 300, diff: options.diff ?? false, steps: 1, backend: 'cpu' });
  const modelConfig = { ...MODEL_PRESETS.tiny, blockSize: options.blockSize, vocabSize: tokenizer.vocabSize };
  const model = new GPT(modelConfig, { seed: 3 });
  const weights = model.namedWeights();
  const zeros = (): Map<string, tf.Variable> => new Map([...weights].map(([k, w]) => [k, tf.variable(tf.zerosLike(w))]));
  const adamM = zeros();
  const adamV = zeros();
  await saveCheckpoint(runDir, {
    step: 0,
    modelConfig,
    trainConfig,
    manifestId: 'test',
    sampler: { rng: [1, 2, 3, 4], order: [], cursor: 0, epoch: 0 },
    modelRngState: 0,
    adamT: 0,
    tokensSeen: 0,
    weights,
    adamM,
    adamV,
    tokenizer,
  });
  for (const m of [adamM, adamV]) for (const w of m.values()) w.dispose();
  model.dispose();
}
