/**
 * Trainer parity: does the tfjs trainer reach the same losses as PyTorch on the same rows?
 *
 *   npx tsx bench/parity.ts [corpus] [--dir <folder>] [--steps 300] [--batch 16] [--seed 1]
 *                           [--preset small] [--vocab-size 1024] [--diff changed] [--eval-every 50]
 *                           [--threads 1] [--noise-runs 2] [--reuse-run] [--no-torch]
 *
 * 1. Builds a synthetic corpus (`execwm trace --synthetic 2000 --preset easy --seed 3`) unless
 *    one is given.
 * 2. Trains with the project's own `train()` and keeps its per-step losses and validation losses.
 * 3. Rebuilds the exact packed rows that run used (the tokenizer from its checkpoint, the same
 *    encoding, windowing and packing seed; the row statistics must match the run's), the batch
 *    order of its BatchSampler, and the model's initial weights; checks the first step's loss
 *    against the run's; dumps all of it as little-endian binaries plus `header.json`, together
 *    with the per-weight gradient norms of the first step.
 * 4. Runs bench/torch_parity.py (Debian's /usr/bin/python3 with python3-torch, one thread) on the
 *    dump: the same model, objective, AdamW, schedule and batches, written independently; then
 *    `--noise-runs` more that differ from it by rounding only: the first in float64, the others
 *    in float32 with the initial weights perturbed by rounding-sized noise.
 * 5. Compares and writes bench/results/parity.json and bench/results/parity.md.
 *
 * Identical init and batches make the first steps agree to float32 rounding (~1e-5). At a high
 * learning rate, loss spikes later amplify rounding differences until the two runs follow
 * different (equally good) trajectories, so later losses differ by more than rounding even
 * without a bug. The float64 and perturbed PyTorch runs measure that spread: a bug shows as a first step that
 * differs, or as a validation gap well beyond what rounding noise alone produces.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { main as cli } from '../src/cli.js';
import * as tf from '../training/tf.js';
import { readCheckpoint } from '../training/checkpoint.js';
import { learningRate, type TrainConfig } from '../training/config.js';
import { BatchSampler, KIND_NEXT, KIND_NONE, KIND_STATE, buildRows, makeBatch, type Batch, type Rows } from '../training/data.js';
import { GPT } from '../training/model.js';
import { cwmObjective } from '../training/objective.js';
import { deriveSeed } from '../training/rng.js';
import { encodeOutputExample, encodeTrace, type SequenceOptions } from '../training/sequence.js';
import { readMetrics, type MetricsLine } from '../training/metrics.js';
import { loadCorpus, train, type TrainResult } from '../training/train.js';
import type { Trace } from '../src/schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3';
/** Steps whose train losses are compared one by one (before rounding differences grow). */
const FIRST_STEPS = 20;
/** Agreement expected of the first steps (same init, same batches) and of validation losses. */
const FIRST_STEP_TOLERANCE = 1e-3;
const VAL_TOLERANCE = 2e-2;
/** Relative noise put on the initial weights of the noise-floor runs (float32 rounding is ~6e-8). */
const PERTURB = 1e-6;

const HELP = `Usage: npx tsx bench/parity.ts [corpus] [options]

Trains the tfjs model with train() and the same model in PyTorch (bench/torch_parity.py) on the
same packed rows, initial weights and batch order, and compares their losses step by step.
Writes bench/results/parity.json and bench/results/parity.md.

  corpus              an execwm corpus folder (default: build 2000 easy programs, seed 3)
  --dir <folder>      working folder for the corpus, the run and the dump
                      (default: ${join(tmpdir(), 'execwm-parity')})
  --steps <n>         optimizer steps (default 300)
  --batch <n>         sequences per step (default 16)
  --seed <n>          training seed (default 1)
  --preset <name>     model preset (default small)
  --vocab-size <n>    tokenizer vocabulary (default 1024)
  --diff <mode>       state encoding: none, cwm or changed (default changed)
  --eval-every <n>    steps between validation losses (default 50)
  --threads <n>       wasm threads for tfjs (default 1)
  --noise-runs <n>    extra PyTorch runs that differ by rounding only, to measure how far
                      rounding alone carries runs apart: the first in float64, the others
                      with initial weights perturbed by 1e-6 relative noise (default 2)
  --reuse-run         reuse the corpus and the finished tfjs run in --dir instead of training
                      again (same settings; train() refuses others)
  --no-torch          stop after the dump (no PyTorch run, no comparison)
  -h, --help          this text
`;

