/**
 * Kernels the stock tfjs wasm backend (4.22.0) lacks or runs slowly, registered for 'wasm'.
 *
 * They reach into backend internals (the heap, tensor ids, the exported C functions), so
 * `installWasmKernels` first checks those internals look as expected and reports whether the
 * overrides went in; when they did not, the caller switches the model to the public-API
 * customGrad matmul (./matmul.ts) instead.
 */
import * as tf from '../tf.js';
import { leaveThreadPoolOn, wasmThreads, withThreadPool } from './threads.js';
import { gemmFits } from './gemm.js';
import { isShared, isWasmMemory, type WasmMemory } from './wasm-emit.js';
import { GemmPool } from './gemm-pool.js';
import { colsumFits, instantiateColsum, type ColsumFunction } from './colsum.js';
import { instantiateElementwise, type ColumnOp, type ElementwiseKernels } from './elementwise.js';
import { splitUnits } from './pointwise.js';

/** The parts of tfjs-backend-wasm's BackendWasm (4.22.0) these kernels use. */
export interface WasmBackendInternals {
  wasm: {
    cwrap: (name: string, ret: null, args: string[]) => (...args: unknown[]) => void;
    HEAPF32: Float32Array;
    /** The threaded build's (shared) memory. */
    wasmMemory?: WasmMemory;
    /** The single-threaded build's exports, memory among them. */
    asm?: { memory?: WasmMemory };
    tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
    };
    /** The module's allocator (tfjs allocates tensors with it). */
    _malloc?: (bytes: number) => number;
    _free?: (address: number) => void;
  };
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object): boolean;
  incRef(dataId: object): void;
}

/** True when `backend` exposes everything the overrides below rely on. */
export function hasExpectedInternals(backend: unknown): backend is WasmBackendInternals {
  const b = backend as Partial<WasmBackendInternals> | null;
  return (
    b != null &&
    typeof b.makeOutput === 'function' &&
    typeof b.disposeData === 'function' &&
    typeof b.incRef === 'function' &&
    typeof b.dataIdNextNumber === 'number' &&
    typeof b.dataIdMap?.get === 'function' &&
    typeof b.wasm?.cwrap === 'function' &&
    b.wasm.HEAPF32 instanceof Float32Array &&
    typeof b.wasm.tfjs?.registerTensor === 'function' &&
    typeof b.wasm.tfjs?.disposeData === 'function' &&
    tf.getKernel('Transpose', 'wasm') != null
  );
}

/**
 * UnsortedSegmentSum (needed by the gradient of tf.gather, i.e. the embedding) — missing from
 * the wasm backend. With the internals the overrides rely on, it sums straight on the heap;
 * otherwise through the public KernelBackend interface (readSync / write: two copies of x, which
 * cost ~2 ms a training step), so it works whatever the internals.
 */
function unsortedSegmentSum(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { backend } = args;
  const x = args.inputs.x!;
  const segmentIds = args.inputs.segmentIds!;
  const numSegments = args.attrs!.numSegments as number;
  const innerShape = x.shape.slice(segmentIds.shape.length);
  const inner = tf.util.sizeFromShape(innerShape);
  const shape = [numSegments, ...innerShape];
  if (hasExpectedInternals(backend)) {
    const out = backend.makeOutput(shape, x.dtype);
    const buffer = heapBuffer(backend) as ArrayBuffer; // after makeOutput, which may grow the heap
    const view = (t: tf.TensorInfo, ints: boolean): Float32Array | Int32Array => {
      const [offset, size] = [heapInfo(backend, t).offset, tf.util.sizeFromShape(t.shape)];
      return ints ? new Int32Array(buffer, offset, size) : new Float32Array(buffer, offset, size);
    };
    const ints = x.dtype === 'int32';
    const outVals = view(out, ints).fill(0);
    addSegments({ x: view(x, ints), ids: view(segmentIds, true) as Int32Array, out: outVals, inner, numSegments });
    return out;
  }
  const outVals = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  addSegments({
    x: backend.readSync(x.dataId) as Float32Array | Int32Array,
    ids: backend.readSync(segmentIds.dataId) as Int32Array,
    out: outVals,
    inner,
    numSegments,
  });
  return { dataId: backend.write(outVals, shape, x.dtype), shape, dtype: x.dtype };
}

/** out[ids[i]] += x[i] over rows of `inner` values; out-of-range ids are dropped (tf semantics). */
function addSegments(o: { x: Float32Array | Int32Array; ids: Int32Array; out: Float32Array | Int32Array; inner: number; numSegments: number }): void {
  const { x, ids, out, inner } = o;
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= o.numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) out[dst + j]! += x[src + j]!;
  }
}

/** The Memory behind the heap: the threaded build's (shared) or the single-threaded build's export. */
function heapMemory(backend: WasmBackendInternals): WasmMemory | undefined {
  return backend.wasm.wasmMemory ?? backend.wasm.asm?.memory;
}

/**
 * The wasm heap as it is now. Call after any allocation (makeOutput may grow it). Read from the
 * Memory object because in the threaded build the cached HEAP views are refreshed lazily.
 */
function heapBuffer(backend: WasmBackendInternals): ArrayBufferLike {
  return heapMemory(backend)?.buffer ?? backend.wasm.HEAPF32.buffer;
}

/** Bytes as the C entry points take shapes. */
function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

function heapInfo(backend: WasmBackendInternals, t: tf.TensorInfo): { id: number; offset: number } {
  const info = backend.dataIdMap.get(t.dataId)!;
  return { id: info.id, offset: info.memoryOffset };
}

