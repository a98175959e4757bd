/**
 * Training throughput of the reference GPT (V=256, D=128, L=2, H=4, T=128, B=16, ≈446k params)
 * on our tfjs wasm path, side by side with PyTorch on the same machine running the same model
 * (bench/torch_ref.py). Writes bench/results/train.json.
 *
 *   npx tsx bench/train.ts [--steps 12] [--rounds 2] [--no-torch] [--no-profile]
 *                          [--variants wasm,wasm-threads,wasm-workers,wasm-nofma,wasm-stock]
 *
 * Rounds alternate PyTorch and tfjs so that load from other processes hits both alike; each
 * figure is the median over rounds. A per-kernel profile of one tfjs step says where time goes.
 * The machine is shared, so absolute numbers are noisy; the ratio measured in one run is the figure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '../training/tf.js';
import { setupBackend } from '../training/backend.js';
import { GPT, type ModelConfig } from '../training/model.js';
import { cwmObjective } from '../training/objective.js';
import { KIND_NEXT, KIND_STATE, type Batch } from '../training/data.js';
import { optimizerStep } from '../training/gradients.js';
import { GradientWorkers, weightLayout } from '../training/parallel.js';
import { AdamW } from '../training/optim.js';
import { gemmFma, setKernelOverrides } from '../training/kernels/wasm.js';
import { relaxedSimd, useFmaKernels } from '../training/kernels/relaxed-simd.js';
import { instantiate, moduleBytes, op, V128, Wasm } from '../training/kernels/wasm-emit.js';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const REFERENCE: ModelConfig = { vocabSize: 256, blockSize: 128, nLayer: 2, nHead: 4, nEmbd: 128, dropout: 0 };
const BATCH = 16;

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '12' },
    rounds: { type: 'string', default: '2' },
    'no-torch': { type: 'boolean', default: false },
    variants: { type: 'string', default: 'wasm,wasm-threads,wasm-workers,wasm-nofma,wasm-stock' },
    profile: { type: 'boolean', default: true },
    'no-profile': { type: 'boolean', default: false },
    child: { type: 'string' },
  },
});
const steps = Number(args.steps);
const rounds = Number(args.rounds);
if (args['no-profile']) args.profile = false;

/**
 * One seeded training setup: model, optimizer, a fixed batch, and the step function. With
 * `workers` > 1 the step is the trainer's data-parallel one (training/parallel.ts): the batch
 * split across this thread and `workers − 1` gradient workers of `threads` wasm threads each. That
 * path masks by document as `execwm train` does (one document per row here), a little more work
 * than the plain causal mask of the other variants.
 */
