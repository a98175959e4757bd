/**
 * Small wasm SIMD kernels over the tfjs heap for element-wise work the stock wasm backend does
 * slowly in training (CPU time per call, one thread, reference config):
 *
 * - a binary op between [..., N] and a per-row column [..., 1] (LayerNorm's x̂ = (x − μ)·rstd
 *   and its gradient, ~25 calls a step): the stock kernels take a generic broadcasting path,
 *   0.067 ms on [2048, 128] where this takes 0.039;
 *   columnOp_<op>(x, col, out, rows, n) sets out[r, j] = x[r, j] op col[r], and
 *   columnOp_<op>_reversed the same with col[r] op x[r, j];
 * - swapping two axes above whole rows ([B, T, nh, hs] ↔ [B, nh, T, hs], the attention heads,
 *   8 calls a step): swapAxes(src, dst, outer, p, q, rowBytes) copies src [outer, p, q, row] to
 *   dst [outer, q, p, row], 0.057 ms on [16, 128, 4, 32] where our JS row copies took 0.231;
 * - sums along the last axis (LayerNorm's means, 20 a step, and the softmax gradient's row
 *   sums): rowSum(src, rows, n, dst) writes dst[r] = Σ_j src[r, j]; Mean [2048, 128] 0.148 ms
 *   on the stock kernel, 0.042 here; Sum [16, 4, 128, 128] 0.536 and 0.117.
 *
 * Addresses in bytes; n a multiple of 4 and rowBytes of 16. Each result is a pure function of
 * its inputs, so runs repeat bit for bit.
 */
import { compileOnce, instantiate, isShared, moduleBytes, op, I32, V128, type FunctionDef, type WasmMemory } from './wasm-emit.js';

/** The binary ops, by the f32x4 instruction that computes them. */
const COLUMN_OPS = {
  add: op.f32x4Add,
  sub: op.f32x4Sub,
  mul: op.f32x4Mul,
  div: op.f32x4Div,
} as const;
export type ColumnOp = keyof typeof COLUMN_OPS;

function columnOp(instruction: number[], reversed: boolean, name: string): FunctionDef {
  const [x, col, out, rows, n] = [0, 1, 2, 3, 4];
  const [r, end, v] = [5, 6, 7];
  const value = 8; // v128: col[r] in every lane
  // Four values at v (x) and v + out − x (out): offset in x, both advance together.
  const step = [
    ...op.get(v), ...op.get(out), ...op.get(x), ...op.sub, ...op.add,
    ...(reversed ? [...op.get(value), ...op.get(v), ...op.v128Load()] : [...op.get(v), ...op.v128Load(), ...op.get(value)]),
    ...instruction,
    ...op.v128Store(),
    ...op.get(v), ...op.i32(16), ...op.add, ...op.tee(v), ...op.get(end), ...op.ltU, ...op.brIf(0),
  ];
  const row = [
    ...op.get(col), ...op.get(r), ...op.i32(4), ...op.mul, ...op.add, ...op.v128Load32Splat(), ...op.set(value),
    // v = x + r·n·4, end = v + n·4
    ...op.get(x), ...op.get(r), ...op.get(n), ...op.mul, ...op.i32(4), ...op.mul, ...op.add, ...op.tee(v),
    ...op.get(n), ...op.i32(4), ...op.mul, ...op.add, ...op.set(end),
    ...op.loop(step),
    ...op.get(r), ...op.i32(1), ...op.add, ...op.tee(r), ...op.get(rows), ...op.ltU, ...op.brIf(0),
  ];
  return { params: 5, locals: [[3, I32], [1, V128]], code: [...op.i32(0), ...op.set(r), ...op.loop(row)], export: name };
}