/**
 * A temporary C-side tensor id over `size` floats of existing heap memory: no allocation, no
 * copy. Released with `backend.wasm.tfjs.disposeData(id)`, which unregisters it (and deletes any
 * XNNPACK operator cached on it) without freeing memory — the owner still holds that.
 */
function heapView(backend: WasmBackendInternals, offset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, offset);
  return id;
}

/** The stock C BatchMatMul: it runs XNNPACK only for batch-1, untransposed operands. */
const cMatMuls = new WeakMap<object, (...args: unknown[]) => void>();
function cMatMul(backend: WasmBackendInternals): (...args: unknown[]) => void {
  let f = cMatMuls.get(backend);
  if (!f) {
    f = backend.wasm.cwrap('BatchMatMul', null, [
      'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
    ]);
    cMatMuls.set(backend, f);
  }
  return f;
}

/** out[M, N] = a[M, K] · b[K, N] on XNNPACK, all three given as C tensor ids. */
function xnnMatMul(
  backend: WasmBackendInternals,
  ids: { a: number; b: number; out: number },
  dims: { m: number; k: number; n: number },
): void {
  cMatMul(backend)(ids.a, shapeBytes([1, dims.m, dims.k]), 3, ids.b, shapeBytes([1, dims.k, dims.n]), 3, 0, 0, ids.out);
}

/** Physical transpose of the last two axes (the stock wasm Transpose kernel); caller disposes. */
function transposeLast(backend: WasmBackendInternals, x: tf.TensorInfo): tf.TensorInfo {
  const rank = x.shape.length;
  const perm = x.shape.map((_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  const transpose = tf.getKernel('Transpose', 'wasm')!.kernelFunc;
  return transpose({ inputs: { x }, backend: backend as unknown as tf.KernelBackend, attrs: { perm } }) as tf.TensorInfo;
}

/**
 * BatchMatMul on our wasm SIMD kernel (./gemm.ts) when the shapes fit it (columns a multiple
 * of 4: every product of training and decoding with the presets), otherwise on XNNPACK. A
 * transposed left operand is read in place by the kernel; a transposed right operand is
 * transposed physically first (cheap next to the product: it is a weight matrix or one head's
 * keys/values). Full broadcasting between different batch shapes is left to the stock kernel.
 */
function makeBatchMatMul(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const batchA = tf.util.sizeFromShape(args.inputs.a!.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(args.inputs.b!.shape.slice(0, -2));
    const float = args.inputs.a!.dtype === 'float32' && args.inputs.b!.dtype === 'float32';
    const sameBatch = batchB === 1 || batchA === 1 || arraysEqual(args.inputs.a!.shape.slice(0, -2), args.inputs.b!.shape.slice(0, -2));
    if (!float || !sameBatch) return stock(args);
    const backend = args.backend as unknown as WasmBackendInternals;
    const pool = simdKernels.get(backend)?.gemm;
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const a = args.inputs.a!;
    const b = args.inputs.b!;
    const dims = {
      m: transposeA ? a.shape.at(-1)! : a.shape.at(-2)!,
      k: transposeA ? a.shape.at(-2)! : a.shape.at(-1)!,
      n: transposeB ? b.shape.at(-2)! : b.shape.at(-1)!,
    };
    if (pool && Math.min(batchA, batchB) > 0 && gemmFits(dims)) {
      const right = transposeB ? transposeLast(backend, b) : b;
      try {
        return simdMatMul(backend, pool, { a, b: right, transposeA, ...dims });
      } finally {
        if (transposeB) backend.disposeData(right.dataId);
      }
    }
    return xnnpackBatchMatMul(args as never);
  };
}

/** Our wasm SIMD kernels over a backend's heap. */
interface SimdKernels {
  gemm: GemmPool;
  colsum: ColsumFunction;
  elementwise: ElementwiseKernels;
}

/** Per backend, or null where they could not be set up (see installWasmKernels). */
const simdKernels = new WeakMap<object, SimdKernels | null>();

/**
 * Threads the SIMD matrix kernel of `backend` runs products on now (0: no kernel). Workers start
 * in the background: until they are ready, products run on this thread alone.
 */
export function gemmThreads(backend: unknown): number {
  return simdKernels.get(backend as object)?.gemm.threads ?? 0;
}

/** True when the SIMD matrix kernel of `backend` multiplies and adds with relaxed_madd. */
export function gemmFma(backend: unknown): boolean {
  return simdKernels.get(backend as object)?.gemm.fma ?? false;
}

/**
 * op(a) [..., M, K] · b [..., K, N] on the SIMD kernel, op(a) = a or aᵀ (read in place). Batch
 * shapes equal, or either of size 1. Products of POOL_MIN_PRODUCT multiply-adds or more are
 * split across the kernel's threads.
 */
function simdMatMul(
  backend: WasmBackendInternals,
  pool: GemmPool,
  o: { a: tf.TensorInfo; b: tf.TensorInfo; transposeA: boolean; m: number; k: number; n: number },
): tf.TensorInfo {
  const { a, b, m, k, n } = o;
  if (b.shape.at(-2) !== k) {
    throw new Error(`BatchMatMul inner dimensions differ: ${a.shape}${o.transposeA ? 'ᵀ' : ''} and ${b.shape}`);
  }
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const outBatch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...outBatch, m, n], 'float32');
  // Every slice of an untransposed a meeting the same b is one product of batchA·M rows.
  const foldRows = batchB === 1 && !o.transposeA;
  const rows = foldRows ? batchA * m : m;
  const count = foldRows ? 1 : Math.max(batchA, batchB);
  const call = {
    a: heapInfo(backend, a).offset,
    b: heapInfo(backend, b).offset,
    c: heapInfo(backend, out).offset,
    m: rows,
    k,
    n,
    count,
    strideA: batchA === 1 ? 0 : m * k * 4,
    strideB: batchB === 1 ? 0 : k * n * 4,
    strideC: m * n * 4,
    aRow: o.transposeA ? 4 : k * 4,
    aStep: o.transposeA ? m * 4 : 4,
  };
  try {
    if (rows * k * n * count >= POOL_MIN_PRODUCT) pool.run(call);
    else pool.runHere(call);
  } catch (error) {
    backend.disposeData(out.dataId);
    throw error;
  }
  return out;
}

