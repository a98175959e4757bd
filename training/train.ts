/**
 * The training loop: corpus → tokenizer → packed rows → GPT trained with the
 * CWM objective, AdamW, warm-up + cosine, gradient clipping; validation loss,
 * metrics.jsonl, a loss-curve SVG and atomic checkpoints in the run folder.
 *
 *   <out>/checkpoint/     the latest checkpoint (see checkpoint.ts)
 *   <out>/metrics.jsonl   one line per step ({"type":"train",…}) and per validation
 *   <out>/loss.svg        train and validation losses, both objectives
 *
 * Reproducible: the same corpus, config, backend and worker count give the same
 * losses (other worker counts, the same run up to rounding: parallel.ts), and a
 * run resumed from a checkpoint (even after `kill -9`) continues with exactly
 * the losses the uninterrupted run would have had — the checkpoint holds the
 * weights, Adam moments and step, the batch sampler's RNG and the dropout RNG.
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TraceStatus } from '../src/schema.js';
import { manifestId, readCorpus, readManifest, type CorpusTrace } from '../corpus/index.js';
import * as tf from './tf.js';
import { setupBackend } from './backend.js';
import { assignTensors, findCheckpoint, readCheckpoint, saveCheckpoint, type CheckpointFiles } from './checkpoint.js';
import { MODEL_PRESETS, learningRate, resolveTrainConfig, type TrainConfig, type TrainConfigInput } from './config.js';
import { BatchSampler, buildRows, countKinds, makeBatch, type Rows, type RowStats } from './data.js';
import { TrainingError } from './errors.js';
import { deriveSeed } from './rng.js';
import { METRICS_FILE, readMetrics, truncateMetrics, type MetricsLine, type TrainLine, type ValLosses } from './metrics.js';
import { GPT, type ModelConfig } from './model.js';
import { cwmObjective, objectiveCounts } from './objective.js';
import { batchTensors, optimizerStep } from './gradients.js';
import { GradientWorkers, weightLayout } from './parallel.js';
import { AdamW } from './optim.js';
import { writeLossPlot } from './plot.js';
import { encodeTaskExample, mixExamples } from './tasks.js';
import { SPECIAL_TOKEN_LIST, encodeOutputExample, encodeTrace, traceToSegments, type SequenceOptions } from './sequence.js';
import { Tokenizer, trainTokenizer } from './tokenizer.js';
import type { Trace } from '../src/schema.js';

/** Traces already in memory, in place of a corpus folder (tests, tools). */
export interface InMemoryCorpus {
  /** Stands for the manifest id: runs resumed on other data are refused. */
  manifestId: string;
  traces: readonly CorpusTrace[];
}

export interface TrainOptions {
  /** A corpus folder (see corpus/) or traces in memory. */
  corpus: string | InMemoryCorpus;
  /** The run folder (created); must not hold another run unless `resume`. */
  out: string;
  /** Training settings; unset fields take their defaults. */
  config?: TrainConfigInput;
  /** Continue the run in `out` from its checkpoint (starts fresh when it has none). */
  resume?: boolean;
  /**
   * Return after this step as if interrupted, with a checkpoint written (a later
   * `resume` finishes the run). Default: run to `config.steps`.
   */
  stopAfterStep?: number;
  /** Told after every step (the CLI passes its progress bar); fields are losses and tokens/s. */
  progress?: { update(step: number, fields: Record<string, number>): void; stop(): void };
  /** Wasm thread count (the backend default when unset); each gradient worker runs as many. */
  threads?: number;
  /**
   * Data-parallel workers: the main thread and `workers − 1` worker threads each compute the
   * gradients of a shard of every batch (parallel.ts); default 1. At most the batch size.
   */
  workers?: number;
}

export interface TrainResult {
  out: string;
  /** Steps completed in total (including any before a resume). */
  step: number;
  modelConfig: ModelConfig;
  trainConfig: TrainConfig;
  paramCount: number;
  backend: string;
  /** Train lines of this call, in order. */
  history: TrainLine[];
  /** The last validation losses. */
  val: ValLosses | null;
  rowStats: { train: RowStats; val: RowStats };
}

