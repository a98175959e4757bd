/**
 * The training configuration: typed, defaulted, and saved in every checkpoint
 * (the model's own `ModelConfig` lives in model.ts and is saved beside it), and the
 * named model sizes. Plain data without tfjs, so the CLI can print these defaults
 * in its help without loading a backend.
 */
import * as v from 'valibot';
import type { BackendName } from './backend.js';
import type { ModelConfig } from './model.js';
import { SPECIAL_TOKEN_LIST } from './sequence.js';
import { TRAIN_TASKS, type TaskMix } from './tasks.js';
import { DIGIT_ORDERS, type DigitOrder } from './tokenizer.js';

/** How a model may see positions (see {@link ModelConfig.positionEncoding}). */
export const POSITION_ENCODINGS = ['learned', 'rope'] as const;
export type PositionEncoding = (typeof POSITION_ENCODINGS)[number];

/**
 * Named sizes. `tiny` is for tests and smoke runs, `small` (~0.5M params with a ~1,000-token
 * vocabulary) for the demo. Every preset's context holds the source and first frame of ~94% of
 * default (`medium`) synthetic programs with the default vocabulary; a trace longer than that
 * is cut into windows on frame boundaries.
 */
export const MODEL_PRESETS: Record<'tiny' | 'small' | 'base', Omit<ModelConfig, 'vocabSize'>> = {
  tiny: { blockSize: 256, nLayer: 2, nHead: 2, nEmbd: 32, dropout: 0 },
  small: { blockSize: 256, nLayer: 2, nHead: 4, nEmbd: 128, dropout: 0 },
  base: { blockSize: 512, nLayer: 6, nHead: 8, nEmbd: 320, dropout: 0.1 },
};

export type PresetName = keyof typeof MODEL_PRESETS;
export const PRESET_NAMES = Object.keys(MODEL_PRESETS) as PresetName[];

export interface TrainConfig {
  /** Model size preset from model.ts (`tiny` for tests, `small` for the demo); default `small`. */
  preset: PresetName;
  /** Tokenizer vocabulary size: 256 bytes + special tokens + BPE merges; default 1024 (a frame in fewer tokens). */
  vocabSize: number;
  /** How the model sees positions (model.ts `positionEncoding`); default `rope`. Checkpoints from before this field read as `learned`. */
  positionEncoding: PositionEncoding;
  /**
   * Smeared keys in attention (model.ts `smearKeys`); default true (call-frame variables 31 → 55–62%
   * at equal tokens, docs/results.md). Checkpoints from before this field read as false.
   */
  smearKeys: boolean;
  /**
   * Canon layers before each block's attention and MLP (model.ts `Canon`); default true (at the
   * demo's steps both seeds gain 1–2 points of variables, 2–6 of exact states, validation loss
   * 0.86 → 0.79, for ~12% more time per step: docs/results.md rows 31–32). Checkpoints from
   * before this field read as false.
   */
  canon: boolean;
  /**
   * How the tokenizer spells numbers (tokenizer.ts `DigitOrder`): `msd` as written, `lsd` least
   * significant digit first; default `msd`. Checkpoints from before this field read as `msd`.
   */
  digitOrder: DigitOrder;
  /** λ, the weight of the state loss (0 = next-token-only baseline); default 1. */
  stateWeight: number;
  /**
   * μ: when set, the answers of output examples leave the next-token mean for a term of their
   * own with this weight (see objective.ts); default null, the answers are next-token targets
   * (μ = 1 measured worse, docs/results.md). Checkpoints from before this field read as null.
   */
  outputWeight: number | null;
  /** Diff-encode states against the previous frame (see `changedOnly`); default true. */
  diff: boolean;
  /**
   * With `diff`, write only the locals that changed (`{"i": "2"}`, `null` for one
   * gone) instead of every name with `".."` for the unchanged: fewer tokens, and
   * no list of names to copy from frame to frame; default true (with `diff`; false is
   * CWM's `".."` format). Checkpoints from before this field read as false.
   */
  changedOnly: boolean;
  /**
   * After each `line` frame's source line, the current values of the locals it names
   * (sequence.ts `operands`); default false. Checkpoints from before this field read as false.
   */
  operands: boolean;
  /**
   * Add one output example per function trace (source and call → return value,
   * a next-token target for every λ) so direct output prediction is a trained
   * task; default true. Checkpoints from before this field read as false.
   */
  outputExamples: boolean;
  /**
   * Derived tasks mixed into the train split (training/tasks.ts): per task, examples per
   * trace on average; default `{}` (the traces and output examples only). The val split
   * stays without them, so validation losses compare across mixes. Checkpoints from
   * before this field read as `{}`.
   */
  tasks: TaskMix;
  /** Optimizer steps to run; default 4000 (or derived from `tokens`). */
  steps: number;
  /** Sequences per step; default 8 (at equal tokens, 8 × twice the steps learned more than 16 or 4: docs/results.md). */
  batchSize: number;
  /** Peak learning rate after warm-up; default 3e-3 (small models tolerate a high rate). */
  lr: number;
  /** The cosine decay ends at `lr · minLrRatio`; default 0.1. */
  minLrRatio: number;
  /** Linear warm-up steps from 0 to `lr`; default 5% of `steps`, at most 200. */
  warmupSteps: number;
  /** Decoupled (AdamW) weight decay on matrices and embeddings, not biases or norms; default 0.1. */
  weightDecay: number;
  /** Adam β1; default 0.9. */
  beta1: number;
  /** Adam β2; default 0.95 (nanoGPT's choice for small batches). */
  beta2: number;
  /** Adam ε; default 1e-8. */
  epsilon: number;
  /** Clip the global gradient norm to this (0 = no clipping); default 1. */
  gradClip: number;
  /** Steps between validation losses; default 100. */
  evalEvery: number;
  /** Batches of the val split averaged for one validation loss; default 4. */
  evalBatches: number;
  /** Steps between checkpoints (and always at the end); default 100. */
  checkpointEvery: number;
  /** Seeds the weights, the packing order and batch sampling; default 0. */
  seed: number;
  /** TensorFlow.js backend; default `auto`. */
  backend: BackendName;
}