function arraysEqual(x: number[], y: number[]): boolean {
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/**
 * BatchMatMul on XNNPACK, for shapes the SIMD kernel does not take: transposed operands are
 * transposed physically first, a shared right operand folds the batch into rows (one product),
 * and a batched right operand runs one XNNPACK product per batch slice over heap views.
 */
function xnnpackBatchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WasmBackendInternals;
  const a = args.inputs.a!;
  const b = args.inputs.b!;
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const size = (t: tf.TensorInfo): number => tf.util.sizeFromShape(t.shape);
  const outSize =
    Math.max(size(a) / (a.shape.at(-1)! * a.shape.at(-2)!), size(b) / (b.shape.at(-1)! * b.shape.at(-2)!)) *
    (transposeA ? a.shape.at(-1)! : a.shape.at(-2)!) *
    (transposeB ? b.shape.at(-2)! : b.shape.at(-1)!);
  // aᵀ·b' can also be had as (b'ᵀ·a)ᵀ: transposing b and the result instead of a. Take the one
  // that moves fewer values (for the attention gradients a is the big [T, T] score matrix).
  const swapCost = (transposeB ? 0 : size(b)) + outSize;
  const directCost = size(a) + (transposeB ? size(b) : 0);
  if (transposeA && swapCost < directCost) {
    const bt = transposeB ? b : transposeLast(backend, b); // op(b)ᵀ
    const outT = plainMatMul(backend, bt, a); // [..., N, M]
    const out = transposeLast(backend, outT);
    if (!transposeB) backend.disposeData(bt.dataId);
    backend.disposeData(outT.dataId);
    return out;
  }
  const left = transposeA ? transposeLast(backend, a) : a;
  const right = transposeB ? transposeLast(backend, b) : b;
  const out = plainMatMul(backend, left, right);
  if (transposeA) backend.disposeData(left.dataId);
  if (transposeB) backend.disposeData(right.dataId);
  return out;
}

/**
 * Multiply-adds from which a product is split across threads (threaded build: the SIMD kernel's
 * workers, or XNNPACK's pool for other shapes): 2²² is 0.1–0.2 ms on one thread, where waking
 * another thread stops costing more than it saves. Every [B·T, D]-row product of training and
 * every attention product of a training batch is above it, a decoding step's few rows are below.
 */
const POOL_MIN_PRODUCT = 2 ** 22;

/** a [..., M, K] · b [..., K, N] on XNNPACK (batch shapes equal, or either of size 1). */
function plainMatMul(backend: WasmBackendInternals, a: tf.TensorInfo, b: tf.TensorInfo): tf.TensorInfo {
  const m = a.shape.at(-2)!;
  const k = a.shape.at(-1)!;
  const n = b.shape.at(-1)!;
  if (b.shape.at(-2) !== k) {
    throw new Error(`BatchMatMul inner dimensions differ: ${a.shape} and ${b.shape}`);
  }
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const outBatch = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = backend.makeOutput([...outBatch, m, n], 'float32');
  const ai = heapInfo(backend, a);
  const bi = heapInfo(backend, b);
  const oi = heapInfo(backend, out);
  if (batchB === 1) {
    // Every slice of a meets the same b: one [batchA·M, K]·[K, N] product.
    const aId = heapView(backend, ai.offset, batchA * m * k);
    const outId = heapView(backend, oi.offset, batchA * m * n);
    const product = (): void => xnnMatMul(backend, { a: aId, b: bi.id, out: outId }, { m: batchA * m, k, n });
    if (batchA * m * k * n >= POOL_MIN_PRODUCT) withThreadPool(backend, product);
    else product();
    backend.wasm.tfjs.disposeData(aId);
    backend.wasm.tfjs.disposeData(outId);
    return out;
  }
  // Per-slice products (attention heads) stay on this thread (./threads.ts): in the best case
  // the pool made them 8% faster, and with another process on a core 10× slower.
  for (let i = 0; i < batchB; i++) {
    const aSlice = batchA === 1 ? 0 : i;
    const aId = heapView(backend, ai.offset + aSlice * m * k * 4, m * k);
    const bId = heapView(backend, bi.offset + i * k * n * 4, k * n);
    const outId = heapView(backend, oi.offset + i * m * n * 4, m * n);
    xnnMatMul(backend, { a: aId, b: bId, out: outId }, { m, k, n });
    backend.wasm.tfjs.disposeData(aId);
    backend.wasm.tfjs.disposeData(bId);
    backend.wasm.tfjs.disposeData(outId);
  }
  return out;
}

/**
 * Sum over leading axes (bias and LayerNorm gradients: [B·T, D] → [D]) as one pass over the
 * rows: our SIMD column sums (./colsum.ts) when D is a multiple of 16, else a loop in JS. The
 * stock kernel first transposes x to reduce along the last axis (~7× slower), and an XNNPACK
 * product ones·x would repack x as weights on every call (slower still). Sums along the last
 * axis (the softmax gradient's) go to our SIMD row sums (see sumLastAxis). Every other
 * reduction goes to the stock kernel.
 */
