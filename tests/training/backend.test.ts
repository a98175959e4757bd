import { spawnSync } from 'node:child_process';
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
});