async function makeTrainer(workers: number, threads: number): Promise<{ step: () => Promise<number>; dispose: () => Promise<void>; params: number }> {
  const model = new GPT(REFERENCE, { seed: 0 });
  const weights = model.namedWeights();
  const optimizer = new AdamW(weights, { beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1, gradClip: 1 });
  const tokens = Array.from({ length: BATCH * (REFERENCE.blockSize + 1) }, (_, i) => (i * 2654435761) % 251);
  if (workers > 1) {
    const T = REFERENCE.blockSize;
    const batch: Batch = {
      batchSize: BATCH,
      blockSize: T,
      inputs: Int32Array.from({ length: BATCH * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T)]!),
      labels: Int32Array.from({ length: BATCH * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T) + 1]!),
      kinds: new Uint8Array(BATCH * T),
      documents: new Int32Array(BATCH * T),
      positions: Int32Array.from({ length: BATCH * T }, (_, i) => i % T),
    };
    batch.labels.forEach((l, i) => (batch.kinds[i] = l > 128 ? KIND_STATE : KIND_NEXT));
    const settings = { stateWeight: 1, outputWeight: null };
    const pool = await GradientWorkers.start(workers - 1, { modelConfig: REFERENCE, seed: 0, backend: 'wasm', threads, settings }, weightLayout(weights));
    return {
      // The workers are handed copies of their shards, so the same batch serves every step.
      step: async () => (await optimizerStep({ model, weights, optimizer, workers: pool }, batch, settings, 1e-3))[0]!,
      params: model.paramCount(),
      dispose: async () => {
        await pool.close();
        optimizer.dispose();
        model.dispose();
      },
    };
  }
  const rows = tf.tensor2d(tokens, [BATCH, REFERENCE.blockSize + 1], 'int32');
  const idx = tf.slice(rows, [0, 0], [BATCH, REFERENCE.blockSize]) as tf.Tensor2D;
  const labels = tf.slice(rows, [0, 1], [BATCH, REFERENCE.blockSize]) as tf.Tensor2D;
  const isState = tf.cast(tf.greater(labels, 128), 'float32') as tf.Tensor2D;
  const names = [...weights.keys()];
  const step = async (): Promise<number> => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.forward(idx, { training: true });
        return cwmObjective({ logits, labels, isState, stateWeight: 1 }).loss;
      }, [...weights.values()]);
      const byName: Record<string, tf.Tensor> = {};
      for (const name of names) byName[name] = grads[weights.get(name)!.name]!;
      optimizer.apply(byName, 1e-3);
      return value;
    });
    const v = loss.dataSync()[0]!; // forces the step to finish
    loss.dispose();
    return v;
  };
  return {
    step,
    params: model.paramCount(),
    dispose: async () => {
      optimizer.dispose();
      model.dispose();
      tf.dispose([rows, idx, labels, isState]);
    },
  };
}

/** Tokens per second of `steps` steps after two warm-up steps. */
async function measureTfjs(
  workers: number,
  threads: number,
): Promise<{ tokensPerSec: number; msPerStep: number; fastestStepMs: number; cpuMsPerStep: number; lossFirst: number; lossLast: number }> {
  const trainer = await makeTrainer(workers, threads);
  const lossFirst = await trainer.step();
  await trainer.step();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let lossLast = 0;
  let fastest = Infinity; // the step least slowed by other processes
  for (let i = 0; i < steps; i++) {
    const s0 = performance.now();
    lossLast = await trainer.step();
    fastest = Math.min(fastest, performance.now() - s0);
  }
  const ms = (performance.now() - t0) / steps;
  const cpu = process.cpuUsage(c0);
  await trainer.dispose();
  return {
    tokensPerSec: (BATCH * REFERENCE.blockSize * 1000) / ms,
    msPerStep: round(ms, 1),
    fastestStepMs: round(fastest, 1),
    // CPU time of this process (all threads): less sensitive to other load than wall time.
    cpuMsPerStep: round((cpu.user + cpu.system) / 1000 / steps, 1),
    lossFirst,
    lossLast,
  };
}

interface KernelProfile {
  /** GFLOPS of a register-only wasm loop (see simdPeak): the ceiling of 128-bit SIMD here and now. */
  simdPeakGflops: { fma: number | null; mulAdd: number };
  /** Each product of a training step on its own, on this thread's CPU time (see matMulTable). */
  matMulTable: { product: string; shapes: string; gflops: number }[];
  /** Per kernel: ms per step, calls per step, share of the step's kernel time. */
  kernels: { kernel: string; ms: number; calls: number; share: number }[];
  /** Per BatchMatMul operand shapes (`a·b → out`): ms and calls per step, and the GFLOPS reached. */
  matMuls: { shapes: string; ms: number; calls: number; gflops: number; flopsPerCall: number }[];
}

/**
 * GFLOPS of a wasm loop that keeps 12 independent f32x4 accumulators in registers and adds
 * x·y to each (relaxed_madd, or f32x4.mul then f32x4.add), timed on this thread's CPU time:
 * no memory traffic, so it is what 128-bit SIMD can reach on this machine under this load.
 */
