/**
 * The wasm kernel overrides (training/kernels/wasm.ts) and the customGrad matmul fallback
 * (training/kernels/matmul.ts) must agree with the pure-JS `cpu` backend, values and gradients.
 * Tolerance: max |wasm − cpu| ≤ 1e-4 · (1 + max |cpu|) — float32 sums in a different order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../training/tf.js';
import { setupBackend } from '../../training/backend.js';
import { gemmThreads, hasExpectedInternals, installWasmKernels, kernelOverridesEnabled, setKernelOverrides } from '../../training/kernels/wasm.js';
import { matMul, useTransposingMatMul } from '../../training/kernels/matmul.js';
import { crossEntropy } from '../../training/objective.js';

const TOLERANCE = 1e-4;

type Inputs = { shape: number[]; seed: number; dtype?: 'float32' | 'int32'; max?: number }[];
type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

function makeInputs(inputs: Inputs): tf.Tensor[] {
  return inputs.map(({ shape, seed, dtype, max }) =>
    dtype === 'int32'
      ? tf.randomUniform(shape, 0, max!, 'int32', seed)
      : tf.randomNormal(shape, 0, 1, 'float32', seed),
  );
}

/** Value and gradients (w.r.t. every float input, for a fixed random upstream dy) on the active backend. */
function evaluate(fn: Fn, inputs: Inputs, withGrads: boolean): { value: number[]; grads: number[][] } {
  return tf.tidy(() => {
    const xs = makeInputs(inputs);
    const value = fn(...xs);
    if (!withGrads) return { value: Array.from(value.dataSync()), grads: [] };
    const floatIdx = inputs.map((inp, i) => (inp.dtype === 'int32' ? -1 : i)).filter((i) => i >= 0);
    const dy = tf.randomNormal(value.shape, 0, 1, 'float32', 99);
    const grads = tf.grads((...fs: tf.Tensor[]) => {
      const all = [...xs];
      floatIdx.forEach((i, j) => (all[i] = fs[j]!));
      return fn(...all);
    })(floatIdx.map((i) => xs[i]!), dy);
    return { value: Array.from(value.dataSync()), grads: grads.map((g) => Array.from(g.dataSync())) };
  });
}

function expectClose(actual: number[], expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  const scale = 1 + Math.max(0, ...expected.map(Math.abs));
  const worst = Math.max(0, ...actual.map((a, i) => Math.abs(a - expected[i]!)));
  expect(worst).toBeLessThanOrEqual(TOLERANCE * scale);
}

/**
 * Runs fn on cpu and on wasm (as currently configured) and compares values and gradients
 * (values only with `withGrads: false`: tfjs has no gradient for broadcast batch matmuls).
 */
async function expectWasmMatchesCpu(fn: Fn, inputs: Inputs, withGrads = true): Promise<void> {
  await tf.setBackend('cpu');
  const ref = evaluate(fn, inputs, withGrads);
  await tf.setBackend('wasm');
  const got = evaluate(fn, inputs, withGrads);
  expectClose(got.value, ref.value);
  expect(got.grads.length).toBe(ref.grads.length);
  got.grads.forEach((g, i) => expectClose(g, ref.grads[i]!));
}