function makeSum(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const x = args.inputs.x!;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((p, q) => p - q);
    if (x.dtype === 'float32' && lastAxisOnly(axes, rank)) {
      const sums = sumLastAxis(backend, x, keepDims);
      if (sums) return sums;
    }
    const leading = rank >= 2 && axes.length === rank - 1 && axes.every((ax, i) => ax === i);
    if (!leading || x.dtype !== 'float32') return stock(args);
    const n = x.shape[rank - 1]!;
    const rows = tf.util.sizeFromShape(x.shape) / n;
    const out = backend.makeOutput(keepDims ? [...x.shape.slice(0, -1).map(() => 1), n] : [n], 'float32');
    const colsum = simdKernels.get(backend)?.colsum;
    if (colsum && colsumFits({ rows, n })) {
      colsum(heapInfo(backend, x).offset, rows, n, heapInfo(backend, out).offset);
      return out;
    }
    const heap = new Float32Array(heapBuffer(backend)); // after makeOutput, which may grow the heap
    const src = heapInfo(backend, x).offset / 4;
    heap.set(sumRows(heap, { src, rows, n }), heapInfo(backend, out).offset / 4);
    return out;
  };
}

function lastAxisOnly(axes: number[], rank: number): boolean {
  return rank >= 1 && axes.length === 1 && axes[0] === rank - 1;
}

/**
 * Sums of x [..., n] along its last axis on our SIMD kernel (n a multiple of 4), or null when
 * it does not apply. The stock Sum and Mean take ~70 ns a row on LayerNorm's [B·T, D], ours 15–20.
 */
function sumLastAxis(backend: WasmBackendInternals, x: tf.TensorInfo, keepDims: boolean): tf.TensorInfo | null {
  const elementwise = simdKernels.get(backend)?.elementwise;
  const n = x.shape.at(-1)!;
  const size = tf.util.sizeFromShape(x.shape);
  if (!elementwise || n % 4 !== 0 || size === 0) return null;
  const out = backend.makeOutput(keepDims ? [...x.shape.slice(0, -1), 1] : x.shape.slice(0, -1), 'float32');
  elementwise.rowSum({ src: heapInfo(backend, x).offset, rows: size / n, n, dst: heapInfo(backend, out).offset });
  return out;
}

/** Mean along the last axis: the row sums divided by n (as the stock kernel divides); otherwise the stock kernel. */
function makeMean(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const x = args.inputs.x!;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const axes = tf.util.parseAxisParam(axis, x.shape);
    if (x.dtype !== 'float32' || !lastAxisOnly(axes, x.shape.length)) return stock(args);
    const out = sumLastAxis(backend, x, keepDims);
    if (!out) return stock(args);
    const n = x.shape.at(-1)!;
    const sums = new Float32Array(heapBuffer(backend), heapInfo(backend, out).offset, tf.util.sizeFromShape(out.shape));
    for (let r = 0; r < sums.length; r++) sums[r] = sums[r]! / n;
    return out;
  };
}

/**
 * Add, Sub, Multiply and RealDiv of float32 x [..., n] and a per-row column [..., 1] (either
 * side) on our SIMD kernel, n a multiple of 4: LayerNorm's (x − μ)·rstd and its gradient. The
 * stock kernel's broadcasting path takes 0.26 ns a value there, ours 0.15 (CPU time, [2048, 128]).
 * Anything else goes to the stock kernel. Each value is one IEEE operation either way, so the
 * results are the same.
 */
function makeColumnOp(columnOp: ColumnOp, stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const elementwise = simdKernels.get(backend)?.elementwise;
    if (!elementwise || a.dtype !== 'float32' || b.dtype !== 'float32') return stock(args);
    const reversed = isColumnOf(a, b);
    if (!reversed && !isColumnOf(b, a)) return stock(args);
    const [x, col] = reversed ? [b, a] : [a, b];
    const n = x.shape.at(-1)!;
    const size = tf.util.sizeFromShape(x.shape);
    if (n % 4 !== 0 || size === 0) return stock(args);
    const out = backend.makeOutput(x.shape, 'float32');
    elementwise.columnOp({
      op: columnOp,
      reversed,
      x: heapInfo(backend, x).offset,
      col: heapInfo(backend, col).offset,
      out: heapInfo(backend, out).offset,
      rows: size / n,
      n,
    });
    return out;
  };
}

/**
 * Values from which a row kernel is split across the pool's threads: handing a part to a worker
 * and waiting for it costs ~10–20 µs, about what one thread takes on 2¹⁶ floats.
 */
const POINTWISE_SPLIT_MIN = 2 ** 16;

/** Parts to split `units` units of `perUnit` elements into: 1 up to the pool's threads, none under POINTWISE_SPLIT_MIN elements. */
function partsFor(pool: GemmPool, units: number, perUnit: number): number {
  const most = Math.min(units, Math.floor((units * perUnit) / POINTWISE_SPLIT_MIN));
  return most < 2 ? 1 : Math.min(pool.threads, most);
}

/** Runs rowMax (./pointwise.ts) over x [..., n] → out [...], split by rows across the pool's threads. */
function runRows(pool: GemmPool, name: string, o: { x: number; out: number; rows: number; n: number; outRow: number }): void {
  const blocks = splitUnits(o.rows, partsFor(pool, o.rows, o.n));
  pool.runKernel(
    name,
    blocks.map(([first, count]) => [o.x + first * o.n * 4, o.out + first * o.outRow * 4, count, o.n]),
  );
}

/** x [..., n] fits the row kernels: float32, n a multiple of 4, not empty. */
function rowsFit(x: tf.TensorInfo): boolean {
  return x.dtype === 'float32' && x.shape.length >= 1 && x.shape.at(-1)! % 4 === 0 && tf.util.sizeFromShape(x.shape) > 0;
}