function fail(message: string): never {
  process.stderr.write(`parity: ${message}\n`);
  process.exit(1);
}

const { values: args, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        dir: { type: 'string', default: join(tmpdir(), 'execwm-parity') },
        steps: { type: 'string', default: '300' },
        batch: { type: 'string', default: '16' },
        seed: { type: 'string', default: '1' },
        preset: { type: 'string', default: 'small' },
        'vocab-size': { type: 'string', default: '1024' },
        diff: { type: 'string', default: 'changed' },
        'eval-every': { type: 'string', default: '50' },
        threads: { type: 'string', default: '1' },
        'no-torch': { type: 'boolean', default: false },
        'noise-runs': { type: 'string', default: '2' },
        'reuse-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message} (see --help)`);
  }
})();
if (args.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function int(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) fail(`Expected --${name} to be an integer ≥ ${min}, got ${raw}`);
  return n;
}
const diffModes: Record<string, Pick<TrainConfig, 'diff' | 'changedOnly'>> = {
  none: { diff: false, changedOnly: false },
  cwm: { diff: true, changedOnly: false },
  changed: { diff: true, changedOnly: true },
};
const encodingFlags = diffModes[args.diff] ?? fail(`--diff takes none, cwm or changed, got ${args.diff}`);
const settings = {
  preset: args.preset as TrainConfig['preset'],
  vocabSize: int('vocab-size', args['vocab-size'], 1),
  ...encodingFlags,
  steps: int('steps', args.steps, 1),
  batchSize: int('batch', args.batch, 1),
  seed: int('seed', args.seed, 0),
  evalEvery: int('eval-every', args['eval-every'], 1),
  backend: 'wasm' as const,
  // The reference (torch_parity.py) counts output-example answers in the next-token mean and
  // uses learned positions: pin both, whatever the trainer's defaults become.
  outputWeight: 0,
  positionEncoding: 'learned' as const,
};
const threads = int('threads', args.threads, 1);
const noiseRuns = int('noise-runs', args['noise-runs'], 0);
if (positionals.length > 1) fail(`Expected at most one corpus folder, got ${positionals.join(' ')}`);
const dir = args.dir;
const dumpDir = join(dir, 'dump');
const runDir = join(dir, 'run');
const command = `npx tsx bench/parity.ts ${process.argv.slice(2).join(' ')}`.trim();

const traceArgs = (out: string) => ['trace', '--synthetic', '2000', '--preset', 'easy', '--seed', '3', '--workers', '1', '--out', out, '--overwrite'];

/** The corpus: the one given, or 2000 easy programs traced into `dir`. */
async function corpusFolder(): Promise<{ path: string; built: string | null }> {
  if (positionals[0] !== undefined) {
    if (!existsSync(join(positionals[0], 'manifest.json'))) fail(`${positionals[0]} is not a corpus folder (no manifest.json)`);
    return { path: positionals[0], built: null };
  }
  const out = join(dir, 'corpus');
  if (args['reuse-run'] && existsSync(join(out, 'manifest.json'))) return { path: out, built: `execwm ${traceArgs(out).join(' ')}` };
  process.stderr.write(`parity: execwm ${traceArgs(out).join(' ')}\n`);
  const code = await cli(traceArgs(out));
  if (code !== 0) fail(`tracing the corpus failed (exit ${code})`);
  return { path: out, built: `execwm ${traceArgs(out).join(' ')}` };
}