function simdPeak(fma: boolean): number {
  const accumulators = 12;
  const [iterations, x, y] = [0, accumulators + 1, accumulators + 2];
  const body: number[] = [];
  for (let a = 1; a <= accumulators; a++) {
    body.push(
      ...(fma ? [...op.get(x), ...op.get(y), ...op.get(a), ...op.f32x4RelaxedMadd] : [...op.get(a), ...op.get(x), ...op.get(y), ...op.f32x4Mul, ...op.f32x4Add]),
      ...op.set(a),
    );
  }
  body.push(...op.get(iterations), ...op.i32(1), ...op.sub, ...op.tee(iterations), ...op.brIf(0));
  const code = [...op.loop(body)];
  for (let a = 1; a <= accumulators; a++) code.push(...op.i32(0), ...op.get(a), ...op.v128Store(16 * a)); // keep the results live
  const bytes = moduleBytes({ shared: false, functions: [{ params: 1, locals: [[accumulators + 2, V128]], code, export: 'peak' }] });
  const peak = instantiate(new Wasm.Module(bytes), new Wasm.Memory({ initial: 1 })).peak as (iterations: number) => void;
  const n = 2e6;
  peak(n);
  let best = Infinity;
  for (let i = 0; i < 9; i++) {
    const c0 = process.cpuUsage();
    peak(n);
    const used = process.cpuUsage(c0);
    best = Math.min(best, (used.user + used.system) / 1000);
  }
  return round((n * accumulators * 8) / best / 1e6, 1);
}

/**
 * The products of a training step of the reference model (B·T = 2048 rows, D = 128, V = 256,
 * 4 heads), each timed alone through tf.matMul (transposes included) on this thread's CPU
 * time, fastest of 9: on a loaded machine a wall-clock profile mostly measures the pauses of
 * the longer calls, and CPU time does not count them.
 */
function matMulTable(): { product: string; shapes: string; gflops: number }[] {
  const [n, d, v, h, t, b] = [BATCH * REFERENCE.blockSize, REFERENCE.nEmbd, REFERENCE.vocabSize, REFERENCE.nHead, REFERENCE.blockSize, BATCH];
  const hs = d / h;
  const products: { product: string; a: number[]; b: number[]; transposeA?: boolean; transposeB?: boolean }[] = [
    { product: 'x·W (q, k, v, attention projection)', a: [n, d], b: [d, d] },
    { product: 'x·W (MLP up)', a: [n, d], b: [d, 4 * d] },
    { product: 'x·W (MLP down)', a: [n, 4 * d], b: [4 * d, d] },
    { product: 'x·wteᵀ (logits)', a: [n, d], b: [v, d], transposeB: true },
    { product: 'dy·Wᵀ (input gradient, D → D)', a: [n, d], b: [d, d], transposeB: true },
    { product: 'dy·Wᵀ (input gradient, MLP up)', a: [n, 4 * d], b: [d, 4 * d], transposeB: true },
    { product: 'dy·Wᵀ (input gradient, MLP down)', a: [n, d], b: [4 * d, d], transposeB: true },
    { product: 'xᵀ·dy (weight gradient, D × D)', a: [n, d], b: [n, d], transposeA: true },
    { product: 'xᵀ·dy (weight gradient, MLP up)', a: [n, d], b: [n, 4 * d], transposeA: true },
    { product: 'xᵀ·dy (weight gradient, MLP down)', a: [n, 4 * d], b: [n, d], transposeA: true },
    { product: 'q·kᵀ (scores, all heads)', a: [b, h, t, hs], b: [b, h, t, hs], transposeB: true },
    { product: 'att·v (all heads)', a: [b, h, t, t], b: [b, h, t, hs] },
    { product: 'attᵀ·dy (value gradient, all heads)', a: [b, h, t, t], b: [b, h, t, hs], transposeA: true },
  ];
  return products.map((p) => {
    const a = tf.randomNormal(p.a, 0, 1, 'float32', 1);
    const bm = tf.randomNormal(p.b, 0, 1, 'float32', 2);
    const run = (): tf.Tensor => tf.matMul(a, bm, p.transposeA ?? false, p.transposeB ?? false);
    const first = run();
    const out = first.shape;
    first.dispose();
    let best = Infinity;
    for (let i = 0; i < 9; i++) {
      const c0 = process.cpuUsage();
      const y = run();
      const used = process.cpuUsage(c0);
      y.dispose();
      best = Math.min(best, (used.user + used.system) / 1000);
    }
    const inner = p.transposeA ? p.a.at(-2)! : p.a.at(-1)!;
    tf.dispose([a, bm]);
    const shapes = `${JSON.stringify(p.a)}${p.transposeA ? 'ᵀ' : ''}·${JSON.stringify(p.b)}${p.transposeB ? 'ᵀ' : ''} → ${JSON.stringify(out)}`;
    return { product: p.product, shapes, gflops: round((2 * tf.util.sizeFromShape(out) * inner) / best / 1e6, 1) };
  });
}