const PLOT_FILE = 'loss.svg';
const TRAIN_STATUSES: TraceStatus[] = ['ok'];

/** Loads the ok traces of a corpus split by split, or refuses it with a one-line reason. */
export async function loadCorpus(corpus: string | InMemoryCorpus): Promise<{ manifestId: string; train: Trace[]; val: Trace[] }> {
  let id: string;
  let all: AsyncIterable<CorpusTrace> | Iterable<CorpusTrace>;
  let where: string;
  if (typeof corpus === 'string') {
    id = manifestId(readManifest(corpus));
    all = readCorpus(corpus);
    where = `corpus ${corpus}`;
  } else {
    id = corpus.manifestId;
    all = corpus.traces;
    where = 'the corpus';
  }
  let total = 0;
  let ok = 0;
  const train: Trace[] = [];
  const val: Trace[] = [];
  for await (const t of all) {
    total++;
    if (!TRAIN_STATUSES.includes(t.status)) continue;
    ok++;
    if (t.split === 'train') train.push(t);
    else if (t.split === 'val') val.push(t);
  }
  if (total === 0) throw new TrainingError(`${where} is empty: no traces to train on`);
  if (ok === 0) throw new TrainingError(`${where} has ${total} traces but none with status ok`);
  if (train.length === 0) throw new TrainingError(`${where} has no ok traces in the train split`);
  if (val.length === 0) throw new TrainingError(`${where} has no ok traces in the val split (needed for the validation loss)`);
  return { manifestId: id, train, val };
}

/** Plain-text pieces the tokenizer learns from (special tokens are added separately). */
function* tokenizerTexts(traces: readonly Trace[], encoding: SequenceOptions): Generator<string> {
  for (const t of traces) {
    for (const s of traceToSegments(t, encoding)) if (!s.special) yield s.text;
  }
}

/** Whether `out` already holds a run (a checkpoint or metrics). */
function holdsRun(out: string): boolean {
  return findCheckpoint(out) !== null || existsSync(path.join(out, METRICS_FILE));
}

/** The settings a resumed run may not change (everything but the backend). */
function configMismatch(saved: TrainConfig, given: TrainConfigInput): string | null {
  const requested = resolveTrainConfig({ ...saved, ...given, ...(given.tokens !== undefined ? { steps: undefined } : {}) });
  for (const key of Object.keys(saved) as (keyof TrainConfig)[]) {
    if (key === 'backend') continue;
    if (JSON.stringify(saved[key]) !== JSON.stringify(requested[key])) {
      return `${key} is ${JSON.stringify(saved[key])} in the checkpoint, ${JSON.stringify(requested[key])} now`;
    }
  }
  return null;
}

/** Mean losses over a fixed set of validation batches, weighted by their target counts. */
function validate(model: GPT, rows: Rows, config: TrainConfig): Required<ValLosses> {
  const n = Math.min(rows.count, config.evalBatches * config.batchSize);
  const sums = { next: 0, output: 0, state: 0 };
  const totals = { next: 0, output: 0, state: 0 };
  for (let start = 0; start < n; start += config.batchSize) {
    const idx = Array.from({ length: Math.min(config.batchSize, n - start) }, (_, i) => start + i);
    const batch = makeBatch(rows, idx);
    const counts = countKinds(batch.kinds);
    const terms = tf.tidy(() => {
      const { x, labels, isState, isOutput, documents, positions } = batchTensors(batch);
      const logits = model.forward(x, { training: false, documents, positions });
      // As in training: the answers belong to the next-token mean unless μ sets them apart.
      const out = cwmObjective({ logits, labels, isState, isOutput, stateWeight: 0, outputWeight: config.outputWeight === null ? null : 0 });
      return { next: out.next, output: out.output, state: out.state };
    });
    const weights = objectiveCounts(counts, config.outputWeight);
    for (const key of ['next', 'output', 'state'] as const) {
      sums[key] += readScalar(terms[key]) * weights[key];
      totals[key] += weights[key];
    }
  }
  const [next, output, state] = (['next', 'output', 'state'] as const).map((k) => (totals[k] > 0 ? sums[k] / totals[k] : 0)) as [number, number, number];
  return { loss: next + (config.outputWeight ?? 0) * output + config.stateWeight * state, next, output, state };
}

