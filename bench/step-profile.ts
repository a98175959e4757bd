/**
 * Where a training step of the demo's model goes: the `small` preset (rotary positions) at a
 * vocabulary of 1024, rows packed with several documents as `execwm train` packs them, on the
 * wasm backend with our kernels. Prints the CPU and wall time of unprofiled steps, then each kernel's
 * time (the fastest of `--steps` profiled steps, call by call: on a shared machine a call is
 * often paused while another process runs) by kernel and by kernel and shapes. Writes nothing.
 *
 *   npx tsx bench/step-profile.ts [--batch 8] [--threads 2] [--steps 4] [--top 30]
 */
import { parseArgs } from 'node:util';
import * as tf from '../training/tf.js';
import { setupBackend } from '../training/backend.js';
import { MODEL_PRESETS } from '../training/config.js';
import { gemmFma, gemmThreads } from '../training/kernels/wasm.js';
import { GPT } from '../training/model.js';
import { cwmObjective } from '../training/objective.js';
import { AdamW } from '../training/optim.js';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    steps: { type: 'string', default: '4' },
    top: { type: 'string', default: '30' },
  },
});
const [batch, threads, steps, top] = [args.batch, args.threads, args.steps, args.top].map(Number) as [number, number, number, number];
for (const [flag, value] of Object.entries({ batch, threads, steps, top })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`Expected --${flag} to be a positive integer, got ${String(args[flag as keyof typeof args])}`);
}

await setupBackend('wasm', { threads });
// Workers start in the background; wait for them so that every profiled step splits alike.
const deadline = performance.now() + 30_000;
while (gemmThreads(tf.backend()) < threads && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));

const config = { ...MODEL_PRESETS.small, vocabSize: 1024, positionEncoding: 'rope' as const };
const t = config.blockSize;
const model = new GPT(config, { seed: 0 });
const weights = model.namedWeights();
const optimizer = new AdamW(weights, { beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1, gradClip: 1 });
const ints = (f: (i: number) => number): tf.Tensor2D => tf.tensor2d(Array.from({ length: batch * t }, (_, i) => f(i)), [batch, t], 'int32');
const idx = ints((i) => (i * 2654435761) % (config.vocabSize - 3));
const labels = ints((i) => ((i + 1) * 2654435761) % (config.vocabSize - 3));
// Documents of 100 tokens packed into each row, positions counted within each document.
const documents = ints((i) => Math.floor((i % t) / 100));
const positions = ints((i) => (i % t) % 100);
const isState = tf.cast(tf.greater(labels, config.vocabSize / 2), 'float32') as tf.Tensor2D;
const isOutput = tf.zerosLike(isState) as tf.Tensor2D;

function step(): void {
  const loss = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forward(idx, { training: true, documents, positions });
      return cwmObjective({ logits, labels, isState, isOutput, stateWeight: 1, outputWeight: null }).loss;
    }, [...weights.values()]);
    const byName: Record<string, tf.Tensor> = {};
    for (const [name, w] of weights) byName[name] = grads[w.name]!;
    optimizer.apply(byName, 1e-3);
    return value;
  });
  loss.dataSync(); // forces the step to finish
  loss.dispose();
}

step();
step();
const cpuMs: number[] = [];
const wallMs: number[] = [];
for (let i = 0; i < steps; i++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  step();
  wallMs.push(performance.now() - t0);
  const used = process.cpuUsage(c0);
  cpuMs.push((used.user + used.system) / 1000);
}

let calls: { kernel: string; shapes: string; ms: number }[] = [];
for (let i = 0; i < steps; i++) {
  const info = await tf.profile(() => step());
  const these = info.kernels.map((k) => ({
    kernel: k.name,
    shapes: `${k.inputShapes.map((s) => JSON.stringify(s)).join('·')} → ${JSON.stringify(k.outputShapes[0])}`,
    ms: Number(k.kernelTimeMs),
  }));
  if (i > 0 && (these.length !== calls.length || these.some((k, j) => k.kernel !== calls[j]!.kernel))) throw new Error('profiled steps ran different kernels');
  calls = i === 0 ? these : calls.map((k, j) => ({ ...k, ms: Math.min(k.ms, these[j]!.ms) }));
}

function table(key: (c: (typeof calls)[number]) => string): string[] {
  const rows = new Map<string, { ms: number; calls: number }>();
  for (const c of calls) {
    const row = rows.get(key(c)) ?? { ms: 0, calls: 0 };
    row.ms += c.ms;
    row.calls += 1;
    rows.set(key(c), row);
  }
  return [...rows]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, top)
    .map(([name, r]) => `${r.ms.toFixed(2).padStart(8)} ${String(r.calls).padStart(4)}  ${name}`);
}

const total = calls.reduce((s, c) => s + c.ms, 0);
const out = [
  `small preset, vocabulary ${config.vocabSize}, batch ${batch}, ${gemmThreads(tf.backend())} matrix-product thread(s), ${gemmFma(tf.backend()) ? 'fused multiply-add' : 'multiply and add'}`,
  `CPU ms per unprofiled step (all threads): ${cpuMs.map((x) => x.toFixed(0)).join(' ')}`,
  `wall ms per unprofiled step: ${wallMs.map((x) => x.toFixed(0)).join(' ')}`,
  `kernel ms per step (fastest of ${steps} per call; customGrad scopes count their kernels again): ${total.toFixed(1)}`,
  'ms/step  calls  kernel',
  ...table((c) => c.kernel),
  '',
  'ms/step  calls  kernel and shapes',
  ...table((c) => `${c.kernel} ${c.shapes}`),
];
process.stdout.write(`${out.join('\n')}\n`);
process.exit(0); // the matrix-product workers are unref'd, tfjs's pool threads too; exit without waiting