/** Same rows as train() builds: its tokenizer (from the checkpoint), encoding and packing seed. */
async function rebuildRows(corpus: string, result: TrainResult): Promise<{ train: Rows; val: Rows }> {
  const config = result.trainConfig;
  const { tokenizer } = await readCheckpoint(runDir);
  const data = await loadCorpus(corpus);
  const encoding: SequenceOptions = { diff: config.diff, changedOnly: config.changedOnly };
  const encodeAll = (traces: readonly Trace[]) => traces.map((t) => encodeTrace(t, tokenizer, encoding));
  const examplesOf = (traces: readonly Trace[]) => (config.outputExamples ? traces.flatMap((t) => encodeOutputExample(t, tokenizer) ?? []) : []);
  const packing = { blockSize: result.modelConfig.blockSize, tokenizer, seed: deriveSeed(config.seed, 'packing') };
  const trainRows = buildRows(encodeAll(data.train), { ...packing, outputExamples: examplesOf(data.train) });
  const valRows = buildRows(encodeAll(data.val), { ...packing, outputExamples: examplesOf(data.val) });
  for (const [split, mine, theirs] of [
    ['train', trainRows.stats, result.rowStats.train],
    ['val', valRows.stats, result.rowStats.val],
  ] as const) {
    if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
      fail(`the ${split} rows rebuilt here (${JSON.stringify(mine)}) differ from the run's (${JSON.stringify(theirs)}): bench/parity.ts no longer follows training/train.ts`);
    }
  }
  return { train: trainRows.rows, val: valRows.rows };
}

/**
 * Targets that cross a document boundary: a counted target must be the next token of the same
 * document as its input (one position further). Identical rows cannot show such a packing bug to
 * the comparison, so it is counted here.
 */
function crossDocumentTargets(rows: Rows): number {
  let bad = 0;
  for (let r = 0; r < rows.count; r++) {
    for (let t = r * rows.rowLength; t < (r + 1) * rows.rowLength - 1; t++) {
      if (rows.kinds[t + 1] === KIND_NONE) continue;
      if (rows.documents[t + 1] !== rows.documents[t] || rows.positions[t + 1] !== rows.positions[t]! + 1) bad++;
    }
  }
  return bad;
}

function batchTensors(batch: Batch) {
  const shape: [number, number] = [batch.batchSize, batch.blockSize];
  return {
    x: tf.tensor2d(batch.inputs, shape, 'int32'), // [B, T]
    labels: tf.tensor2d(batch.labels, shape, 'int32'), // [B, T]
    isState: tf.tensor2d(Float32Array.from(batch.kinds, (k) => (k === KIND_STATE ? 1 : 0)), shape, 'float32'), // [B, T]
    documents: tf.tensor2d(batch.documents, shape, 'int32'), // [B, T]
    positions: tf.tensor2d(batch.positions, shape, 'int32'), // [B, T]
  };
}

/** Loss parts and per-weight gradient norms of one batch, as train()'s step computes them. */
function firstStep(model: GPT, batch: Batch, stateWeight: number) {
  const weights = model.namedWeights();
  return tf.tidy(() => {
    const { x, labels, isState, documents, positions } = batchTensors(batch);
    let parts: tf.Scalar[] = [];
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward(x, { training: true, documents, positions }); // [B, T, V]
      const o = cwmObjective({ logits, labels, isState, stateWeight });
      parts = [tf.keep(o.next), tf.keep(o.state)];
      return o.loss;
    }, [...weights.values()]);
    const gradNorms: Record<string, number> = {};
    let sq = 0;
    for (const [name, w] of weights) {
      const n = tf.norm(grads[w.name]!).dataSync()[0]!;
      gradNorms[name] = n;
      sq += n * n;
    }
    return { loss: value.dataSync()[0]!, next: parts[0]!.dataSync()[0]!, state: parts[1]!.dataSync()[0]!, gradNorm: Math.sqrt(sq), gradNorms };
  });
}