/** Reads a scalar and disposes it. */
function readScalar(t: tf.Tensor): number {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
}

/** What the run folder holds before training starts: the settings to use and, on resume, the checkpoint. */
interface OpenedRun {
  config: TrainConfig;
  saved: CheckpointFiles | null;
}

/** Decides everything about the run folder that can refuse the run, before anything is written. */
async function openRun(out: string, given: TrainConfigInput, resume: boolean): Promise<OpenedRun> {
  const config = resolveTrainConfig(given);
  if (existsSync(out) && holdsRun(out)) {
    if (!resume) {
      throw new TrainingError(`${out} already holds a training run; pass --resume to continue it or choose another --out`);
    }
    if (findCheckpoint(out) !== null) {
      const saved = await readCheckpoint(out);
      const mismatch = configMismatch(saved.meta.trainConfig, given);
      if (mismatch) throw new TrainingError(`Cannot resume ${out} with other settings: ${mismatch}`);
      return { config: { ...saved.meta.trainConfig, backend: config.backend }, saved };
    }
  } else if (existsSync(out) && (await readdir(out)).length > 0 && !resume) {
    throw new TrainingError(`${out} is not empty and holds no training run; choose an empty or new --out`);
  }
  return { config, saved: null };
}

/** The tokenizer, the model's shape, and the train and val rows packed to its context. */
interface PreparedData {
  tokenizer: Tokenizer;
  modelConfig: ModelConfig;
  train: { rows: Rows; stats: RowStats };
  val: { rows: Rows; stats: RowStats };
}

/** Tokenizes and packs the traces (with the saved tokenizer and model shape on resume). */
function prepareData(config: TrainConfig, data: { train: Trace[]; val: Trace[] }, saved: CheckpointFiles | null): PreparedData {
  const preset = MODEL_PRESETS[config.preset];
  const encoding: SequenceOptions = { diff: config.diff, changedOnly: config.changedOnly, operands: config.operands };
  const tokenizer: Tokenizer =
    saved?.tokenizer ??
    trainTokenizer(tokenizerTexts(data.train, encoding), {
      vocabSize: config.vocabSize,
      specialTokens: SPECIAL_TOKEN_LIST,
      digitOrder: config.digitOrder,
    });
  const modelConfig: ModelConfig = saved?.meta.modelConfig ?? {
    ...preset,
    vocabSize: tokenizer.vocabSize,
    positionEncoding: config.positionEncoding,
    smearKeys: config.smearKeys,
    ...(config.canon ? { canon: true } : {}),
  };
  const encodeAll = (traces: readonly Trace[]) => traces.map((t) => encodeTrace(t, tokenizer, encoding));
  const examplesOf = (traces: readonly Trace[]) =>
    config.outputExamples ? traces.flatMap((t) => encodeOutputExample(t, tokenizer) ?? []) : [];
  const packing = { blockSize: modelConfig.blockSize, tokenizer, seed: deriveSeed(config.seed, 'packing') };
  const taskSeed = deriveSeed(config.seed, 'tasks');
  const tasksOf = (traces: readonly Trace[]) =>
    traces.flatMap((t) =>
      mixExamples(t, config.tasks, { ...encoding, seed: taskSeed }).flatMap((ex) => encodeTaskExample(ex, tokenizer, modelConfig.blockSize + 1) ?? []),
    );
  const train = buildRows(encodeAll(data.train), { ...packing, outputExamples: examplesOf(data.train), taskExamples: tasksOf(data.train) });
  const val = buildRows(encodeAll(data.val), { ...packing, outputExamples: examplesOf(data.val) });
  if (train.rows.count === 0) {
    throw new TrainingError(
      `No train trace fits the context of ${modelConfig.blockSize} tokens (preset ${config.preset}): ` +
        `all ${train.stats.traces} have a source or frame too long; use a larger preset`,
    );
  }
  if (val.rows.count === 0) {
    throw new TrainingError(`No val trace fits the context of ${modelConfig.blockSize} tokens (preset ${config.preset})`);
  }
  return { tokenizer, modelConfig, train, val };
}

