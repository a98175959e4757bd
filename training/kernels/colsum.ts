/**
 * Column sums in wasm SIMD over the tfjs heap: the leading-axis Sum of training (bias and
 * LayerNorm gradients, [B·T, D] → [D]), ~20 calls a step. The stock kernel transposes first;
 * our JS loop over the heap ran at ~1 GFLOP/s. Here
 *   colsum(src, rows, n, dst)
 * writes dst[j] = Σ_r src[r·n + j] (float32, byte addresses, n a multiple of 16): strips of 16
 * columns, four f32x4 accumulators per strip, one cache line of each row per step.
 */
import { compileOnce, instantiate, isShared, moduleBytes, op, I32, V128, type FunctionDef, type WasmMemory } from './wasm-emit.js';

/** Columns per strip: one 64-byte cache line of a row. */
export const COLSUM_STRIP = 16;

function colsumFunction(): FunctionDef {
  const [src, rows, n, dst] = [0, 1, 2, 3];
  const [j, p, r, n4] = [4, 5, 6, 7];
  const acc = [8, 9, 10, 11];
  const step: number[] = [];
  acc.forEach((a, q) => step.push(...op.get(a), ...op.get(p), ...op.v128Load(16 * q), ...op.f32x4Add, ...op.set(a)));
  step.push(
    ...op.get(p), ...op.get(n4), ...op.add, ...op.set(p),
    ...op.get(r), ...op.i32(1), ...op.sub, ...op.tee(r), ...op.brIf(0),
  );
  const strip: number[] = [];
  for (const a of acc) strip.push(...op.v128Zero, ...op.set(a));
  strip.push(
    // p = src + j·4, r = rows
    ...op.get(src), ...op.get(j), ...op.i32(4), ...op.mul, ...op.add, ...op.set(p),
    ...op.get(rows), ...op.set(r),
    ...op.loop(step),
  );
  acc.forEach((a, q) => strip.push(...op.get(dst), ...op.get(j), ...op.i32(4), ...op.mul, ...op.add, ...op.get(a), ...op.v128Store(16 * q)));
  strip.push(...op.get(j), ...op.i32(COLSUM_STRIP), ...op.add, ...op.tee(j), ...op.get(n), ...op.ltU, ...op.brIf(0));
  const code = [
    ...op.get(n), ...op.i32(4), ...op.mul, ...op.set(n4),
    ...op.i32(0), ...op.set(j),
    ...op.loop(strip),
  ];
  return { params: 4, locals: [[4, I32], [4, V128]], code, export: 'colsum' };
}

export function colsumModuleBytes(opts: { shared: boolean }): Uint8Array {
  return moduleBytes({ shared: opts.shared, functions: [colsumFunction()] });
}

/** colsum(src, rows, n, dst), byte addresses; rows ≥ 1, n a positive multiple of COLSUM_STRIP. */
export type ColsumFunction = (src: number, rows: number, n: number, dst: number) => void;

export function colsumFits(o: { rows: number; n: number }): boolean {
  return o.rows > 0 && o.n > 0 && o.n % COLSUM_STRIP === 0;
}

export function instantiateColsum(memory: WasmMemory): ColsumFunction {
  const module = compileOnce('colsum', isShared(memory), (shared) => colsumModuleBytes({ shared }));
  return instantiate(module, memory).colsum as ColsumFunction;
}