/** Little-endian on every platform tfjs runs on here (x64, arm64): typed arrays are written as they lie. */
function writeBinary(file: string, data: ArrayBufferView): void {
  writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

function dumpRows(split: string, rows: Rows) {
  const files = {
    ids: `${split}.ids.i32`,
    kinds: `${split}.kinds.u8`,
    documents: `${split}.documents.u16`,
    positions: `${split}.positions.u16`,
  };
  writeBinary(join(dumpDir, files.ids), rows.ids);
  writeBinary(join(dumpDir, files.kinds), rows.kinds);
  writeBinary(join(dumpDir, files.documents), rows.documents);
  writeBinary(join(dumpDir, files.positions), rows.positions);
  return { count: rows.count, rowLength: rows.rowLength, files };
}

interface TorchLog {
  torch: string;
  threads: number;
  seconds: number;
  train: { step: number; lr: number; loss: number; next: number; state: number; gradNorm: number }[];
  val: { step: number; loss: number; next: number; state: number }[];
  step1GradNorms: Record<string, number>;
}

const round = (x: number, digits = 6): number => Number(x.toPrecision(digits));

// --- 1. corpus, 2. the tfjs run -------------------------------------------------------------
const started = Date.now();
mkdirSync(dir, { recursive: true });
const corpus = await corpusFolder();
if (!args['reuse-run']) rmSync(runDir, { recursive: true, force: true });
process.stderr.write(`parity: training tfjs (${JSON.stringify(settings)}, ${threads} thread) into ${runDir}\n`);
// With --reuse-run a finished run is only reloaded: train() resumes at its last step, refusing other settings.
const result = await train({
  corpus: corpus.path,
  out: runDir,
  config: settings,
  threads,
  resume: args['reuse-run'],
  progress: {
    update(step, fields) {
      if (step % 25 === 0 || step === 1) process.stderr.write(`  tfjs step ${step}: ${JSON.stringify(fields)}\n`);
    },
    stop() {},
  },
});
const config = result.trainConfig;
const metrics = readMetrics(runDir);
const tfjsTrain = metrics.filter((m): m is Extract<MetricsLine, { type: 'train' }> => m.type === 'train');
const tfjsVal = metrics.filter((m): m is Extract<MetricsLine, { type: 'val' }> => m.type === 'val');
if (tfjsTrain.length !== config.steps) fail(`${runDir} holds ${tfjsTrain.length} train steps, expected ${config.steps}`);
const tfjsSeconds = tfjsTrain.at(-1)!.tokens / tfjsTrain.at(-1)!.tokensPerSec;

// --- 3. the same rows, batches and initial weights, dumped ------------------------------------
const rows = await rebuildRows(corpus.path, result);
const sampler = BatchSampler.create(rows.train.count, deriveSeed(config.seed, 'batches'));
const batches = new Int32Array(config.steps * config.batchSize);
for (let s = 0; s < config.steps; s++) batches.set(sampler.next(config.batchSize), s * config.batchSize);
const model = new GPT(result.modelConfig, { seed: deriveSeed(config.seed, 'model') });
const step1 = firstStep(model, makeBatch(rows.train, [...batches.subarray(0, config.batchSize)]), config.stateWeight);
if (Math.abs(step1.loss - tfjsTrain[0]!.loss) > 1e-5) {
  fail(`the first step's loss here (${step1.loss}) is not the run's (${tfjsTrain[0]!.loss}): the initial weights or the first batch differ from train()'s`);
}
rmSync(dumpDir, { recursive: true, force: true });
mkdirSync(dumpDir, { recursive: true });
const tensors: { name: string; shape: number[]; offset: number }[] = [];
const named = [...model.namedWeights()];
const weightData = new Float32Array(named.reduce((n, [, w]) => n + w.size, 0));
let offset = 0;
for (const [name, w] of named) {
  weightData.set(w.dataSync() as Float32Array, offset);
  tensors.push({ name, shape: w.shape, offset });
  offset += w.size;
}
model.dispose();
writeBinary(join(dumpDir, 'weights.f32'), weightData);
writeBinary(join(dumpDir, 'batches.i32'), batches);
const evalSteps = [0, ...Array.from({ length: config.steps }, (_, i) => i + 1).filter((s) => s % config.evalEvery === 0 || s === config.steps)];
const header = {
  format: 'execwm-parity',
  version: 1,
  byteOrder: 'little-endian',
  modelConfig: result.modelConfig,
  trainConfig: config,
  kinds: { none: KIND_NONE, next: KIND_NEXT, state: KIND_STATE },
  rows: { train: dumpRows('train', rows.train), val: dumpRows('val', rows.val) },
  /** Row indices of each step's batch, [steps, batchSize], in order. */
  batches: { file: 'batches.i32', steps: config.steps, batchSize: config.batchSize },
  /** Initial weights by reference-GPT name, linear weights [in, out], concatenated float32. */
  weights: { file: 'weights.f32', tensors },
  /** validate(): the first min(count, evalBatches · batchSize) val rows, token-weighted means. */
  valRows: Math.min(rows.val.count, config.evalBatches * config.batchSize),
  evalSteps,
  /** train()'s learning rate per step (0-based), for checking the reference's schedule. */
  learningRates: Array.from({ length: config.steps }, (_, s) => learningRate(config, s)),
  tfjsStep1: step1,
};
writeFileSync(join(dumpDir, 'header.json'), `${JSON.stringify(header, null, 2)}\n`);
process.stderr.write(`parity: dumped ${rows.train.count} train rows, ${rows.val.count} val rows, ${config.steps} batches and the initial weights to ${dumpDir}\n`);
if (args['no-torch']) process.exit(0);

// --- 4. the PyTorch reference -----------------------------------------------------------------
const threadEnv = { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };
const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8', env: { ...process.env, ...threadEnv } });
if (probe.error || probe.status !== 0) {
  fail(
    `PyTorch is not importable by ${PYTHON} (${(probe.stderr || String(probe.error)).trim().split('\n').at(-1)}); ` +
      `install it with \`apt-get update && apt-get install -y python3-torch libopenblas0-pthread\`. The dump in ${dumpDir} is complete.`,
  );
}
/** One reference run; extra arguments select float64 or perturbed initial weights. */
function runTorch(name: string, extra: string[]): TorchLog {
  const out = join(dumpDir, `${name}.json`);
  process.stderr.write(`parity: ${PYTHON} bench/torch_parity.py ${dumpDir} --out ${out} ${extra.join(' ')}\n`);
  const res = spawnSync(PYTHON, [join(root, 'bench', 'torch_parity.py'), dumpDir, '--out', out, ...extra], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...threadEnv },
  });
  if (res.status !== 0) fail(`bench/torch_parity.py failed (exit ${res.status})`);
  return JSON.parse(readFileSync(out, 'utf8')) as TorchLog;
}
const torch = runTorch('torch', []);
/** Runs that differ from `torch` by rounding only: float64, then float32 with perturbed initial weights. */
const noiseSpecs = Array.from({ length: noiseRuns }, (_, k) =>
  k === 0
    ? { label: 'PyTorch float64', file: 'torch-float64', extra: ['--dtype', 'float64'] }
    : { label: `PyTorch perturbed #${k}`, file: `torch-perturbed-${k}`, extra: ['--perturb', String(PERTURB), '--perturb-seed', String(k)] },
);
const noise = noiseSpecs.map((n) => runTorch(n.file, n.extra));