/** Everything a step changes: the model, its optimizer, the batch order, and how far the run got. */
interface RunState {
  model: GPT;
  weights: Map<string, tf.Variable>;
  optimizer: AdamW;
  sampler: BatchSampler;
  step: number;
  tokensSeen: number;
  /** Data-parallel gradient workers besides the main thread (`workers` > 1). */
  workers?: GradientWorkers;
}

/** A fresh model, optimizer and sampler from the seed, restored from the checkpoint on resume. */
function buildState(config: TrainConfig, prepared: PreparedData, saved: CheckpointFiles | null, out: string): RunState {
  const model = new GPT(prepared.modelConfig, { seed: deriveSeed(config.seed, 'model') });
  const weights = model.namedWeights();
  const optimizer = new AdamW(weights, config);
  const rowCount = prepared.train.rows.count;
  const state: RunState = { model, weights, optimizer, sampler: BatchSampler.create(rowCount, deriveSeed(config.seed, 'batches')), step: 0, tokensSeen: 0 };
  if (!saved) return state;
  try {
    assignTensors(saved, 'weight', weights);
    assignTensors(saved, 'adam_m', optimizer.m);
    assignTensors(saved, 'adam_v', optimizer.v);
    state.sampler = BatchSampler.restore(rowCount, saved.meta.sampler);
  } catch (err) {
    optimizer.dispose();
    model.dispose();
    throw err instanceof TrainingError ? err : new TrainingError(`Cannot resume ${out}: ${(err as Error).message}`);
  }
  optimizer.t = saved.meta.adamT;
  model.rngState = saved.meta.modelRngState;
  state.step = saved.meta.step;
  state.tokensSeen = saved.meta.tokensSeen;
  return state;
}

/** What the loop needs besides the live state: where to write, what to save, and when to stop. */
interface LoopContext {
  out: string;
  config: TrainConfig;
  prepared: PreparedData;
  manifestId: string;
  lastStep: number;
  progress: TrainOptions['progress'];
}