function swapAxes(): FunctionDef {
  const [src, dst, outer, p, q, rowBytes] = [0, 1, 2, 3, 4, 5];
  const [o, i, j, from, to, k] = [6, 7, 8, 9, 10, 11];
  // One row: rowBytes from `from` to `to`, 16 at a time.
  const copy = [
    ...op.get(to), ...op.get(k), ...op.add, ...op.get(from), ...op.get(k), ...op.add, ...op.v128Load(), ...op.v128Store(),
    ...op.get(k), ...op.i32(16), ...op.add, ...op.tee(k), ...op.get(rowBytes), ...op.ltU, ...op.brIf(0),
  ];
  // Source rows (i, j) of block o in order; destination row (j, i).
  const rowsJ = [
    // from = src + ((o·p + i)·q + j)·rowBytes, to = dst + ((o·q + j)·p + i)·rowBytes
    ...op.get(src), ...op.get(o), ...op.get(p), ...op.mul, ...op.get(i), ...op.add, ...op.get(q), ...op.mul, ...op.get(j), ...op.add, ...op.get(rowBytes), ...op.mul, ...op.add, ...op.set(from),
    ...op.get(dst), ...op.get(o), ...op.get(q), ...op.mul, ...op.get(j), ...op.add, ...op.get(p), ...op.mul, ...op.get(i), ...op.add, ...op.get(rowBytes), ...op.mul, ...op.add, ...op.set(to),
    ...op.i32(0), ...op.set(k),
    ...op.loop(copy),
    ...op.get(j), ...op.i32(1), ...op.add, ...op.tee(j), ...op.get(q), ...op.ltU, ...op.brIf(0),
  ];
  const rowsI = [...op.i32(0), ...op.set(j), ...op.loop(rowsJ), ...op.get(i), ...op.i32(1), ...op.add, ...op.tee(i), ...op.get(p), ...op.ltU, ...op.brIf(0)];
  const blocks = [...op.i32(0), ...op.set(i), ...op.loop(rowsI), ...op.get(o), ...op.i32(1), ...op.add, ...op.tee(o), ...op.get(outer), ...op.ltU, ...op.brIf(0)];
  return { params: 6, locals: [[6, I32]], code: [...op.i32(0), ...op.set(o), ...op.loop(blocks)], export: 'swapAxes' };
}

function rowSum(): FunctionDef {
  const [src, rows, n, dst] = [0, 1, 2, 3];
  const [r, v, end] = [4, 5, 6];
  const acc = 7; // v128
  const step = [
    ...op.get(acc), ...op.get(v), ...op.v128Load(), ...op.f32x4Add, ...op.set(acc),
    ...op.get(v), ...op.i32(16), ...op.add, ...op.tee(v), ...op.get(end), ...op.ltU, ...op.brIf(0),
  ];
  const lane = (l: number): number[] => [...op.get(acc), ...op.f32x4ExtractLane(l)];
  const row = [
    ...op.v128Zero, ...op.set(acc),
    ...op.get(src), ...op.get(r), ...op.get(n), ...op.mul, ...op.i32(4), ...op.mul, ...op.add, ...op.tee(v),
    ...op.get(n), ...op.i32(4), ...op.mul, ...op.add, ...op.set(end),
    ...op.loop(step),
    // dst[r] = (lane 0 + lane 1) + (lane 2 + lane 3)
    ...op.get(dst), ...op.get(r), ...op.i32(4), ...op.mul, ...op.add,
    ...lane(0), ...lane(1), ...op.f32Add, ...lane(2), ...lane(3), ...op.f32Add, ...op.f32Add,
    ...op.f32Store(),
    ...op.get(r), ...op.i32(1), ...op.add, ...op.tee(r), ...op.get(rows), ...op.ltU, ...op.brIf(0),
  ];
  return { params: 4, locals: [[3, I32], [1, V128]], code: [...op.i32(0), ...op.set(r), ...op.loop(row)], export: 'rowSum' };
}

export function elementwiseModuleBytes(opts: { shared: boolean }): Uint8Array {
  const functions: FunctionDef[] = [];
  for (const [name, instruction] of Object.entries(COLUMN_OPS)) {
    functions.push(columnOp(instruction, false, `columnOp_${name}`), columnOp(instruction, true, `columnOp_${name}_reversed`));
  }
  functions.push(swapAxes(), rowSum());
  return moduleBytes({ shared: opts.shared, functions });
}

export interface ElementwiseKernels {
  /** out[r, j] = x[r, j] op col[r] (or col[r] op x[r, j], reversed); n a multiple of 4. */
  columnOp(o: { op: ColumnOp; reversed: boolean; x: number; col: number; out: number; rows: number; n: number }): void;
  /** src [outer, p, q, row] → dst [outer, q, p, row]; rowBytes a multiple of 16. */
  swapAxes(o: { src: number; dst: number; outer: number; p: number; q: number; rowBytes: number }): void;
  /** dst[r] = Σ_j src[r, j] over rows of n floats; n a multiple of 4. */
  rowSum(o: { src: number; rows: number; n: number; dst: number }): void;
}

export function instantiateElementwise(memory: WasmMemory): ElementwiseKernels {
  const module = compileOnce('elementwise', isShared(memory), (shared) => elementwiseModuleBytes({ shared }));
  const exports = instantiate(module, memory) as Record<string, (...args: number[]) => void>;
  return {
    columnOp: (o) => exports[`columnOp_${o.op}${o.reversed ? '_reversed' : ''}`]!(o.x, o.col, o.out, o.rows, o.n),
    swapAxes: (o) => exports.swapAxes!(o.src, o.dst, o.outer, o.p, o.q, o.rowBytes),
    rowSum: (o) => exports.rowSum!(o.src, o.rows, o.n, o.dst),
  };
}