const MATMUL_CASES: {
  name: string;
  a: number[];
  b: number[];
  transposeA?: boolean;
  transposeB?: boolean;
  /** false where tfjs itself has no gradient (broadcast batch dimensions). */
  grads?: boolean;
}[] = [
  { name: 'rank-2 linear layer', a: [40, 16], b: [16, 24] },
  { name: 'rank-2, b transposed (input gradient)', a: [40, 24], b: [16, 24], transposeB: true },
  { name: 'rank-2, a transposed (weight gradient)', a: [40, 16], b: [40, 24], transposeA: true },
  { name: 'rank-2, both transposed', a: [16, 40], b: [24, 16], transposeA: true, transposeB: true },
  { name: 'batched rank-3 against a shared rank-2 weight', a: [3, 10, 16], b: [16, 8], grads: false },
  { name: 'attention scores q·kᵀ [B, nh, T, hs]', a: [2, 3, 12, 8], b: [2, 3, 12, 8], transposeB: true },
  { name: 'attention output att·v', a: [2, 3, 12, 12], b: [2, 3, 12, 8] },
  { name: 'attention gradient attᵀ·dy (big a)', a: [2, 3, 12, 12], b: [2, 3, 12, 8], transposeA: true },
  { name: 'attention gradient, small a transposed', a: [2, 3, 12, 5], b: [2, 3, 12, 30], transposeA: true },
  { name: 'batch of 1 on the left broadcast over the right', a: [1, 6, 8], b: [4, 8, 5], grads: false },
  { name: 'broadcast batch shapes left to the stock kernel', a: [2, 1, 6, 8], b: [1, 3, 8, 5], grads: false },
  // Products with a multiple of 4 columns run on the SIMD kernel (whole 4×8 blocks, and rows or
  // columns left over), the others on XNNPACK.
  { name: 'SIMD kernel: attention scores q·kᵀ', a: [2, 3, 16, 8], b: [2, 3, 16, 8], transposeB: true },
  { name: 'SIMD kernel: a decoding step, one query row per head', a: [2, 3, 1, 8], b: [2, 3, 12, 8], transposeB: true },
  { name: 'SIMD kernel: rows and columns left over, a transposed', a: [11, 7], b: [11, 20], transposeA: true },
  { name: 'XNNPACK: columns not a multiple of 4', a: [6, 8], b: [8, 7] },
  { name: 'SIMD kernel: attention gradient attᵀ·dy', a: [2, 3, 16, 16], b: [2, 3, 16, 8], transposeA: true },
  { name: 'SIMD kernel: weight gradient over more than one chunk of k', a: [300, 12], b: [300, 16], transposeA: true },
  { name: 'SIMD kernel: rank-3 against a shared weight, folded into rows', a: [3, 12, 16], b: [16, 8], grads: false },
  { name: 'SIMD kernel: batch of 1 on the left broadcast over the right', a: [1, 8, 8], b: [4, 8, 16], grads: false },
  // Attention products of one row and one head, T = 13 or 20: not whole 4×8 blocks.
  { name: 'attention scores, batch 1, one head, T = 13 (XNNPACK: 13 columns)', a: [1, 1, 13, 8], b: [1, 1, 13, 8], transposeB: true },
  { name: 'attention output, batch 1, one head, T = 13 (rows left over)', a: [1, 1, 13, 13], b: [1, 1, 13, 8] },
  { name: 'attention gradient attᵀ·dy, batch 1, one head, T = 13', a: [1, 1, 13, 13], b: [1, 1, 13, 8], transposeA: true },
  { name: 'attention scores, T = 20 (4 columns left over)', a: [1, 2, 20, 8], b: [1, 2, 20, 8], transposeB: true },
  // A transposed and 128 columns or more: A's strips packed, rows left over in place.
  { name: 'SIMD kernel: weight gradient with A packed, rows left over', a: [37, 21], b: [37, 132], transposeA: true },
  { name: 'SIMD kernel: batched, A packed, k over more than one chunk', a: [2, 300, 9], b: [2, 300, 128], transposeA: true },
];