/** Max along the last axis (the loss's logSumExp) on our row kernel; the stock kernel ran ~4× slower. */
function makeMax(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const x = args.inputs.x!;
    const pool = simdKernels.get(backend)?.gemm;
    const { reductionIndices, keepDims } = args.attrs as { reductionIndices: number | number[]; keepDims: boolean };
    if (!pool || !rowsFit(x) || !lastAxisOnly(tf.util.parseAxisParam(reductionIndices, x.shape), x.shape.length)) return stock(args);
    const out = backend.makeOutput(keepDims ? [...x.shape.slice(0, -1), 1] : x.shape.slice(0, -1), 'float32');
    const n = x.shape.at(-1)!;
    runRows(pool, 'rowMax', { x: heapInfo(backend, x).offset, out: heapInfo(backend, out).offset, rows: tf.util.sizeFromShape(x.shape) / n, n, outRow: 1 });
    return out;
  };
}

/** The kernel of the fused Softmax gradient (see softmaxGradient), registered for wasm only. */
const SOFTMAX_GRAD = 'SoftmaxGrad';

/**
 * dy·y − (Σ_row dy·y)·y for softmax output y and upstream dy [..., n], on our kernel split by
 * rows: one pass where tfjs's gradient runs four kernels (Multiply, Sum, Multiply, Sub).
 */
function softmaxGradKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendInternals;
  const { dy, y } = args.inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
  const pool = simdKernels.get(backend)!.gemm;
  const out = backend.makeOutput(y.shape, 'float32');
  const n = y.shape.at(-1)!;
  const rows = tf.util.sizeFromShape(y.shape) / n;
  const [da, ya, oa] = [heapInfo(backend, dy).offset, heapInfo(backend, y).offset, heapInfo(backend, out).offset];
  const blocks = splitUnits(rows, partsFor(pool, rows, n));
  pool.runKernel('softmaxGrad', blocks.map(([first, count]) => [da + first * n * 4, ya + first * n * 4, oa + first * n * 4, count, n]));
  return out;
}

/**
 * The Softmax gradient for every backend, as tfjs 4.22.0 writes it, except on wasm with our
 * kernels, where shapes the fused kernel takes go to it.
 */
const softmaxGradient: tf.GradConfig = {
  kernelName: 'Softmax',
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    const [y] = saved as [tf.Tensor];
    const dim = (attrs as { dim: number }).dim;
    const grad = dy as tf.Tensor;
    const fused =
      overridesOn &&
      tf.getBackend() === 'wasm' &&
      simdKernels.get(tf.backend())?.gemm != null &&
      rowsFit(y) &&
      grad.dtype === 'float32' &&
      arraysEqual(grad.shape, y.shape) &&
      (dim === -1 || dim === y.rank - 1);
    if (fused) return { logits: () => tf.engine().runKernel(SOFTMAX_GRAD, { dy: grad, y }) as tf.Tensor };
    const dyTimesY = tf.mul(grad, y);
    return { logits: () => tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, [dim], true), y)) };
  },
};

/** True when `col` is [..., 1] with x's leading axes (x [..., n], n > 1). */
function isColumnOf(col: tf.TensorInfo, x: tf.TensorInfo): boolean {
  const rank = x.shape.length;
  return (
    rank >= 1 && col.shape.length === rank && col.shape[rank - 1] === 1 && x.shape[rank - 1]! > 1 && col.shape.slice(0, -1).every((d, i) => d === x.shape[i])
  );
}

/**
 * Column sums of `rows` rows of n floats from heap[src]. Four rows per pass over the
 * accumulator: half the time of one row at a time, which is bound by the accumulator's
 * loads and stores.
 */
function sumRows(heap: Float32Array, o: { src: number; rows: number; n: number }): Float32Array {
  const { src, rows, n } = o;
  const acc = new Float32Array(n);
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const a = src + r * n;
    const b = a + n;
    const c = b + n;
    const d = c + n;
    for (let j = 0; j < n; j++) acc[j]! += heap[a + j]! + heap[b + j]! + (heap[c + j]! + heap[d + j]!);
  }
  for (; r < rows; r++) {
    const row = src + r * n;
    for (let j = 0; j < n; j++) acc[j]! += heap[row + j]!;
  }
  return acc;
}

/**
 * Transpose for the two shapes the model produces, over the heap: swapping the last two axes
 * (matmul operands: in JS, eight rows at a time, see transposeTiles) and permutations that keep
 * the last axis in place (attention heads [B, T, nh, hs] ↔ [B, nh, T, hs]: whole rows copied,
 * on our SIMD kernel for a swap of two axes, else in JS). The stock kernel runs both several
 * times slower. Anything else goes to the stock kernel.
 */