/**
 * Per-kernel wall time of a step (wasm kernels are synchronous, so wall time is theirs): each
 * call's fastest of `nSteps` profiled steps, which run the same kernels in the same order — on
 * a shared machine a call is often paused while another process runs, and the fastest of
 * several is the kernel's own time.
 */
async function profileKernels(nSteps: number): Promise<KernelProfile> {
  const trainer = await makeTrainer(1, 1);
  await trainer.step();
  let calls: { name: string; inputShapes: number[][]; outputShapes: number[][]; ms: number }[] = [];
  for (let i = 0; i < nSteps; i++) {
    const info = await tf.profile(() => trainer.step());
    const these = info.kernels.map((k) => ({ name: k.name, inputShapes: k.inputShapes as number[][], outputShapes: k.outputShapes as number[][], ms: Number(k.kernelTimeMs) }));
    if (i > 0 && (these.length !== calls.length || these.some((k, j) => k.name !== calls[j]!.name))) throw new Error('profiled steps ran different kernels');
    calls = i === 0 ? these : calls.map((k, j) => ({ ...k, ms: Math.min(k.ms, these[j]!.ms) }));
  }
  await trainer.dispose();
  const byKernel = new Map<string, { ms: number; calls: number }>();
  const byShapes = new Map<string, { ms: number; calls: number; flops: number }>();
  for (const k of calls) {
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += k.ms;
    entry.calls += 1;
    byKernel.set(k.name, entry);
    if (k.name === 'BatchMatMul') {
      const [a, b] = k.inputShapes as number[][];
      const out = k.outputShapes[0] as number[];
      const m = out.at(-2)!;
      // The inner dimension from a's last two axes, whether or not a is transposed.
      const inner = (a!.at(-1)! * a!.at(-2)!) / m;
      const key = `${JSON.stringify(a)}·${JSON.stringify(b)} → ${JSON.stringify(out)}`;
      const e = byShapes.get(key) ?? { ms: 0, calls: 0, flops: 0 };
      e.ms += k.ms;
      e.calls += 1;
      e.flops += 2 * tf.util.sizeFromShape(out) * inner;
      byShapes.set(key, e);
    }
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  return {
    simdPeakGflops: { fma: relaxedSimd() ? simdPeak(true) : null, mulAdd: simdPeak(false) },
    matMulTable: matMulTable(),
    kernels: [...byKernel.entries()]
      .map(([kernel, e]) => ({ kernel, ms: round(e.ms, 2), calls: Math.round(e.calls), share: round(e.ms / total, 3) }))
      .sort((a, b) => b.ms - a.ms),
    matMuls: [...byShapes.entries()]
      .map(([shapes, e]) => ({ shapes, ms: round(e.ms, 2), calls: Math.round(e.calls), gflops: round(e.flops / e.ms / 1e6, 1), flopsPerCall: Math.round(e.flops / e.calls) }))
      .sort((a, b) => b.ms - a.ms),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** PyTorch on Debian's python (where python3-torch installs), or null when not available. */
function measureTorch(): { tokensPerSec: number; msPerStep: number; fastestStepMs: number; cpuMsPerStep: number; torch: string } | { error: string } {
  const python = '/usr/bin/python3';
  if (!existsSync(python)) return { error: `${python} not found` };
  const res = spawnSync(python, [join(root, 'bench', 'torch_ref.py'), '--steps', String(steps)], {
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_NUM_THREADS: '2', OMP_NUM_THREADS: '1' },
  });
  if (res.status !== 0) return { error: (res.stderr || res.stdout || `exit ${res.status}`).trim().split('\n').at(-1)! };
  return JSON.parse(res.stdout.trim().split('\n').at(-1)!);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Each variant runs in its own process: the wasm build (threads or not) is fixed per process. */
const VARIANTS: Record<string, { threads: number; workers?: number; overrides: boolean; fma: boolean; what: string }> = {
  wasm: { threads: 1, overrides: true, fma: true, what: 'wasm SIMD + our kernel overrides (fused multiply-add where validated), 1 thread' },
  'wasm-threads': { threads: 2, overrides: true, fma: true, what: 'wasm SIMD + overrides, threaded build with 2 pool threads' },
  'wasm-workers': {
    threads: 1,
    workers: 2,
    overrides: true,
    fma: true,
    what: 'wasm SIMD + overrides, 2 data-parallel workers (this thread and a gradient worker, 1 wasm thread each; train --workers 2)',
  },
  'wasm-nofma': { threads: 1, overrides: true, fma: false, what: 'wasm SIMD + overrides, matrix kernel with multiply and add apart, 1 thread' },
  'wasm-stock': { threads: 1, overrides: false, fma: false, what: 'wasm SIMD, stock kernels (+ UnsortedSegmentSum), 1 thread' },
};

if (args.child) {
  const variant = VARIANTS[args.child]!;
  useFmaKernels(variant.fma);
  await setupBackend('wasm', { threads: variant.threads });
  setKernelOverrides(variant.overrides);
  const fma = gemmFma(tf.backend());
  const result = { ...(await measureTfjs(variant.workers ?? 1, variant.threads)), threads: getThreadsCount(), fma, profile: args.profile ? await profileKernels(5) : null };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

function runChild(
  variant: string,
  profile: boolean,
): (Awaited<ReturnType<typeof measureTfjs>> & { threads: number; fma: boolean; profile: KernelProfile | null }) | { error: string } {
  const res = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), '--child', variant, '--steps', String(steps), ...(profile ? [] : ['--no-profile'])],
    { encoding: 'utf8', cwd: root },
  );
  if (res.status !== 0) return { error: (res.stderr || `exit ${res.status}`).trim().split('\n').slice(-3).join(' ') };
  return JSON.parse(res.stdout.trim().split('\n').at(-1)!);
}

const variants = args.variants.split(',').filter(Boolean);
for (const v of variants) if (!VARIANTS[v]) throw new Error(`unknown variant ${v}; known: ${Object.keys(VARIANTS).join(', ')}`);
const tfjsRuns = new Map<string, Awaited<ReturnType<typeof measureTfjs>>[]>(variants.map((v) => [v, []]));
const threadsSeen = new Map<string, number>();
const fmaSeen = new Map<string, boolean>();
const errors: Record<string, string> = {};
const torchRuns: number[] = [];
const torchCpuMs: number[] = [];
const torchFastestMs: number[] = [];
const loadAverage: number[][] = [];
let torchInfo: string | undefined;
let profile: KernelProfile | null = null;
for (let roundNo = 0; roundNo < rounds; roundNo++) {
  loadAverage.push(os.loadavg().map((x) => round(x, 1)));
  if (!args['no-torch']) {
    const torch = measureTorch();
    if ('error' in torch) errors.torch = torch.error;
    else {
      torchRuns.push(torch.tokensPerSec);
      torchCpuMs.push(torch.cpuMsPerStep);
      torchFastestMs.push(torch.fastestStepMs);
      torchInfo = torch.torch;
    }
    process.stderr.write(`round ${roundNo}: torch ${'error' in torch ? torch.error : Math.round(torch.tokensPerSec)} tokens/s\n`);
  }
  for (const variant of variants) {
    const wantProfile = args.profile && roundNo === rounds - 1 && variant === variants[0];
    const r = runChild(variant, wantProfile);
    if ('error' in r) {
      errors[variant] = r.error;
      process.stderr.write(`round ${roundNo}: ${variant} failed: ${r.error}\n`);
      continue;
    }
    if (wantProfile) profile = r.profile;
    threadsSeen.set(variant, r.threads);
    fmaSeen.set(variant, r.fma);
    const { profile: _unused, threads: _t, fma: _f, ...run } = r;
    tfjsRuns.get(variant)!.push(run);
    process.stderr.write(`round ${roundNo}: ${variant} ${Math.round(r.tokensPerSec)} tokens/s (${r.msPerStep.toFixed(0)} ms/step)\n`);
  }
}
const ourRuns = tfjsRuns.get(variants[0]!)!;
const ours = ourRuns.length ? median(ourRuns.map((r) => r.tokensPerSec)) : NaN;
const torchMedian = torchRuns.length ? median(torchRuns) : null;
// Tokens/s at the fastest step of each run (median over rounds): the figure least moved by other load.
const tokensPerStep = BATCH * REFERENCE.blockSize;
const fastestTokensPerSec = (ms: number[]): number | null => (ms.length ? (tokensPerStep * 1000) / median(ms) : null);
const torchFastest = fastestTokensPerSec(torchFastestMs);
const oursFastest = fastestTokensPerSec(ourRuns.map((r) => r.fastestStepMs));
const bestFastest = Math.max(...[...tfjsRuns.values()].map((rs) => fastestTokensPerSec(rs.map((r) => r.fastestStepMs)) ?? 0));
const ratio = torchMedian ? ours / torchMedian : null;
const best = Math.max(...[...tfjsRuns.values()].filter((rs) => rs.length).map((rs) => median(rs.map((r) => r.tokensPerSec))));
// The large products: [B·T, ·] rows, 2²⁶ flops or more a call.
// The large products: the [B·T, ·] ones (all but the attention heads').
const largeGflops = (profile?.matMulTable ?? []).filter((r) => r.shapes.startsWith('[2048')).map((r) => r.gflops);
// Same seed, same losses: every run of the kernel variants that must agree bit for bit.
const lossesOf = (v: string): string[] => (tfjsRuns.get(v) ?? []).map((r) => `${r.lossFirst}/${r.lossLast}`);
const mustAgree = ['wasm', 'wasm-threads'].filter((v) => variants.includes(v)).flatMap(lossesOf);
const lossesAgree = mustAgree.length > 0 && mustAgree.every((l) => l === mustAgree[0]);

const figures = {
  config: { ...REFERENCE, batch: BATCH, params: makeParamCount() },
  steps,
  rounds,
  tfjs: Object.fromEntries(
    [...tfjsRuns].map(([v, rs]) => [
      v,
      { what: VARIANTS[v]!.what, threads: threadsSeen.get(v), fma: fmaSeen.get(v), tokensPerSecMedian: rs.length ? Math.round(median(rs.map((r) => r.tokensPerSec))) : null, runs: rs },
    ]),
  ),
  torch: torchMedian
    ? { tokensPerSecMedian: Math.round(torchMedian), runs: torchRuns.map(Math.round), fastestStepMs: torchFastestMs, cpuMsPerStep: torchCpuMs, version: torchInfo }
    : { error: errors.torch ?? 'skipped' },
  loadAverageAtEachRound: loadAverage,
  errors,
  ratioToTorch: ratio === null ? null : round(ratio, 3),
  bestTfjsRatioToTorch: torchMedian ? round(best / torchMedian, 3) : null,
  profileVariant: variants[0],
  profileMsPerStep: profile?.kernels ?? [],
  matMulProfileMsPerStep: profile?.matMuls ?? [],
  matMulCpuTimeGflops: profile?.matMulTable ?? [],
  summary: [
    { figure: `training tokens/s, tfjs ${variants[0]}`, value: Math.round(ours) },
    ...variants.slice(1).map((v) => ({ figure: `training tokens/s, tfjs ${v}`, value: figuresOf(v) })),
    { figure: 'training tokens/s, PyTorch (1 torch thread, OpenBLAS 2)', value: torchMedian ? Math.round(torchMedian) : 'n/a' },
    { figure: `ratio tfjs ${variants[0]} / PyTorch`, value: ratio === null ? 'n/a' : round(ratio, 3), goal: '>= 0.7', met: ratio !== null && ratio >= 0.7 },
    // PyTorch's OpenBLAS runs on both cores, so the fastest tfjs variant (threads included) is the like-for-like figure.
    {
      figure: 'ratio fastest tfjs variant / PyTorch',
      value: torchMedian ? round(best / torchMedian, 3) : 'n/a',
      goal: '>= 1.0',
      met: torchMedian ? best / torchMedian >= 1.0 : false,
    },
    {
      figure: `ratio tfjs ${variants[0]} / PyTorch, fastest steps`,
      value: oursFastest && torchFastest ? round(oursFastest / torchFastest, 3) : 'n/a',
      goal: '>= 0.7',
      met: oursFastest !== null && torchFastest !== null && oursFastest / torchFastest >= 0.7,
    },
    {
      figure: 'ratio fastest tfjs variant / PyTorch, fastest steps',
      value: torchFastest ? round(bestFastest / torchFastest, 3) : 'n/a',
      goal: '>= 1.0',
      met: torchFastest !== null && bestFastest / torchFastest >= 1.0,
    },
    {
      figure: `matrix products on the large shapes, GFLOPS on CPU time (${variants[0]}, median of ${largeGflops.length})`,
      value: largeGflops.length ? round(median(largeGflops), 1) : 'n/a',
      goal: '>= 70',
      met: largeGflops.length > 0 && median(largeGflops) >= 70,
    },
    {
      figure: 'register-only 128-bit SIMD loop, GFLOPS (relaxed_madd / mul+add)',
      value: profile ? `${profile.simdPeakGflops.fma ?? 'n/a'} / ${profile.simdPeakGflops.mulAdd}` : 'n/a',
    },
    { figure: 'same seed, same losses: every run, 1 and 2 threads', value: lossesAgree ? 'yes' : 'no', goal: 'yes', met: lossesAgree },
  ],
  note:
    'Shared 2-core machine: absolute numbers are noisy; rounds alternate PyTorch and tfjs and report medians. "Fastest steps" figures take each run\'s fastest step (the one least slowed by other processes), and the profile each call\'s fastest of 5 steps.',
};

function figuresOf(variant: string): number | string {
  const rs = tfjsRuns.get(variant)!;
  return rs.length ? Math.round(median(rs.map((r) => r.tokensPerSec))) : 'failed';
}

function makeParamCount(): number {
  const m = new GPT(REFERENCE, { seed: 0 });
  const n = m.paramCount();
  m.dispose();
  return n;
}

mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'train.json'), `${JSON.stringify(figures, null, 2)}\n`);
process.stderr.write(`${JSON.stringify(figures.summary)}\nprofile (ms/step): ${JSON.stringify(profile?.kernels.slice(0, 12) ?? [])}\n`);
if (profile) {
  process.stderr.write('Each product alone (GFLOPS on CPU time):\n');
  for (const r of profile.matMulTable) process.stderr.write(`  ${String(r.gflops).padStart(6)}  ${r.shapes}  ${r.product}\n`);
  process.stderr.write('BatchMatMul by operand shapes (ms/step, calls/step, GFLOPS):\n');
  for (const r of profile.matMuls) process.stderr.write(`  ${String(r.ms).padStart(7)} ${String(r.calls).padStart(3)} ${String(r.gflops).padStart(6)}  ${r.shapes}\n`);
}