// --- 5. comparison ----------------------------------------------------------------------------
type Losses = { step: number; loss: number }[];
/** How far two runs are apart: train losses step by step, validation losses at each evaluation. */
function gap(a: { train: Losses; val: Losses }, b: { train: Losses; val: Losses }) {
  const d = a.train.map((t, i) => Math.abs(t.loss - b.train[i]!.loss));
  const firstApart = d.findIndex((x) => x > FIRST_STEP_TOLERANCE);
  const val = a.val.map((v) => {
    const w = b.val.find((x) => x.step === v.step) ?? fail(`a run logged no validation loss at step ${v.step}`);
    return Math.abs(v.loss - w.loss);
  });
  return {
    maxFirst: Math.max(...d.slice(0, FIRST_STEPS)),
    /** The first step whose train losses differ by more than FIRST_STEP_TOLERANCE (null: none). */
    firstStepApart: firstApart < 0 ? null : firstApart + 1,
    maxVal: Math.max(...val),
    finalVal: val.at(-1)!,
  };
}
const tfjsRun = { train: tfjsTrain, val: tfjsVal };
const tfjsGap = gap(tfjsRun, torch);
const noiseGaps = noise.map((n) => gap(n, torch));
/** The largest validation gap that rounding alone opened between two PyTorch runs. */
const noiseFloor = noiseGaps.length ? Math.max(...noiseGaps.map((g) => g.maxVal)) : null;
const firstSteps = tfjsTrain.slice(0, FIRST_STEPS).map((t, i) => {
  const r = torch.train[i]!;
  return {
    step: t.step,
    lr: t.lr,
    tfjs: { loss: t.loss, next: t.next, state: t.state, gradNorm: t.gradNorm },
    torch: { loss: r.loss, next: r.next, state: r.state, gradNorm: r.gradNorm },
    lossDiff: round(t.loss - r.loss, 3),
  };
});
const lrDiff = Math.max(...tfjsTrain.map((t, i) => Math.abs(t.lr - torch.train[i]!.lr)));
const val = tfjsVal.map((v) => {
  const r = torch.val.find((x) => x.step === v.step)!;
  const rounding = Object.fromEntries(noise.map((n, k) => [noiseSpecs[k]!.label, n.val.find((x) => x.step === v.step)!.loss]));
  return { step: v.step, tokens: v.step * config.batchSize * result.modelConfig.blockSize, tfjs: v, torch: r, roundingOnly: rounding, lossDiff: round(v.loss - r.loss, 3) };
});
const gradRel = Object.entries(step1.gradNorms).map(([name, n]) => {
  const r = torch.step1GradNorms[name] ?? fail(`PyTorch reported no gradient for ${name}`);
  return { name, tfjs: n, torch: r, relDiff: round(Math.abs(n - r) / Math.max(r, 1e-12), 3) };
});
const maxGradRel = Math.max(...gradRel.map((g) => g.relDiff));
// Mean over the last tenth of the steps: single-step losses are noisy, their mean is not.
const tail = Math.max(1, Math.floor(config.steps / 10));
const meanTail = (xs: { loss: number }[]) => xs.slice(-tail).reduce((a, b) => a + b.loss, 0) / tail;
const crossDocument = crossDocumentTargets(rows.train) + crossDocumentTargets(rows.val);
const agreeFirst = tfjsGap.maxFirst <= FIRST_STEP_TOLERANCE && maxGradRel <= 1e-3;
// Validation losses agree when within the fixed tolerance or within twice what noise alone did.
const valBound = Math.max(VAL_TOLERANCE, 2 * (noiseFloor ?? 0));
const agreeVal = tfjsGap.maxVal <= valBound;
const apart = (g: { firstStepApart: number | null }) => g.firstStepApart ?? 'never';