describe('wasm kernel overrides against the cpu backend', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });
  afterAll(async () => {
    setKernelOverrides(true);
    useTransposingMatMul(false);
  });

  it('finds the tfjs 4.22.0 internals it relies on, and refuses a backend without them', () => {
    expect(hasExpectedInternals(tf.findBackend('wasm'))).toBe(true);
    expect(hasExpectedInternals({})).toBe(false);
    expect(hasExpectedInternals(null)).toBe(false);
    expect(kernelOverridesEnabled()).toBe(true);
    expect(gemmThreads(tf.findBackend('wasm'))).toBe(1); // the SIMD kernel, on this thread
  });

  it('reports no overrides for a backend whose internals differ, so the caller takes the fallback', () => {
    const report = installWasmKernels({ wasm: {} });
    expect(report.overrides).toBe(false);
    expect(report.detail).toMatch(/customGrad/);
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm')).toBeDefined();
  });

  for (const c of MATMUL_CASES) {
    it(`BatchMatMul: ${c.name}`, async () => {
      await expectWasmMatchesCpu(
        (a, b) => tf.matMul(a!, b!, c.transposeA ?? false, c.transposeB ?? false),
        [{ shape: c.a, seed: 1 }, { shape: c.b, seed: 2 }],
        c.grads ?? true,
      );
    });
  }

  it('BatchMatMul inside a fused matmul-plus-bias keeps the bias gradient (leading-axis Sum)', async () => {
    await expectWasmMatchesCpu((x, w, bias) => tf.add(tf.matMul(x!, w!), bias!), [
      { shape: [33, 16], seed: 3 },
      { shape: [16, 7], seed: 4 },
      { shape: [7], seed: 5 },
    ]);
  });

  it.each([
    { name: 'leading axis of a matrix', shape: [50, 9], axis: [0], keepDims: false },
    { name: 'all leading axes of a rank-3 tensor, kept dims', shape: [4, 6, 9], axis: [0, 1], keepDims: true },
    { name: 'leading axis, SIMD column sums (48 columns: three strips)', shape: [37, 48], axis: [0], keepDims: false },
    { name: 'leading axes of a rank-3 tensor, SIMD column sums, kept dims', shape: [3, 5, 16], axis: [0, 1], keepDims: true },
    { name: 'leading axis of a single row, SIMD column sums', shape: [1, 32], axis: [0], keepDims: false },
    { name: 'last axis, columns not a multiple of 4 (stock kernel)', shape: [6, 9], axis: [1], keepDims: false },
    { name: 'last axis, SIMD row sums', shape: [6, 12], axis: [1], keepDims: false },
    { name: 'last axis of a rank-4 tensor, SIMD row sums, kept dims (softmax gradient)', shape: [2, 3, 5, 16], axis: [-1], keepDims: true },
    { name: 'every axis (stock kernel)', shape: [6, 9], axis: [0, 1], keepDims: false },
    { name: 'middle axis (stock kernel)', shape: [4, 6, 9], axis: [1], keepDims: false },
  ])('Sum: $name', async ({ shape, axis, keepDims }) => {
    await expectWasmMatchesCpu((x) => tf.sum(x!, axis, keepDims), [{ shape, seed: 6 }]);
  });

  it.each([
    { name: 'rank-2 matrix', shape: [9, 13], perm: [1, 0] },
    { name: 'last two axes of a batch', shape: [3, 10, 7], perm: [0, 2, 1] },
    { name: 'a matrix wider than one 32-column strip, rows not a multiple of 8', shape: [19, 70], perm: [1, 0] },
    { name: 'last two axes of a rank-4 tensor', shape: [2, 3, 12, 8], perm: [0, 1, 3, 2] },
    { name: 'attention heads [B, T, nh, hs] → [B, nh, T, hs] (SIMD rows)', shape: [2, 5, 3, 4], perm: [0, 2, 1, 3] },
    { name: 'attention heads, rows not a multiple of 4 floats (JS rows)', shape: [2, 5, 3, 6], perm: [0, 2, 1, 3] },
    { name: 'two leading axes swapped above whole rows', shape: [3, 4, 8], perm: [1, 0, 2] },
    { name: 'a rotation that keeps the last axis (JS rows)', shape: [2, 3, 4, 8], perm: [1, 2, 0, 3] },
    { name: 'a rotation that moves the last axis (stock kernel)', shape: [2, 3, 4], perm: [2, 0, 1] },
  ])('Transpose: $name', async ({ shape, perm }) => {
    await expectWasmMatchesCpu((x) => tf.transpose(x!, perm), [{ shape, seed: 11 }]);
  });

  it.each([
    { name: 'Mean along the last axis, kept dims (LayerNorm)', fn: (x: tf.Tensor) => tf.mean(x, -1, true), shape: [9, 16] },
    { name: 'Mean along the last axis of a rank-3 tensor', fn: (x: tf.Tensor) => tf.mean(x, 2), shape: [2, 5, 8] },
    { name: 'Mean along the leading axis (stock kernel)', fn: (x: tf.Tensor) => tf.mean(x, 0), shape: [9, 16] },
    { name: 'LayerNorm-style centring and scaling by a per-row column', fn: (x: tf.Tensor) => tf.mul(tf.sub(x, tf.mean(x, -1, true)), tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), shape: [7, 12] },
  ])('$name', async ({ fn, shape }) => {
    await expectWasmMatchesCpu(fn, [{ shape, seed: 21 }]);
  });

  it.each([
    { name: 'Add', fn: tf.add },
    { name: 'Sub', fn: tf.sub },
    { name: 'Multiply', fn: tf.mul },
    { name: 'RealDiv', fn: tf.div },
  ])('$name of a matrix and a per-row column, either side, values and gradients; other shapes on the stock kernel', async ({ fn }) => {
    const positive = (t: tf.Tensor): tf.Tensor => tf.add(tf.abs(t), 0.5); // away from 0, for RealDiv
    for (const [x, col] of [
      [[6, 8], [6, 1]],
      [[2, 3, 12], [2, 3, 1]],
      [[6, 6], [6, 1]], // 6 columns: not a multiple of 4, stock kernel
      [[6, 8], [1, 8]], // a row, not a column: stock kernel
    ]) {
      await expectWasmMatchesCpu((a, b) => fn(a!, positive(b!)), [{ shape: x!, seed: 22 }, { shape: col!, seed: 23 }]);
      await expectWasmMatchesCpu((a, b) => fn(positive(b!), a!), [{ shape: x!, seed: 24 }, { shape: col!, seed: 25 }]);
    }
  });

  it('Transpose of int32 values copies them bit for bit (negative ints look like NaN floats)', async () => {
    await expectWasmMatchesCpu(
      (x) => tf.transpose(tf.sub(x!, tf.scalar(500_000, 'int32')), [0, 2, 1]),
      [{ shape: [2, 9, 10], seed: 12, dtype: 'int32', max: 1e6 }],
      false,
    );
  });

  it('Identity (tf.clone, and every tensor saved for backprop) shares data and keeps values', async () => {
    await expectWasmMatchesCpu((x) => tf.mul(tf.clone(x!), tf.clone(x!)), [{ shape: [7, 5], seed: 13 }]);
    await tf.setBackend('wasm');
    const x = tf.tensor1d([1, 2, 3]);
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]); // still alive after the original is gone
    y.dispose();
  });

  it.each([
    { name: 'column block of a matrix (q of the fused q/k/v)', shape: [20, 12], begin: [0, 4], size: [-1, 4] },
    { name: 'rows of a matrix (contiguous)', shape: [20, 12], begin: [3, 0], size: [5, -1] },
    { name: 'window of a rank-3 tensor', shape: [4, 9, 7], begin: [1, 2, 3], size: [2, 5, 3] },
    { name: 'last position of a rank-3 tensor', shape: [3, 6, 10], begin: [0, 5, 0], size: [3, 1, 10] },
    { name: 'inner block of a rank-4 tensor', shape: [2, 3, 5, 6], begin: [1, 0, 2, 1], size: [1, 3, 2, 4] },
  ])('Slice: $name', async ({ shape, begin, size }) => {
    await expectWasmMatchesCpu((x) => tf.slice(x!, begin, size), [{ shape, seed: 14 }]);
  });

  it('Slice of int32 and bool values', async () => {
    await expectWasmMatchesCpu(
      (x) => tf.add(tf.slice(tf.sub(x!, tf.scalar(50, 'int32')), [1, 2], [3, 4]), tf.cast(tf.slice(tf.greater(x!, 40), [1, 2], [3, 4]), 'int32')),
      [{ shape: [6, 8], seed: 15, dtype: 'int32', max: 100 }],
      false,
    );
  });

  it('Cast to the same dtype shares data; a real conversion still converts', async () => {
    await expectWasmMatchesCpu((x) => tf.mul(tf.cast(x!, 'float32'), tf.cast(tf.cast(x!, 'int32'), 'float32')), [{ shape: [5, 6], seed: 16 }]);
  });

  it.each([
    { name: 'same shapes', a: [6, 7], b: [6, 7] },
    { name: 'a row against its column (the gradient of max)', a: [6, 7], b: [6, 1] },
    { name: 'a row vector broadcast over rows', a: [6, 7], b: [7] },
    { name: 'a column against a row: the document mask [B, 1, T, 1] vs [B, 1, 1, T]', a: [3, 1, 9, 1], b: [3, 1, 1, 9] },
    { name: 'a scalar against a rank-3 tensor', a: [], b: [2, 3, 5] },
  ])('Equal and NotEqual: $name', async ({ a, b }) => {
    // Rounded values so that equal elements actually occur; compared as 0/1 floats.
    for (const compare of [tf.equal, tf.notEqual]) {
      await expectWasmMatchesCpu(
        (x, y) => tf.cast(compare(tf.round(x!), tf.round(y!)), 'float32'),
        [{ shape: a, seed: 17 }, { shape: b, seed: 18 }],
        false,
      );
      await expectWasmMatchesCpu(
        (x, y) => tf.cast(compare(x!, y!), 'float32'),
        [{ shape: a, seed: 17, dtype: 'int32', max: 3 }, { shape: b, seed: 18, dtype: 'int32', max: 3 }],
        false,
      );
    }
  });

  it('Equal and NotEqual treat NaN as equal to nothing, and leave mixed dtypes to the stock kernel', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor1d([NaN, 1, 2]);
    const y = tf.tensor1d([NaN, 1, 3]);
    expect(Array.from(tf.equal(x, y).dataSync())).toEqual([0, 1, 0]);
    expect(Array.from(tf.notEqual(x, y).dataSync())).toEqual([1, 0, 1]);
    expect(Array.from(tf.notEqual(tf.tensor1d([1, 2], 'int32'), tf.tensor1d([1, 3])).dataSync())).toEqual([0, 1]);
    tf.dispose([x, y]);
  });

  it('Equal inside the gradient of a row max (logSumExp)', async () => {
    await expectWasmMatchesCpu((x) => tf.logSumExp(x!, -1), [{ shape: [9, 13], seed: 19 }]);
  });

  it('cross-entropy from softmax (the objective), values and logit gradients', async () => {
    await expectWasmMatchesCpu(
      (x, ids) => crossEntropy(x as tf.Tensor2D, tf.oneHot(ids as tf.Tensor1D, 13) as tf.Tensor2D),
      [{ shape: [9, 13], seed: 20 }, { shape: [9], seed: 21, dtype: 'int32', max: 13 }],
    );
  });

  it('GatherV2 of embedding rows, and its gradient through UnsortedSegmentSum', async () => {
    await expectWasmMatchesCpu((table, ids) => tf.gather(table!, ids!), [
      { shape: [11, 6], seed: 7 },
      { shape: [3, 5], seed: 8, dtype: 'int32', max: 11 },
    ]);
  });

  it('UnsortedSegmentSum on the heap: float and int32 rows, empty segments zero', async () => {
    const inputs: Inputs = [{ shape: [7, 5], seed: 22 }, { shape: [7], seed: 23, dtype: 'int32', max: 4 }];
    await expectWasmMatchesCpu((x, ids) => tf.unsortedSegmentSum(x!, ids as tf.Tensor1D, 9), inputs);
    await expectWasmMatchesCpu(
      (x, ids) => tf.unsortedSegmentSum(tf.cast(tf.mul(x!, 100), 'int32'), ids as tf.Tensor1D, 9),
      inputs,
      false,
    );
  });

  it('UnsortedSegmentSum through the public backend interface (internals unknown), out-of-range ids dropped', () => {
    const data = new Map<object, Float32Array | Int32Array>();
    const tensor = (values: Float32Array | Int32Array, shape: number[]): tf.TensorInfo => {
      const dataId = {};
      data.set(dataId, values);
      return { dataId, shape, dtype: values instanceof Int32Array ? 'int32' : 'float32' };
    };
    const backend = {
      readSync: (dataId: object) => data.get(dataId)!,
      write: (values: Float32Array | Int32Array) => tensor(values, []).dataId,
    };
    const out = tf.getKernel('UnsortedSegmentSum', 'wasm')!.kernelFunc({
      inputs: { x: tensor(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]), [4, 2]), segmentIds: tensor(new Int32Array([2, 0, 2, 5]), [4]) },
      backend: backend as unknown as tf.KernelBackend,
      attrs: { numSegments: 3 },
    }) as tf.TensorInfo;
    expect(out.shape).toEqual([3, 2]);
    expect(Array.from(data.get(out.dataId)!)).toEqual([3, 4, 0, 0, 6, 8]);
  });

  it('GatherV2 along another axis falls back to the stock kernel', async () => {
    await expectWasmMatchesCpu((table, ids) => tf.gather(table!, ids!, 1), [
      { shape: [4, 11], seed: 9 },
      { shape: [5], seed: 10, dtype: 'int32', max: 11 },
    ]);
  });

  it('GatherV2 rejects an out-of-range index', async () => {
    await tf.setBackend('wasm');
    const table = tf.zeros([3, 2]);
    const ids = tf.tensor1d([0, 3], 'int32');
    expect(() => tf.gather(table, ids)).toThrow(/not in \[0, 2\]/);
    tf.dispose([table, ids]);
  });

  it('leaks no tensors and no heap views: the count is stable across repeated products', async () => {
    await tf.setBackend('wasm');
    const a = tf.randomNormal([2, 3, 12, 12]);
    const b = tf.randomNormal([2, 3, 12, 8]);
    const run = (): void => tf.tidy(() => void tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, true, false))([a, b]));
    run();
    const before = tf.memory().numTensors;
    const bytesBefore = tf.memory().numBytes;
    for (let i = 0; i < 5; i++) run();
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytesBefore);
    tf.dispose([a, b]);
  });

  describe('the public-API fallback (customGrad matmul with explicit transposes, stock kernels)', () => {
    beforeAll(() => {
      setKernelOverrides(false);
      useTransposingMatMul(true);
    });
    afterAll(() => {
      setKernelOverrides(true);
      useTransposingMatMul(false);
    });

    for (const c of MATMUL_CASES.slice(0, 9)) {
      it(`matMul: ${c.name}`, async () => {
        await expectWasmMatchesCpu(
          // The reference is plain tf.matMul on cpu; wasm runs the fallback.
          (a, b) =>
            tf.getBackend() === 'cpu'
              ? tf.matMul(a!, b!, c.transposeA ?? false, c.transposeB ?? false)
              : matMul(a!, b!, { transposeA: c.transposeA, transposeB: c.transposeB }),
          [{ shape: c.a, seed: 1 }, { shape: c.b, seed: 2 }],
          c.grads ?? true,
        );
      });
    }

    it('matMul: the shared-weight gradient of a rank-3 input, against the same product folded to rank 2', async () => {
      await expectWasmMatchesCpu(
        (a, b) =>
          tf.getBackend() === 'cpu'
            ? tf.reshape(tf.matMul(tf.reshape(a!, [30, 16]) as tf.Tensor2D, b as tf.Tensor2D), [3, 10, 8])
            : matMul(a!, b!),
        [{ shape: [3, 10, 16], seed: 1 }, { shape: [16, 8], seed: 2 }],
      );
    });
  });
});