function makeTranspose(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const x = args.inputs.x!;
    const perm = (args.attrs as { perm: number[] }).perm;
    const rank = x.shape.length;
    const fourBytes = x.dtype === 'float32' || x.dtype === 'int32';
    const swapsLastTwo =
      rank >= 2 && perm[rank - 1] === rank - 2 && perm[rank - 2] === rank - 1 && perm.slice(0, -2).every((p, i) => p === i);
    const keepsLast = rank >= 2 && perm[rank - 1] === rank - 1;
    if (!fourBytes || !(swapsLastTwo || keepsLast)) return stock(args);
    const out = backend.makeOutput(perm.map((p) => x.shape[p]!), x.dtype);
    // An integer view copies bit patterns exactly (a float view may canonicalise NaN bits,
    // which int32 values such as -1 are); taken after makeOutput, which may grow the heap.
    const heap = new Int32Array(heapBuffer(backend));
    const src = heapInfo(backend, x).offset / 4;
    const dst = heapInfo(backend, out).offset / 4;
    const swap = adjacentSwap(perm);
    const elementwise = simdKernels.get(backend)?.elementwise;
    if (swapsLastTwo) {
      const rows = x.shape[rank - 2]!;
      const cols = x.shape[rank - 1]!;
      const batch = tf.util.sizeFromShape(x.shape.slice(0, -2));
      transposeTiles(heap, { src, dst, batch, rows, cols });
    } else if (elementwise && swap !== null && (tf.util.sizeFromShape(x.shape.slice(swap + 2)) * 4) % 16 === 0) {
      // [outer, p, q, row] → [outer, q, p, row] on our SIMD kernel (the attention heads).
      elementwise.swapAxes({
        src: src * 4,
        dst: dst * 4,
        outer: tf.util.sizeFromShape(x.shape.slice(0, swap)),
        p: x.shape[swap]!,
        q: x.shape[swap + 1]!,
        rowBytes: tf.util.sizeFromShape(x.shape.slice(swap + 2)) * 4,
      });
    } else {
      copyRows(heap, { src, dst, shape: x.shape, perm });
    }
    return out;
  };
}

/**
 * dst[b][j][i] = src[b][i][j]: eight source rows at a time, over column strips of 32, so that
 * each pass writes eight adjacent values of a destination row and reads eight rows that stay in
 * cache across the strip (about twice as fast as 8×8 tiles of one value per write).
 */
function transposeTiles(
  heap: Int32Array,
  o: { src: number; dst: number; batch: number; rows: number; cols: number },
): void {
  const { rows, cols } = o;
  const strip = 32;
  for (let b = 0; b < o.batch; b++) {
    const src = o.src + b * rows * cols;
    const dst = o.dst + b * rows * cols;
    for (let j0 = 0; j0 < cols; j0 += strip) {
      const j1 = Math.min(j0 + strip, cols);
      let i = 0;
      for (; i + 8 <= rows; i += 8) {
        const first = src + i * cols;
        for (let j = j0; j < j1; j++) {
          const d = dst + j * rows + i;
          const s = first + j;
          heap[d] = heap[s]!;
          heap[d + 1] = heap[s + cols]!;
          heap[d + 2] = heap[s + 2 * cols]!;
          heap[d + 3] = heap[s + 3 * cols]!;
          heap[d + 4] = heap[s + 4 * cols]!;
          heap[d + 5] = heap[s + 5 * cols]!;
          heap[d + 6] = heap[s + 6 * cols]!;
          heap[d + 7] = heap[s + 7 * cols]!;
        }
      }
      for (; i < rows; i++) {
        const row = src + i * cols;
        for (let j = j0; j < j1; j++) heap[dst + j * rows + i] = heap[row + j]!;
      }
    }
  }
}

/**
 * i when `perm` swaps axes i and i + 1 and keeps every other axis, the last one included
 * ([0, 2, 1, 3]: i = 1); otherwise null.
 */
function adjacentSwap(perm: number[]): number | null {
  const rank = perm.length;
  for (let i = 0; i + 2 < rank; i++) {
    if (perm[i] === i + 1 && perm[i + 1] === i && perm.every((p, d) => d === i || d === i + 1 || p === d)) return i;
  }
  return null;
}

/** A permutation that keeps the last axis: copy each contiguous row to its new place. */
function copyRows(heap: Int32Array, o: { src: number; dst: number; shape: number[]; perm: number[] }): void {
  const rank = o.shape.length;
  const inner = o.shape[rank - 1]!;
  const inStrides = new Array<number>(rank);
  inStrides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) inStrides[d] = inStrides[d + 1]! * o.shape[d + 1]!;
  const outShape = o.perm.map((p) => o.shape[p]!);
  const outer = rank - 1;
  const stride = o.perm.slice(0, outer).map((p) => inStrides[p]!); // input stride of each output axis
  const index = new Array<number>(outer).fill(0);
  const rowsTotal = tf.util.sizeFromShape(outShape.slice(0, outer));
  let from = o.src;
  for (let r = 0; r < rowsTotal; r++) {
    heap.copyWithin(o.dst + r * inner, from, from + inner);
    // Odometer over the output's outer axes, moving the input position by each axis's stride.
    for (let d = outer - 1; d >= 0; d--) {
      index[d]!++;
      from += stride[d]!;
      if (index[d]! < outShape[d]!) break;
      from -= stride[d]! * outShape[d]!;
      index[d] = 0;
    }
  }
}

/**
 * Slice as copies of contiguous runs along the last axis, straight from heap to heap (q/k/v
 * column blocks of the fused projection, mask windows). The stock kernel first copies the whole
 * input out of the heap with readSync, then copies the runs.
 */
function makeSlice(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const x = args.inputs.x!;
    if (x.dtype === 'string' || x.dtype === 'complex64' || x.shape.length === 0) return stock(args);
    const attrs = args.attrs as { begin: number | number[]; size: number | number[] };
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
    const out = backend.makeOutput(size, x.dtype);
    const count = tf.util.sizeFromShape(size);
    if (count === 0) return out;
    const bytes = x.dtype === 'bool' ? 1 : 4;
    const heap = new Uint8Array(heapBuffer(backend)); // byte copies: exact for every dtype; after makeOutput
    const src = heapInfo(backend, x).offset;
    const dst = heapInfo(backend, out).offset;
    const rank = x.shape.length;
    const strides = tf.util.computeStrides(x.shape); // elements, for axes 0..rank-2
    const run = size[rank - 1]!;
    const runs = count / run;
    const index = new Array<number>(rank - 1).fill(0);
    let from = begin.reduce((acc, b, d) => acc + b * (d < rank - 1 ? strides[d]! : 1), 0);
    for (let r = 0; r < runs; r++) {
      heap.copyWithin(dst + r * run * bytes, src + from * bytes, src + (from + run) * bytes);
      for (let d = rank - 2; d >= 0; d--) {
        index[d]!++;
        from += strides[d]!;
        if (index[d]! < size[d]!) break;
        from -= strides[d]! * size[d]!;
        index[d] = 0;
      }
    }
    return out;
  };
}