export const DEFAULT_TRAIN_CONFIG: Omit<TrainConfig, 'warmupSteps'> = {
  preset: 'small',
  vocabSize: 1024,
  positionEncoding: 'rope',
  smearKeys: true,
  canon: true,
  digitOrder: 'msd',
  stateWeight: 1,
  outputWeight: null,
  diff: true,
  changedOnly: true,
  operands: false,
  outputExamples: true,
  tasks: {},
  steps: 4000,
  batchSize: 8,
  lr: 3e-3,
  minLrRatio: 0.1,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  epsilon: 1e-8,
  gradClip: 1,
  evalEvery: 100,
  evalBatches: 4,
  checkpointEvery: 100,
  seed: 0,
  backend: 'auto',
};

/** What a caller may set: any field, plus a token budget instead of a step count. */
export type TrainConfigInput = Partial<TrainConfig> & {
  /** Train on about this many input tokens (steps = ⌈tokens / (batchSize · blockSize)⌉). */
  tokens?: number;
};

/** Fills defaults, derives steps from a token budget, and checks every field. */
export function resolveTrainConfig(input: TrainConfigInput): TrainConfig {
  const { tokens, ...given } = input;
  const base = { ...DEFAULT_TRAIN_CONFIG, ...stripUndefined(given) };
  // Full states (`diff: false`) are not a diff of any kind: the changed-only default does not apply.
  if (given.diff === false && given.changedOnly === undefined) base.changedOnly = false;
  if (!PRESET_NAMES.includes(base.preset)) {
    throw new Error(`Expected \`preset\` to be one of ${PRESET_NAMES.join(', ')}, got ${String(base.preset)}`);
  }
  if (tokens !== undefined) {
    if (given.steps !== undefined) throw new Error('Give either `steps` or `tokens`, not both');
    positive('tokens', tokens);
    positiveInt('batchSize', base.batchSize);
    base.steps = Math.ceil(tokens / (base.batchSize * MODEL_PRESETS[base.preset].blockSize));
  }
  const config: TrainConfig = {
    ...base,
    warmupSteps: given.warmupSteps ?? Math.min(200, Math.floor(base.steps * 0.05)),
  };
  for (const key of ['vocabSize', 'steps', 'batchSize', 'evalEvery', 'evalBatches', 'checkpointEvery'] as const) {
    positiveInt(key, config[key]);
  }
  const minVocab = 256 + SPECIAL_TOKEN_LIST.length;
  if (config.vocabSize < minVocab) {
    throw new Error(`Expected \`vocabSize\` to be at least ${minVocab} (256 bytes + ${SPECIAL_TOKEN_LIST.length} special tokens), got ${config.vocabSize}`);
  }
  if (!Number.isInteger(config.warmupSteps) || config.warmupSteps < 0) {
    throw new Error(`Expected \`warmupSteps\` to be a non-negative integer, got ${config.warmupSteps}`);
  }
  if (!DIGIT_ORDERS.includes(config.digitOrder)) {
    throw new Error(`Expected \`digitOrder\` to be one of ${DIGIT_ORDERS.join(', ')}, got ${String(config.digitOrder)}`);
  }
  if (!POSITION_ENCODINGS.includes(config.positionEncoding)) {
    throw new Error(`Expected \`positionEncoding\` to be one of ${POSITION_ENCODINGS.join(', ')}, got ${String(config.positionEncoding)}`);
  }
  if (config.changedOnly && !config.diff) throw new Error('`changedOnly` is a kind of diff encoding: it needs `diff`');
  for (const [task, w] of Object.entries(config.tasks)) {
    if (!(TRAIN_TASKS as readonly string[]).includes(task)) throw new Error(`Expected \`tasks\` to name some of ${TRAIN_TASKS.join(', ')}, got ${task}`);
    if (!(w > 0) || !Number.isFinite(w)) throw new Error(`Expected the weight of task ${task} to be a positive number, got ${w}`);
  }
  if (!Number.isInteger(config.seed)) throw new Error(`Expected \`seed\` to be an integer, got ${config.seed}`);
  positive('lr', config.lr);
  if (config.outputWeight !== null && !(config.outputWeight >= 0 && Number.isFinite(config.outputWeight))) {
    throw new Error(`Expected \`outputWeight\` to be a non-negative number or null, got ${config.outputWeight}`);
  }
  for (const key of ['stateWeight', 'weightDecay', 'gradClip', 'epsilon'] as const) {
    if (!(config[key] >= 0) || !Number.isFinite(config[key])) {
      throw new Error(`Expected \`${key}\` to be a non-negative number, got ${config[key]}`);
    }
  }
  for (const key of ['minLrRatio', 'beta1', 'beta2'] as const) {
    if (!(config[key] >= 0 && config[key] < 1.000001)) {
      throw new Error(`Expected \`${key}\` to be in [0, 1], got ${config[key]}`);
    }
  }
  return config;
}

function stripUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function positiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`Expected \`${name}\` to be a positive integer, got ${value}`);
}

function positive(name: string, value: number): void {
  if (!(value > 0) || !Number.isFinite(value)) throw new Error(`Expected \`${name}\` to be a positive number, got ${value}`);
}

/** A saved task mix: known task names, each with a positive weight. */
const TASK_MIX_SCHEMA = v.custom<TaskMix>(
  (x) =>
    typeof x === 'object' && x !== null && !Array.isArray(x) &&
    Object.entries(x).every(([name, weight]) => (TRAIN_TASKS as readonly string[]).includes(name) && typeof weight === 'number' && weight > 0),
  `Expected a task mix: some of ${TRAIN_TASKS.join(', ')}, each with a positive weight`,
);

/**
 * A train config as a checkpoint stores it, fields in the order training writes them. The
 * fields older checkpoints lack read as what those runs did: learned positions, answers
 * counted as next tokens, no changed-only diffs, no output examples, no derived tasks.
 */
export const TRAIN_CONFIG_SCHEMA = v.object({
  preset: v.picklist(PRESET_NAMES),
  vocabSize: v.number(),
  positionEncoding: v.optional(v.picklist(POSITION_ENCODINGS), 'learned'),
  smearKeys: v.optional(v.boolean(), false),
  canon: v.optional(v.boolean(), false),
  digitOrder: v.optional(v.picklist(DIGIT_ORDERS), 'msd'),
  stateWeight: v.number(),
  outputWeight: v.optional(v.nullable(v.number()), null),
  diff: v.boolean(),
  changedOnly: v.optional(v.boolean(), false),
  operands: v.optional(v.boolean(), false),
  outputExamples: v.optional(v.boolean(), false),
  tasks: v.optional(TASK_MIX_SCHEMA, {}),
  steps: v.number(),
  batchSize: v.number(),
  lr: v.number(),
  minLrRatio: v.number(),
  weightDecay: v.number(),
  beta1: v.number(),
  beta2: v.number(),
  epsilon: v.number(),
  gradClip: v.number(),
  evalEvery: v.number(),
  evalBatches: v.number(),
  checkpointEvery: v.number(),
  seed: v.number(),
  // The saved backend is only a record: a resumed run or an evaluation picks its own.
  backend: v.custom<BackendName>((x) => typeof x === 'string', 'Expected a backend name'),
  warmupSteps: v.number(),
}) satisfies v.GenericSchema<unknown, TrainConfig>;

/** Learning rate at `step` (0-based): linear warm-up, then cosine decay to `lr · minLrRatio`. */
export function learningRate(config: TrainConfig, step: number): number {
  const { lr, warmupSteps, steps, minLrRatio } = config;
  if (step < warmupSteps) return (lr * (step + 1)) / (warmupSteps + 1);
  const decaySteps = Math.max(1, steps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  const minLr = lr * minLrRatio;
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