/** Trains up to `lastStep`, logging every step and validation, checkpointing on schedule. */
async function trainLoop(state: RunState, ctx: LoopContext): Promise<{ history: TrainLine[]; val: ValLosses | null }> {
  const { out, config, prepared, progress } = ctx;
  const { model, optimizer, weights } = state;
  const metricsFile = path.join(out, METRICS_FILE);
  const log = async (line: MetricsLine) => appendFile(metricsFile, `${JSON.stringify(line)}\n`);
  const checkpoint = () =>
    saveCheckpoint(out, {
      step: state.step,
      modelConfig: prepared.modelConfig,
      trainConfig: config,
      manifestId: ctx.manifestId,
      sampler: state.sampler.state(),
      modelRngState: model.rngState,
      adamT: optimizer.t,
      tokensSeen: state.tokensSeen,
      weights,
      adamM: optimizer.m,
      adamV: optimizer.v,
      tokenizer: prepared.tokenizer,
    });
  const history: TrainLine[] = [];
  let val: ValLosses | null = null;
  const tokensPerStep = config.batchSize * prepared.modelConfig.blockSize;
  const started = performance.now();
  let tokensThisRun = 0;
  if (state.step === 0) {
    val = validate(model, prepared.val.rows, config);
    await log({ type: 'val', step: 0, ...val });
  }
  while (state.step < ctx.lastStep) {
    const lr = learningRate(config, state.step);
    const batch = makeBatch(prepared.train.rows, state.sampler.next(config.batchSize));
    const values = await optimizerStep(state, batch, config, lr);
    const step = ++state.step;
    state.tokensSeen += tokensPerStep;
    tokensThisRun += tokensPerStep;
    const secs = (performance.now() - started) / 1000;
    const line = {
      type: 'train' as const,
      step,
      lr,
      loss: values[0]!,
      next: values[1]!,
      output: values[2]!,
      state: values[3]!,
      gradNorm: values[4]!,
      tokens: state.tokensSeen,
      tokensPerSec: secs > 0 ? tokensThisRun / secs : 0,
    };
    if (!Number.isFinite(line.loss)) {
      throw new TrainingError(`Loss became ${line.loss} at step ${step}; lower --lr (now ${config.lr})`);
    }
    history.push(line);
    await log(line);
    if (step % config.evalEvery === 0 || step === config.steps) {
      val = validate(model, prepared.val.rows, config);
      await log({ type: 'val', step, ...val });
    }
    if (step % config.checkpointEvery === 0 || step === ctx.lastStep) {
      await checkpoint();
      // The plot follows the checkpoints, so a long run can be watched while it trains.
      await writeLossPlot(path.join(out, PLOT_FILE), readMetrics(out));
    }
    progress?.update(step, {
      loss: line.loss,
      next: line.next,
      state: line.state,
      ...(val ? { val: val.loss } : {}),
      'tok/s': Math.round(line.tokensPerSec),
    });
  }
  if (history.length === 0) await writeLossPlot(path.join(out, PLOT_FILE), readMetrics(out));
  return { history, val };
}

/** Trains (or resumes) a model; see the file comment for what lands in `out`. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { out, resume = false, progress } = options;
  const { config, saved } = await openRun(out, options.config ?? {}, resume);
  const workers = options.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > config.batchSize) {
    throw new TrainingError(`--workers must be an integer from 1 to the batch size (${config.batchSize}), got ${workers}`);
  }
  const data = await loadCorpus(options.corpus);
  if (saved && saved.meta.manifestId !== data.manifestId) {
    throw new TrainingError(
      `Cannot resume ${out}: its checkpoint was trained on corpus ${saved.meta.manifestId}, this corpus is ${data.manifestId}`,
    );
  }
  const prepared = prepareData(config, data, saved);
  let backend: string;
  try {
    backend = await setupBackend(config.backend, { threads: options.threads });
  } catch (err) {
    throw new TrainingError((err as Error).message);
  }
  const state = buildState(config, prepared, saved, out);
  if (workers > 1) {
    try {
      const settings = { stateWeight: config.stateWeight, outputWeight: config.outputWeight };
      const data = { modelConfig: prepared.modelConfig, seed: deriveSeed(config.seed, 'model'), backend, threads: options.threads ?? 1, settings };
      state.workers = await GradientWorkers.start(workers - 1, data, weightLayout(state.weights));
    } catch (err) {
      state.optimizer.dispose();
      state.model.dispose();
      throw err;
    }
  }

  // Only now, with the checkpoint fully restored, does the run folder change.
  await mkdir(out, { recursive: true });
  if (saved) await truncateMetrics(out, saved.meta.step);
  else await writeFile(path.join(out, METRICS_FILE), '');
  const paramCount = [...state.weights.values()].reduce((n, v) => n + v.size, 0);
  const lastStep = Math.min(config.steps, options.stopAfterStep ?? config.steps);
  let outcome;
  try {
    outcome = await trainLoop(state, { out, config, prepared, manifestId: data.manifestId, lastStep, progress });
  } finally {
    progress?.stop();
    await state.workers?.close();
    state.optimizer.dispose();
    state.model.dispose();
  }
  return {
    out,
    step: state.step,
    modelConfig: prepared.modelConfig,
    trainConfig: config,
    paramCount,
    backend,
    history: outcome.history,
    val: outcome.val,
    rowStats: { train: prepared.train.stats, val: prepared.val.stats },
  };
}