/**
 * Cast to the same dtype (the Multiply gradient casts its other operand to float32 every time)
 * as a reference-count bump instead of a copy; real conversions go to the stock kernel.
 */
function makeCast(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x!;
    if ((args.attrs as { dtype: tf.DataType }).dtype !== x.dtype) return stock(args);
    return identity(args as never);
  };
}

/**
 * Equal and NotEqual of two float32 or two int32 tensors under broadcasting, as one JS pass:
 * the gradient of a max over the last axis compares every input with the row's max ([2048, 256]
 * against [2048, 1]: ~30 ms on the stock kernel), and the packed-document mask compares each
 * row's document numbers with themselves ([B, 1, T, 1] against [B, 1, 1, T]: ~60 ms a training
 * step at B = 8, T = 256). The stock kernel computes a broadcast index per element; here only the
 * last axis is walked per element, with each operand's step along it 0 or 1. JS `===` on the
 * values is IEEE equality, as the stock kernel's (NaN equals nothing).
 */
function makeCompare(equal: boolean, stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype !== b.dtype || (a.dtype !== 'float32' && a.dtype !== 'int32')) return stock(args);
    const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const out = backend.makeOutput(shape, 'bool');
    const size = tf.util.sizeFromShape(shape);
    if (size === 0) return out;
    const buffer = heapBuffer(backend) as ArrayBuffer; // after makeOutput, which may grow the heap
    const View = a.dtype === 'int32' ? Int32Array : Float32Array;
    const av = new View(buffer, heapInfo(backend, a).offset, tf.util.sizeFromShape(a.shape));
    const bv = new View(buffer, heapInfo(backend, b).offset, tf.util.sizeFromShape(b.shape));
    const ov = new Uint8Array(buffer, heapInfo(backend, out).offset, size);
    const rank = shape.length;
    const as = broadcastStrides(a.shape, shape);
    const bs = broadcastStrides(b.shape, shape);
    const n = rank > 0 ? shape[rank - 1]! : 1;
    const sa = rank > 0 ? as[rank - 1]! : 0;
    const sb = rank > 0 ? bs[rank - 1]! : 0;
    const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
    let ia = 0;
    let ib = 0;
    for (let o = 0; o < size; o += n) {
      if (equal) for (let j = 0; j < n; j++) ov[o + j] = av[ia + j * sa] === bv[ib + j * sb] ? 1 : 0;
      else for (let j = 0; j < n; j++) ov[o + j] = av[ia + j * sa] !== bv[ib + j * sb] ? 1 : 0;
      // Odometer over the output's outer axes, moving each operand by its stride there.
      for (let d = rank - 2; d >= 0; d--) {
        index[d]!++;
        ia += as[d]!;
        ib += bs[d]!;
        if (index[d]! < shape[d]!) break;
        ia -= as[d]! * shape[d]!;
        ib -= bs[d]! * shape[d]!;
        index[d] = 0;
      }
    }
    return out;
  };
}

/** Element strides of a tensor of shape `from` read as `to` (its broadcast shape): 0 along broadcast axes. */
function broadcastStrides(from: number[], to: number[]): number[] {
  const strides = new Array<number>(to.length).fill(0);
  let stride = 1;
  for (let d = from.length - 1; d >= 0; d--) {
    const axis = d + to.length - from.length;
    if (from[d] !== 1) strides[axis] = stride;
    stride *= from[d]!;
  }
  return strides;
}

/**
 * Identity (tfjs clones every tensor it saves for the backward pass) as a reference-count bump,
 * as the cpu backend does: tensors are immutable, and the stock kernel copies the data.
 */
