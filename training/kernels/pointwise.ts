/**
 * Row-wise wasm SIMD kernels over the tfjs heap that the matrix product's pool (./gemm-pool.ts)
 * splits across its threads by rows:
 *
 * - softmaxGrad(dy, y, out, rows, n): out = dy·y − (Σ_row dy·y)·y, tfjs's Softmax gradient in
 *   one kernel instead of four (Multiply, Sum, Multiply by the column, Sub: ~4.5 ms a training
 *   step at batch 8 on [8, 4, 256, 256], 1.7 here);
 * - rowMax(src, dst, rows, n): dst[r] = max_j src[r, j] (the loss's logSumExp; the stock Max
 *   took 2.9 ms a step on [2048, 1024], this 0.7). With f32x4.pmax, one instruction on x86
 *   where f32x4.max takes several: a NaN is skipped rather than returned (the loss's softmax
 *   still turns a NaN logit into a NaN loss).
 *
 * Addresses in bytes; n a multiple of 4. Each row is computed by one thread with the same code
 * however the rows are split, so results do not depend on the thread count.
 */
import { compileOnce, instantiate, isShared, moduleBytes, op, I32, V128, type FunctionDef, type WasmMemory, type WasmModule } from './wasm-emit.js';

/** `body` over p = start, start + 16, … < end (at least once); p, end i32 locals. */
function walk(p: number, end: number, body: number[]): number[] {
  return op.loop([...body, ...op.get(p), ...op.i32(16), ...op.add, ...op.tee(p), ...op.get(end), ...op.ltU, ...op.brIf(0)]);
}

/** Code leaving the sum (or max) of v128 local `acc`'s four lanes on the stack, as (l0 ∘ l1) ∘ (l2 ∘ l3). */
function lanes(acc: number, combine: number[]): number[] {
  const lane = (l: number): number[] => [...op.get(acc), ...op.f32x4ExtractLane(l)];
  return [...lane(0), ...lane(1), ...combine, ...lane(2), ...lane(3), ...combine, ...combine];
}

/** `row` for r = 0 … rows − 1 (rows ≥ 1), r an i32 local. */
function eachRow(r: number, rows: number, row: number[]): number[] {
  return [...op.i32(0), ...op.set(r), ...op.loop([...row, ...op.get(r), ...op.i32(1), ...op.add, ...op.tee(r), ...op.get(rows), ...op.ltU, ...op.brIf(0)])];
}

/** Code setting local `to` to base + r·n·4 (the address of row r of n floats). */
function rowAddress(base: number, r: number, n: number, to: number): number[] {
  return [...op.get(base), ...op.get(r), ...op.get(n), ...op.mul, ...op.i32(4), ...op.mul, ...op.add, ...op.set(to)];
}

function softmaxGrad(): FunctionDef {
  const [dy, y, out, rows, n] = [0, 1, 2, 3, 4];
  const [r, p, end, dyOff, outOff] = [5, 6, 7, 8, 9];
  const [acc, s] = [10, 11];
  const dyTimesY = [...op.get(p), ...op.get(dyOff), ...op.add, ...op.v128Load(), ...op.get(p), ...op.v128Load(), ...op.f32x4Mul];
  const row = [
    ...rowAddress(y, r, n, p), ...op.get(p), ...op.get(n), ...op.i32(4), ...op.mul, ...op.add, ...op.set(end),
    ...op.v128Zero, ...op.set(acc),
    ...walk(p, end, [...op.get(acc), ...dyTimesY, ...op.f32x4Add, ...op.set(acc)]),
    ...lanes(acc, op.f32Add), ...op.f32x4Splat, ...op.set(s),
    ...rowAddress(y, r, n, p),
    ...walk(p, end, [
      ...op.get(p), ...op.get(outOff), ...op.add,
      ...dyTimesY, ...op.get(s), ...op.get(p), ...op.v128Load(), ...op.f32x4Mul, ...op.f32x4Sub,
      ...op.v128Store(),
    ]),
  ];
  const code = [
    ...op.get(dy), ...op.get(y), ...op.sub, ...op.set(dyOff),
    ...op.get(out), ...op.get(y), ...op.sub, ...op.set(outOff),
    ...eachRow(r, rows, row),
  ];
  return { params: 5, locals: [[5, I32], [2, V128]], code, export: 'softmaxGrad' };
}

function rowMax(): FunctionDef {
  const [src, dst, rows, n] = [0, 1, 2, 3];
  const [r, p, end] = [4, 5, 6];
  const acc = 7;
  const row = [
    ...rowAddress(src, r, n, p), ...op.get(p), ...op.get(n), ...op.i32(4), ...op.mul, ...op.add, ...op.set(end),
    ...op.f32x4Const(-Infinity), ...op.set(acc),
    ...walk(p, end, [...op.get(acc), ...op.get(p), ...op.v128Load(), ...op.f32x4Pmax, ...op.set(acc)]),
    ...op.get(dst), ...op.get(r), ...op.i32(4), ...op.mul, ...op.add, ...lanes(acc, op.f32Max), ...op.f32Store(),
  ];
  return { params: 4, locals: [[3, I32], [1, V128]], code: eachRow(r, rows, row), export: 'rowMax' };
}

function pointwiseFunctions(): FunctionDef[] {
  return [softmaxGrad(), rowMax()];
}

/** The exported names, in the order of the module's functions. */
export const POINTWISE_KERNELS: readonly string[] = pointwiseFunctions().map((f) => f.export!);

export function pointwiseModule(opts: { shared: boolean }): WasmModule {
  return compileOnce('pointwise', opts.shared, (shared) => moduleBytes({ shared, functions: pointwiseFunctions() }));
}

/** The kernels of the module over `memory`, by name (see POINTWISE_KERNELS). */
export function instantiatePointwise(memory: WasmMemory): Record<string, (...args: number[]) => void> {
  return instantiate(pointwiseModule({ shared: isShared(memory) }), memory) as Record<string, (...args: number[]) => void>;
}

/** [first, count] of `parts` near-equal blocks of `units` (the first blocks one larger). */
export function splitUnits(units: number, parts: number): [number, number][] {
  const blocks: [number, number][] = [];
  for (let p = 0, first = 0; p < parts; p++) {
    const count = Math.floor(units / parts) + (p < units % parts ? 1 : 0);
    blocks.push([first, count]);
    first += count;
  }
  return blocks;
}
