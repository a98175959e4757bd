import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '../../training/tf.js';
import { probeBackends, setupBackend } from '../../training/backend.js';
import { threadPoolAddress } from '../../training/kernels/threads.js';

/** Whether an optional native binding is installed here (it is not on the reference machine). */
function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}
const execFileAsync = promisify(execFile);

const nativeMissing = !installed('@tensorflow/tfjs-node') && !installed('@tensorflow/tfjs-node-gpu');

describe('backend probing and setup', () => {
  it('probes every backend without throwing and always offers wasm and cpu', async () => {
    const probes = await probeBackends();
    expect(probes.map((p) => p.name)).toEqual(['node-gpu', 'node', 'wasm', 'cpu']);
    const byName = new Map(probes.map((p) => [p.name, p]));
    expect(byName.get('wasm')!.usable).toBe(true);
    expect(byName.get('wasm')!.detail).toMatch(/simd|thread/);
    expect(byName.get('cpu')!.usable).toBe(true);
  });

  it.runIf(nativeMissing)('reports the native bindings as not installed when tfjs-node is absent', async () => {
    const probes = await probeBackends();
    for (const name of ['node-gpu', 'node'] as const) {
      const probe = probes.find((p) => p.name === name)!;
      expect(probe.usable).toBe(false);
      expect(probe.detail).toBe('package not installed');
    }
  });

  it.runIf(nativeMissing)('refuses an explicitly requested native backend with the reason', async () => {
    await expect(setupBackend('node')).rejects.toThrow(/Backend node is not usable here \(node: package not installed\)/);
    await expect(setupBackend('node-gpu')).rejects.toThrow(/not installed/);
  });

  it.runIf(nativeMissing)('auto falls back to wasm and makes it the active backend', async () => {
    expect(await setupBackend('auto')).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('switches between explicitly requested backends', async () => {
    expect(await setupBackend('cpu')).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(await setupBackend('wasm')).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('rejects an unknown backend name', async () => {
    await expect(setupBackend('gpu' as never)).rejects.toThrow(/Expected a backend among/);
  });
});

describe('multi-threaded wasm in Node', () => {
  it('finds the thread-pool pointer in the threaded build, and nothing in bytes that are not wasm code', () => {
    const wasmOut = path.join(path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')), '..', 'wasm-out');
    const address = threadPoolAddress(readFileSync(path.join(wasmOut, 'tfjs-backend-wasm-threaded-simd.wasm')));
    expect(address).toBeGreaterThan(0);
    expect(address! % 4).toBe(0);
    expect(threadPoolAddress(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]))).toBeNull();
  });

  it('loads the threaded build with 2 pool threads, computes like cpu (products split across threads too), and lets the process exit', () => {
    // Its own process: the wasm build is fixed once a process has initialised wasm.
    const script = `
      import * as tf from './training/tf.ts';
      import { setupBackend } from './training/backend.ts';
      import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
      import { withThreadPool } from './training/kernels/threads.ts';
      import { gemmThreads } from './training/kernels/wasm.ts';
      // Small products (one thread), a 2²²-multiply-add product (split by rows) and batched
      // attention-shaped products (split by slices), with their gradients.
      const f = () => tf.tidy(() => {
        const a = tf.randomNormal([3, 40, 24], 0, 1, 'float32', 1);
        const b = tf.randomNormal([3, 40, 16], 0, 1, 'float32', 2);
        const g = tf.grads((x, y) => tf.sigmoid(tf.matMul(x, y, true, false)))([a, b]);
        const w = tf.randomNormal([256, 128], 0, 1, 'float32', 3);
        const v = tf.randomNormal([128, 128], 0, 1, 'float32', 4);
        const q = tf.randomNormal([16, 4, 64, 32], 0, 1, 'float32', 5);
        const k = tf.randomNormal([16, 4, 64, 32], 0, 1, 'float32', 6);
        const h = tf.grads((x, y) => tf.sin(tf.matMul(x, y)))([w, v]);
        const s = tf.grads((x, y) => tf.sin(tf.matMul(x, y, false, true)))([q, k]);
        return [...g, tf.sum(tf.transpose(a, [0, 2, 1]), 0), tf.matMul(w, v), ...h, ...s].map((t) => Array.from(t.dataSync()));
      });
      const ref = f();
      const chosen = await setupBackend('wasm', { threads: 2 });
      const deadline = performance.now() + 40_000; // workers start in well under a second when the machine is idle
      while (gemmThreads(tf.backend()) < 2 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const got = f();
      const worst = got.flatMap((xs, i) => xs.map((v, j) => Math.abs(v - ref[i][j]) / (1 + Math.abs(ref[i][j])))).reduce((p, q) => Math.max(p, q), 0);
      const module = tf.backend().wasm.tfjs;
      const poolThreads = { outside: module.getThreadsCount(), inside: withThreadPool(tf.backend(), () => module.getThreadsCount()) };
      console.log(JSON.stringify({ chosen, threads: getThreadsCount(), poolThreads, gemmThreads: gemmThreads(tf.backend()), worst }));
    `;
    const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: path.resolve(import.meta.dirname, '..', '..'),
      encoding: 'utf8',
      // ~5 s here; the margin is for two loaded cores.
      timeout: 150_000,
    });
    expect(res.status, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout.trim().split('\n').at(-1)!);
    expect(out).toMatchObject({ chosen: 'wasm', threads: 2, gemmThreads: 2 });
    // The pool is off (pthreadpool reports -1 threads for none) except inside withThreadPool.
    expect(out.poolThreads.inside).toBe(2);
    expect(out.poolThreads.outside).not.toBe(2);
    expect(out.worst).toBeLessThan(1e-4);
  }, 160_000);

  it('trains the small model with packed documents to the same losses, bit for bit, on 1 and 2 threads', async () => {
    // Each thread count in its own process (the wasm build is fixed per process). At batch 2 the
    // attention products (2·4 heads of [256, 32]·[32, 256]) are split across the threads by
    // slices, the [B·T, ·] products by rows.
    const script = (threads: number): string => `
      import * as tf from './training/tf.ts';
      import { setupBackend } from './training/backend.ts';
      import { gemmThreads } from './training/kernels/wasm.ts';
      import { GPT } from './training/model.ts';
      import { cwmObjective } from './training/objective.ts';
      import { AdamW } from './training/optim.ts';
      await setupBackend('wasm', { threads: ${threads} });
      const deadline = performance.now() + 40_000;
      while (gemmThreads(tf.backend()) < ${threads} && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const [B, T] = [2, 256];
      const model = new GPT({ vocabSize: 300, blockSize: T, nLayer: 2, nHead: 4, nEmbd: 128, dropout: 0, positionEncoding: 'rope' }, { seed: 5 });
      const weights = model.namedWeights();
      const optimizer = new AdamW(weights, { beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1, gradClip: 1 });
      const ints = (f) => tf.tensor2d(Array.from({ length: B * T }, (_, i) => f(i)), [B, T], 'int32');
      const idx = ints((i) => (i * 2654435761) % 293);
      const labels = ints((i) => ((i + 1) * 2654435761) % 293);
      const documents = ints((i) => Math.floor((i % T) / 100));
      const positions = ints((i) => (i % T) % 100);
      const isState = tf.cast(tf.greater(labels, 150), 'float32');
      const isOutput = tf.zerosLike(isState);
      const losses = [];
      for (let step = 0; step < 2; step++) {
        const loss = tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            const logits = model.forward(idx, { training: true, documents, positions });
            return cwmObjective({ logits, labels, isState, isOutput, stateWeight: 1, outputWeight: null }).loss;
          }, [...weights.values()]);
          const byName = {};
          for (const [name, w] of weights) byName[name] = grads[w.name];
          optimizer.apply(byName, 1e-3);
          return value;
        });
        losses.push(loss.dataSync()[0]);
        loss.dispose();
      }
      console.log(JSON.stringify({ gemmThreads: gemmThreads(tf.backend()), losses }));
    `;
    // Asynchronous, so that the test worker keeps answering vitest during the long runs.
    const runs: { gemmThreads: number; losses: number[] }[] = [];
    for (const threads of [1, 2]) {
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(threads)], {
        cwd: path.resolve(import.meta.dirname, '..', '..'),
        encoding: 'utf8',
        timeout: 150_000,
      });
      runs.push(JSON.parse(stdout.trim().split('\n').at(-1)!));
    }
    expect(runs.map((r) => r.gemmThreads)).toEqual([1, 2]);
    expect(runs[0]!.losses[1]).toBeLessThan(runs[0]!.losses[0]!);
    expect(runs[1]!.losses).toEqual(runs[0]!.losses);
  }, 320_000);
});