function identity(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const backend = args.backend as WasmBackendInternals;
  const x = args.inputs.x!;
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * GatherV2 along axis 0 (the token embedding): one heap copy per gathered row. The stock kernel
 * computes every element's source index separately and is ~100× slower on [B·T, D] rows.
 */
function makeGather(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WasmBackendInternals;
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as { axis: number; batchDims: number };
    const rowAxis = tf.util.parseAxisParam(axis, x.shape)[0];
    const fourBytes = x.dtype === 'float32' || x.dtype === 'int32';
    if (rowAxis !== 0 || batchDims !== 0 || !fourBytes || indices.dtype !== 'int32') return stock(args);
    const rows = x.shape[0]!;
    const rowSize = tf.util.sizeFromShape(x.shape.slice(1));
    const count = tf.util.sizeFromShape(indices.shape);
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const heap = new Float32Array(heapBuffer(backend)); // after makeOutput, which may grow the heap
    const src = heapInfo(backend, x).offset / 4;
    const dst = heapInfo(backend, out).offset / 4;
    const ids = new Int32Array(heap.buffer, heapInfo(backend, indices).offset, count);
    for (let i = 0; i < count; i++) {
      const row = ids[i]!;
      if (row < 0 || row >= rows) {
        backend.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${row} is not in [0, ${rows - 1}]`);
      }
      heap.copyWithin(dst + i * rowSize, src + row * rowSize, src + (row + 1) * rowSize);
    }
    return out;
  };
}

/** The kernels setKernelOverrides replaces. */
const OVERRIDDEN = ['BatchMatMul', 'Sum', 'Mean', 'Add', 'Sub', 'Multiply', 'RealDiv', 'GatherV2', 'Transpose', 'Identity', 'Slice', 'Cast', 'Equal', 'NotEqual', 'Max'];

/** Stock kernels replaced by overrides, to put back when overrides are switched off. */
const stockKernels = new Map<string, tf.KernelConfig>();
let overridesOn = false;

/**
 * Switches the overrides (OVERRIDDEN) on or off (off restores the stock kernels; used by tests
 * and the benchmark to compare both). Requires installWasmKernels to have succeeded.
 */
export function setKernelOverrides(on: boolean): void {
  if (on === overridesOn) return;
  if (stockKernels.size === 0) throw new Error('wasm kernel overrides are not installed');
  if (on) {
    register('BatchMatMul', makeBatchMatMul(stockKernels.get('BatchMatMul')!.kernelFunc));
    register('Sum', makeSum(stockKernels.get('Sum')!.kernelFunc));
    register('Mean', makeMean(stockKernels.get('Mean')!.kernelFunc));
    register('Add', makeColumnOp('add', stockKernels.get('Add')!.kernelFunc));
    register('Sub', makeColumnOp('sub', stockKernels.get('Sub')!.kernelFunc));
    register('Multiply', makeColumnOp('mul', stockKernels.get('Multiply')!.kernelFunc));
    register('RealDiv', makeColumnOp('div', stockKernels.get('RealDiv')!.kernelFunc));
    register('GatherV2', makeGather(stockKernels.get('GatherV2')!.kernelFunc));
    register('Transpose', makeTranspose(stockKernels.get('Transpose')!.kernelFunc));
    register('Identity', identity as unknown as tf.KernelFunc);
    register('Slice', makeSlice(stockKernels.get('Slice')!.kernelFunc));
    register('Cast', makeCast(stockKernels.get('Cast')!.kernelFunc));
    register('Equal', makeCompare(true, stockKernels.get('Equal')!.kernelFunc));
    register('NotEqual', makeCompare(false, stockKernels.get('NotEqual')!.kernelFunc));
    register('Max', makeMax(stockKernels.get('Max')!.kernelFunc));
  } else {
    for (const [name, config] of stockKernels) {
      tf.unregisterKernel(name, 'wasm');
      tf.registerKernel(config);
    }
  }
  overridesOn = on;
}

export function kernelOverridesEnabled(): boolean {
  return overridesOn;
}

export interface WasmKernelReport {
  /** True when the internals-based overrides are registered. */
  overrides: boolean;
  /** True when our SIMD matrix kernel multiplies and adds with relaxed_madd (fused multiply-add). */
  fma: boolean;
  /** Human-readable summary for `execwm doctor` and logs. */
  detail: string;
}

function register(kernelName: string, kernelFunc: tf.KernelFunc): void {
  if (tf.getKernel(kernelName, 'wasm') != null) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
}

/**
 * Our SIMD kernels over the backend's heap, the matrix product with as many threads as the
 * backend has (the threaded build's memory is shared). Null when the heap is not a
 * WebAssembly.Memory or the kernels cannot be compiled.
 */
function startSimdKernels(backend: WasmBackendInternals): SimdKernels | null {
  const memory = heapMemory(backend);
  if (!isWasmMemory(memory)) return null;
  const { _malloc: malloc, _free: free } = backend.wasm;
  // The module's own allocator, so packing space never overlaps a tensor.
  const heap = typeof malloc === 'function' && typeof free === 'function' ? { allocate: (bytes: number) => malloc(bytes) >>> 0, free } : undefined;
  try {
    return {
      gemm: new GemmPool(memory, isShared(memory) ? wasmThreads(backend) : 1, { heap }),
      colsum: instantiateColsum(memory),
      elementwise: instantiateElementwise(memory),
    };
  } catch {
    return null; // a runtime without wasm SIMD: the XNNPACK and JS paths remain
  }
}

/**
 * Registers the wasm kernels. Call after the wasm backend is initialised (it needs the
 * backend instance to check internals). Idempotent.
 */
export function installWasmKernels(backend: unknown): WasmKernelReport {
  register('UnsortedSegmentSum', unsortedSegmentSum as unknown as tf.KernelFunc);
  if (!hasExpectedInternals(backend)) {
    leaveThreadPoolOn(backend); // no BatchMatMul override here to turn it on around products
    return { overrides: false, fma: false, detail: 'UnsortedSegmentSum; internals differ from tfjs 4.22.0, customGrad matmul' };
  }
  if (stockKernels.size === 0) {
    for (const name of OVERRIDDEN) stockKernels.set(name, tf.getKernel(name, 'wasm')!);
  }
  if (!simdKernels.has(backend)) simdKernels.set(backend, startSimdKernels(backend));
  register(SOFTMAX_GRAD, softmaxGradKernel as unknown as tf.KernelFunc);
  tf.registerGradient(softmaxGradient);
  setKernelOverrides(true);
  const pool = simdKernels.get(backend)?.gemm;
  const threads = `${wasmThreads(backend)} thread${wasmThreads(backend) === 1 ? '' : 's'}`;
  const matMul = pool ? `BatchMatMul on our SIMD kernel (${pool.fma ? 'fused multiply-add' : 'multiply and add'}, ${threads}) or XNNPACK` : 'BatchMatMul on XNNPACK';
  return { overrides: true, fma: pool?.fma ?? false, detail: `UnsortedSegmentSum + overrides (${matMul}, ${OVERRIDDEN.slice(1).join(', ')})` };
}