const allLabels = ['tfjs', 'PyTorch', ...noiseSpecs.map((n) => n.label.replace('PyTorch ', ''))].join(' / ');
const summary = [
  { figure: `max |Δ train loss| tfjs vs PyTorch, steps 1–${FIRST_STEPS}`, value: round(tfjsGap.maxFirst, 3), goal: `<= ${FIRST_STEP_TOLERANCE}`, met: tfjsGap.maxFirst <= FIRST_STEP_TOLERANCE },
  { figure: 'max relative Δ of per-weight gradient norms, step 1', value: round(maxGradRel, 3), goal: '<= 1e-3', met: maxGradRel <= 1e-3 },
  { figure: 'max |Δ learning rate| over all steps', value: lrDiff },
  { figure: `first step with |Δ train loss| > ${FIRST_STEP_TOLERANCE}: tfjs vs PyTorch`, value: apart(tfjsGap) },
  ...noiseGaps.map((g, k) => ({ figure: `  … ${noiseSpecs[k]!.label} vs PyTorch`, value: apart(g) })),
  { figure: `max |Δ val loss| tfjs vs PyTorch over ${val.length} evaluations`, value: round(tfjsGap.maxVal, 3), goal: `<= ${round(valBound, 3)}`, met: agreeVal },
  ...noiseGaps.map((g, k) => ({ figure: `  … ${noiseSpecs[k]!.label} vs PyTorch (rounding only)`, value: round(g.maxVal, 3) })),
  { figure: `final val loss (step ${config.steps}): ${allLabels}`, value: [tfjsVal.at(-1)!, torch.val.at(-1)!, ...noise.map((n) => n.val.at(-1)!)].map((v) => round(v.loss, 5)).join(' / ') },
  { figure: `mean train loss of the last ${tail} steps: ${allLabels}`, value: [tfjsTrain, torch.train, ...noise.map((n) => n.train)].map((t) => round(meanTail(t), 5)).join(' / ') },
  { figure: 'counted targets outside their input\'s document (train + val rows)', value: crossDocument, goal: '0', met: crossDocument === 0 },
];
const verdict = !agreeFirst
  ? 'The paths disagree from the first steps, with identical weights and batches: a bug in one of them (see the step-1 gradient norms for where).'
  : !agreeVal
    ? 'The paths agree at first but their validation losses drift apart further than rounding noise carries two PyTorch runs: look for a bug that grows with training (optimizer state, schedule).'
  : crossDocument > 0
    ? 'The two trainers agree, but the rows hold targets outside their input\'s document: a packing bug both train on.'
    : 'No trainer bug: the tfjs trainer and PyTorch agree on the first steps to rounding and reach the same validation loss at equal tokens.';
