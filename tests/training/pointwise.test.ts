/**
 * The row kernels (training/kernels/pointwise.ts) that the matrix product's pool splits across
 * threads: the fused Softmax gradient and the row Max. Values and gradients against the cpu
 * backend (tolerance as in kernels.test.ts: float32 sums in another order), and the same bits
 * on 1 and 2 threads, split or not.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '../../training/tf.js';
import { splitUnits } from '../../training/kernels/pointwise.js';
import { GemmPool } from '../../training/kernels/gemm-pool.js';
import { Wasm } from '../../training/kernels/wasm-emit.js';

const execFileAsync = promisify(execFile);
const TOLERANCE = 1e-4;

function expectClose(actual: number[], expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  const scale = 1 + Math.max(0, ...expected.map(Math.abs));
  const worst = Math.max(0, ...actual.map((a, i) => Math.abs(a - expected[i]!)));
  expect(worst).toBeLessThanOrEqual(TOLERANCE * scale);
}

/** Where two lists of arrays first differ ("array i, value j"), or null: a small failure message for large arrays. */
function firstDifference(a: ArrayLike<number>[], b: ArrayLike<number>[]): string | null {
  if (a.length !== b.length) return `${a.length} arrays against ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.length !== b[i]!.length) return `array ${i}: ${a[i]!.length} values against ${b[i]!.length}`;
    for (let j = 0; j < a[i]!.length; j++) if (!Object.is(a[i]![j], b[i]![j])) return `array ${i}, value ${j}: ${a[i]![j]} against ${b[i]![j]}`;
  }
  return null;
}

describe('splitting rows', () => {
  it('splits units into near-equal blocks that cover them once', () => {
    expect(splitUnits(10, 3)).toEqual([[0, 4], [4, 3], [7, 3]]);
    expect(splitUnits(5, 1)).toEqual([[0, 5]]);
  });
});

describe('the row kernels on two threads of a pool', () => {
  const memory = new Wasm.Memory({ initial: 64, maximum: 64, shared: true });
  const pool = new GemmPool(memory, 2);
  afterAll(() => pool.dispose());
  const heap = new Float32Array(memory.buffer);
  const random = (start: number, size: number, seed: number): void => {
    let s = seed;
    for (let i = 0; i < size; i++) {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      heap[start + i] = (s / 2 ** 31) * 8 - 4;
    }
  };

  it('gives the same bits split in two as on one thread, and the reference values', async () => {
    const deadline = performance.now() + 45_000;
    while (pool.threads < 2 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(pool.threads).toBe(2);
    const [rows, n] = [37, 20];
    const size = rows * n;
    const [x, y, out] = [0, size, 2 * size]; // float indices
    random(x, size, 1);
    random(y, size, 2);
    heap[x + 3] = -1e9; // a masked score
    heap[x + 5 * n + 7] = 1e9;
    const run = (name: string, parts: number[][], outSize: number): Float32Array => {
      heap.fill(Number.NaN, out, out + outSize);
      pool.runKernel(name, parts);
      return heap.slice(out, out + outSize);
    };
    const rowsSplit = (args: (first: number, count: number, outRow: number) => number[], outRow: number): number[][] =>
      splitUnits(rows, 2).map(([first, count]) => args(first, count, outRow));
    const cases: { name: string; whole: number[]; split: number[][]; outSize: number; reference: (i: number) => number }[] = [];
    const row = (i: number): number[] => Array.from(heap.subarray(x + Math.floor(i / n) * n, x + Math.floor(i / n) * n + n));
    cases.push({
      name: 'rowMax',
      whole: [x * 4, out * 4, rows, n],
      split: rowsSplit((first, count) => [(x + first * n) * 4, (out + first) * 4, count, n], 1),
      outSize: rows,
      reference: (r) => Math.max(...row(r * n)),
    });
    cases.push({
      name: 'softmaxGrad',
      whole: [y * 4, x * 4, out * 4, rows, n], // dy = y, "softmax output" = x
      split: rowsSplit((first, count) => [(y + first * n) * 4, (x + first * n) * 4, (out + first * n) * 4, count, n], n),
      outSize: size,
      reference: (i) => {
        const r0 = Math.floor(i / n) * n;
        let s = 0;
        for (let j = 0; j < n; j++) s += heap[y + r0 + j]! * heap[x + r0 + j]!;
        return heap[y + i]! * heap[x + i]! - s * heap[x + i]!;
      },
    });
    for (const c of cases) {
      const whole = run(c.name, [c.whole], c.outSize);
      const split = run(c.name, c.split, c.outSize);
      expect(firstDifference([split], [whole]), c.name).toBeNull();
      expectClose(Array.from(whole), Array.from({ length: c.outSize }, (_, i) => c.reference(i)));
    }
  });

  it("reports a worker's failure as an error naming the kernel", async () => {
    expect(pool.threads).toBe(2);
    expect(() => pool.runKernel('rowMax', [[0, 64, 1, 4], [64 * 65536, 64, 1, 4]])).toThrow(/rowMax failed on a worker thread/);
    expect(() => pool.runKernel('nonesuch', [[0]])).toThrow(/No pointwise kernel/);
  });
});

/**
 * The ops the kernels serve, values and gradients, as JSON: run on cpu here and on wasm with
 * 1 and 2 threads in child processes (the wasm build is fixed per process). The larger tensors
 * hold 2¹⁶ values or more, so that on 2 threads their rows are split.
 */
const SUITE = `
  const input = (shape, seed) => tf.randomNormal(shape, 0, 1, 'float32', seed);
  const masked = (x) => tf.add(x, tf.mul(tf.cast(tf.greater(input(x.shape, 9), 1), 'float32'), -1e9));
  const cases = {
    'softmax, rows of 176': [(x) => tf.softmax(x), [[2, 3, 64, 176]]],
    'softmax with masked scores': [(x) => tf.softmax(masked(x)), [[3, 5, 12]]],
    'softmax, rows of 10 (stock gradient)': [(x) => tf.softmax(x), [[7, 10]]],
    'attention weights: softmax then a product': [(x, v) => tf.matMul(tf.softmax(masked(x)), v), [[2, 3, 16, 16], [2, 3, 16, 8]]],
    'max along the last axis': [(x) => tf.max(x, -1), [[9, 24]]],
    'max along the last axis, kept dims, rows split': [(x) => tf.max(x, -1, true), [[2, 5, 64, 128]]],
    'max along the first axis (stock kernel)': [(x) => tf.max(x, 0), [[9, 24]]],
    'max along the last axis of 6 (stock kernel)': [(x) => tf.max(x, -1), [[4, 6]]],
    'cross-entropy from softmax': [(x) => tf.sum(tf.mul(tf.log(tf.softmax(x)), input(x.shape, 7)), -1), [[6, 32]]],
  };
  const results = {};
  for (const [name, [fn, shapes]] of Object.entries(cases)) {
    results[name] = tf.tidy(() => {
      const xs = shapes.map((s, i) => input(s, 11 + i));
      const value = fn(...xs);
      const dy = tf.randomNormal(value.shape, 0, 1, 'float32', 99);
      const grads = tf.grads((...ys) => fn(...ys))(xs, dy);
      return [value, ...grads].map((t) => Array.from(t.dataSync()));
    });
  }
`;

describe('row kernels in training ops, against the cpu backend, on 1 and 2 threads', () => {
  it('match the cpu backend, and give the same bits on 1 and 2 threads', async () => {
    await tf.setBackend('cpu');
    const cpu = new Function('tf', `${SUITE}; return results;`)(tf) as Record<string, number[][]>;
    const script = (threads: number): string => `
      import * as tf from './training/tf.ts';
      import { setupBackend } from './training/backend.ts';
      import { gemmThreads } from './training/kernels/wasm.ts';
      await setupBackend('wasm', { threads: ${threads} });
      const deadline = performance.now() + 40_000;
      while (gemmThreads(tf.backend()) < ${threads} && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      ${SUITE}
      console.log(JSON.stringify({ gemmThreads: gemmThreads(tf.backend()), results }));
    `;
    const runs: { gemmThreads: number; results: Record<string, number[][]> }[] = [];
    for (const threads of [1, 2]) {
      const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(threads)], {
        cwd: path.resolve(import.meta.dirname, '..', '..'),
        encoding: 'utf8',
        timeout: 150_000,
        maxBuffer: 256 * 1024 * 1024,
      });
      runs.push(JSON.parse(stdout.trim().split('\n').at(-1)!));
    }
    expect(runs.map((r) => r.gemmThreads)).toEqual([1, 2]);
    for (const [name, ref] of Object.entries(cpu)) {
      const [one, two] = [runs[0]!.results[name]!, runs[1]!.results[name]!];
      expect(firstDifference(two, one), name).toBeNull();
      expect(one.length, name).toBe(ref.length);
      one.forEach((values, i) => expectClose(values, ref[i]!));
    }
  }, 320_000);
});