const corpusCommand = corpus.built ?? `(given) ${corpus.path}`;
const figures = {
  command,
  corpus: corpusCommand,
  date: new Date().toISOString(),
  seconds: Math.round((Date.now() - started) / 1000),
  machine: { cores: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown' },
  settings: { ...settings, threads, stateWeight: config.stateWeight, lr: config.lr, warmupSteps: config.warmupSteps, evalBatches: config.evalBatches },
  model: { ...result.modelConfig, params: result.paramCount },
  rows: { train: result.rowStats.train, val: result.rowStats.val, valRowsEvaluated: header.valRows },
  tokensPerStep: config.batchSize * result.modelConfig.blockSize,
  tfjs: { backend: result.backend, seconds: Math.round(tfjsSeconds) },
  torch: { version: torch.torch, threads: torch.threads, seconds: Math.round(torch.seconds) },
  roundingOnly: { runs: noiseSpecs.map((n) => n.label), perturb: PERTURB, valFloor: noiseFloor, valBound },
  summary,
  verdict,
  firstSteps,
  gaps: { tfjs: tfjsGap, ...Object.fromEntries(noiseGaps.map((g, k) => [noiseSpecs[k]!.label, g])) },
  val,
  /** Train losses every 10 steps: tfjs, PyTorch, the rounding-only PyTorch runs. */
  trainCurve: tfjsTrain
    .filter((t) => t.step % 10 === 0 || t.step === 1)
    .map((t) => ({ step: t.step, tfjs: t.loss, torch: torch.train[t.step - 1]!.loss, roundingOnly: noise.map((n) => n.train[t.step - 1]!.loss) })),
  step1GradNorms: gradRel,
};
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'parity.json'), `${JSON.stringify(figures, null, 2)}\n`);

const f = (x: number, d = 5) => x.toFixed(d);
const cell = (x: unknown) => String(x).replaceAll('|', '\\|');
const md = [
  '# Trainer parity: tfjs vs PyTorch on the same rows',
  '',
  `${figures.date.slice(0, 10)}, ${figures.seconds} s (tfjs ${figures.tfjs.seconds} s on ${result.backend}, ${threads} thread; PyTorch ${torch.torch} ${figures.torch.seconds} s per run, ${torch.threads} thread).`,
  '',
  '```',
  command,
  `# corpus: ${corpusCommand}`,
  `# reference: ${PYTHON} bench/torch_parity.py ${dumpDir} --out ${dumpDir}/torch.json`,
  ...noiseSpecs.map((n) => `# rounding only: ${PYTHON} bench/torch_parity.py ${dumpDir} --out ${dumpDir}/${n.file}.json ${n.extra.join(' ')}`),
  '```',
  '',
  `Model \`${config.preset}\` (${result.paramCount} parameters, vocabulary ${result.modelConfig.vocabSize}), ` +
    `${config.steps} steps of ${config.batchSize} × ${result.modelConfig.blockSize} tokens, λ = ${config.stateWeight}, seed ${config.seed}; ` +
    `${result.rowStats.train.rows} train rows, validation on the first ${header.valRows} of ${result.rowStats.val.rows} val rows.`,
  '',
  `**Verdict:** ${verdict}`,
  '',
  '| figure | value | goal | met |',
  '| --- | --- | --- | --- |',
  ...summary.map((r) => `| ${cell(r.figure)} | ${r.value} | ${r.goal ?? ''} | ${r.met === undefined ? '' : r.met ? 'yes' : 'no'} |`),
  '',
  '## Validation loss at equal tokens',
  '',
  `| step | tokens | tfjs loss | PyTorch loss | Δ |${noiseSpecs.map((n) => ` ${n.label.replace('PyTorch ', '')} |`).join('')} tfjs next | PyTorch next | tfjs state | PyTorch state |`,
  `| ---: | ---: | ---: | ---: | ---: |${noise.map(() => ' ---: |').join('')} ---: | ---: | ---: | ---: |`,
  ...val.map(
    (v) =>
      `| ${v.step} | ${v.tokens} | ${f(v.tfjs.loss)} | ${f(v.torch.loss)} | ${v.lossDiff} |${Object.values(v.roundingOnly).map((x) => ` ${f(x)} |`).join('')} ` +
      `${f(v.tfjs.next)} | ${f(v.torch.next)} | ${f(v.tfjs.state)} | ${f(v.torch.state)} |`,
  ),
  '',
  noise.length
    ? 'The float64 column is the PyTorch run in double precision; the perturbed columns are float32 PyTorch runs whose initial ' +
      `weights were scaled by 1 + ${PERTURB}·N(0, 1). Both differ from the PyTorch run by rounding only: how far they land from it ` +
      'is how far rounding alone carries two correct runs apart at this learning rate.'
    : '',
  '',
  `## Train loss, steps 1–${FIRST_STEPS}`,
  '',
  '| step | lr | tfjs loss | PyTorch loss | Δ | tfjs grad norm | PyTorch grad norm |',
  '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...firstSteps.map((s) => `| ${s.step} | ${s.lr.toExponential(3)} | ${f(s.tfjs.loss, 6)} | ${f(s.torch.loss, 6)} | ${s.lossDiff} | ${f(s.tfjs.gradNorm, 5)} | ${f(s.torch.gradNorm, 5)} |`),
  '',
];
writeFileSync(join(root, 'bench', 'results', 'parity.md'), md.join('\n'));
process.stderr.write(`${JSON.stringify(summary)}\n${verdict}\nparity: wrote bench/results/parity.json and bench/results/parity.md\n`);
