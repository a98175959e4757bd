/**
 * A batched matrix product in wasm SIMD for the wasm backend's BatchMatMul. XNNPACK (inside
 * tfjs) runs batched products one operator per slice, each repacking its right operand, on one
 * thread — the attention heads' B·nh small products, e.g. [128, 32]·[32, 128] — and needs a
 * transposed left operand transposed physically first (weight gradients). This kernel reads both
 * straight from the tfjs heap (it imports the backend's memory), and a caller can split the work
 * between threads that share that memory (./gemm-pool.ts).
 *
 * The module (written with ./wasm-emit.ts) is small: one exported function,
 *   gemm(a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc)
 * which for s in [0, count) sets C_s[m, n] = A_s[m, k] · B_s[k, n], float32, with A_s at byte
 * address a + s·strideA (and likewise B_s, C_s). B and C are row-major; A's element (i, p) is at
 * A_s + i·aRow + p·aStep, so A is read row-major (aRow = 4k, aStep = 4) or transposed, stored
 * [k, m] (aRow = 4, aStep = 4m), with no copy. m must be a multiple of 4 and n of 8: the inner
 * loop keeps a 4×8 block of C in eight f32x4 registers and walks k, splatting one value of A per
 * row and loading one row of B as two vectors. k is walked in chunks of kc (see GEMM_KC).
 *
 * One thread, on the products of the reference training config: 39–48 GFLOPS, where XNNPACK
 * reached 14–20 on the per-head slices and 21–34 on the rest. Per step of k the block costs
 * 8 multiplies and 8 adds on f32x4 (no fused multiply-add without relaxed SIMD), which two
 * multiply and two add pipes retire in about 4 cycles: ~48 GFLOPS at 3 GHz is the ceiling.
 */
import { compileOnce, instantiate, isShared, moduleBytes, op, I32, V128, type FunctionDef, type WasmMemory, type WasmModule } from './wasm-emit.js';


/** Rows and columns of the block of C held in registers. */
export const GEMM_ROWS = 4;
export const GEMM_COLS = 8;
/**
 * Steps of k per chunk. Weight gradients (k = B·T = 2048) ran at 23–27 GFLOPS in one chunk
 * and 33–36 in chunks of 32 to 256; 256 leaves attention products (k ≤ T) in one chunk.
 */
export const GEMM_KC = 256;

/** The inner function: gemm's arguments with `accumulate` last instead of kc. */
function gemmBlocks(): FunctionDef {
  // Parameters 0–12, then locals.
  const [a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, accumulate] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [s, i, j, kk, ap, bp, cp, n4, aRow2, aRow3] = [13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
  const acc = [23, 24, 25, 26, 27, 28, 29, 30]; // acc[2r], acc[2r+1]: row r, columns 0–3 and 4–7
  const [b0, b1, x] = [31, 32, 33];

  const rowAddress = (r: number): number[] =>
    r === 0 ? op.get(ap) : [...op.get(ap), ...op.get([0, aRow, aRow2, aRow3][r]!), ...op.add];
  const kStep: number[] = [
    ...op.get(bp), ...op.v128Load(0), ...op.set(b0),
    ...op.get(bp), ...op.v128Load(16), ...op.set(b1),
  ];
  for (let r = 0; r < GEMM_ROWS; r++) {
    kStep.push(...rowAddress(r), ...op.v128Load32Splat(), ...op.set(x));
    for (const [half, bv] of [[0, b0], [1, b1]] as const) {
      const target = acc[2 * r + half]!;
      kStep.push(...op.get(target), ...op.get(x), ...op.get(bv), ...op.f32x4Mul, ...op.f32x4Add, ...op.set(target));
    }
  }
  kStep.push(
    ...op.get(ap), ...op.get(aStep), ...op.add, ...op.set(ap),
    ...op.get(bp), ...op.get(n4), ...op.add, ...op.set(bp),
    ...op.get(kk), ...op.i32(1), ...op.sub, ...op.tee(kk), ...op.brIf(0),
  );

  // The block's first row in C: cp = c + i·n·4 + j·4.
  const block: number[] = [
    ...op.get(c), ...op.get(i), ...op.get(n4), ...op.mul, ...op.add, ...op.get(j), ...op.i32(4), ...op.mul, ...op.add, ...op.set(cp),
  ];
  // Start from C's values (accumulate) or from zero.
  const loadBlock: number[] = [];
  const zeroBlock: number[] = [];
  for (let r = 0; r < GEMM_ROWS; r++) {
    for (const half of [0, 1]) {
      const address = [...op.get(cp), ...(r > 0 ? [...op.i32(r), ...op.get(n4), ...op.mul, ...op.add] : [])];
      loadBlock.push(...address, ...op.v128Load(16 * half), ...op.set(acc[2 * r + half]!));
      zeroBlock.push(...op.v128Zero, ...op.set(acc[2 * r + half]!));
    }
  }
  block.push(
    ...op.get(accumulate), ...op.ifElse(loadBlock, zeroBlock),
    // ap = a + i·aRow, bp = b + j·4, kk = k
    ...op.get(a), ...op.get(i), ...op.get(aRow), ...op.mul, ...op.add, ...op.set(ap),
    ...op.get(b), ...op.get(j), ...op.i32(4), ...op.mul, ...op.add, ...op.set(bp),
    ...op.get(k), ...op.set(kk),
    ...op.loop(kStep),
  );
  for (let r = 0; r < GEMM_ROWS; r++) {
    if (r > 0) block.push(...op.get(cp), ...op.get(n4), ...op.add, ...op.set(cp));
    block.push(...op.get(cp), ...op.get(acc[2 * r]!), ...op.v128Store(0));
    block.push(...op.get(cp), ...op.get(acc[2 * r + 1]!), ...op.v128Store(16));
  }
  block.push(...op.get(j), ...op.i32(GEMM_COLS), ...op.add, ...op.tee(j), ...op.get(n), ...op.ltU, ...op.brIf(0));

  const rowBlocks = [
    ...op.i32(0), ...op.set(j),
    ...op.loop(block),
    ...op.get(i), ...op.i32(GEMM_ROWS), ...op.add, ...op.tee(i), ...op.get(m), ...op.ltU, ...op.brIf(0),
  ];
  const slices = [
    ...op.i32(0), ...op.set(i),
    ...op.loop(rowBlocks),
    ...op.get(a), ...op.get(strideA), ...op.add, ...op.set(a),
    ...op.get(b), ...op.get(strideB), ...op.add, ...op.set(b),
    ...op.get(c), ...op.get(strideC), ...op.add, ...op.set(c),
    ...op.get(s), ...op.i32(1), ...op.add, ...op.tee(s), ...op.get(count), ...op.ltU, ...op.brIf(0),
  ];
  const code = [
    ...op.get(aRow), ...op.get(aRow), ...op.add, ...op.set(aRow2),
    ...op.get(aRow2), ...op.get(aRow), ...op.add, ...op.set(aRow3),
    ...op.get(n), ...op.i32(4), ...op.mul, ...op.set(n4),
    ...op.i32(0), ...op.set(s),
    ...op.loop(slices),
  ];
  return { params: 13, locals: [[10, I32], [11, V128]], code };
}

/**
 * The body of the exported function: gemm over chunks of kc steps of k, the first chunk
 * writing C and the others adding to it, so that a chunk of B stays in cache while every block
 * of rows reads it (long k, as in weight gradients, would otherwise stream B from memory once
 * per block of rows).
 */
function gemmChunks(): FunctionDef {
  const [a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [k0, rest] = [13, 14];
  const chunk = [
    ...op.get(k), ...op.get(k0), ...op.sub, ...op.set(rest),
    ...op.get(a), ...op.get(k0), ...op.get(aStep), ...op.mul, ...op.add,
    ...op.get(b), ...op.get(k0), ...op.get(n), ...op.mul, ...op.i32(4), ...op.mul, ...op.add,
    ...op.get(c), ...op.get(m),
    ...op.get(kc), ...op.get(rest), ...op.get(rest), ...op.get(kc), ...op.gtU, ...op.select, // min(kc, rest)
    ...op.get(n), ...op.get(count), ...op.get(strideA), ...op.get(strideB), ...op.get(strideC), ...op.get(aRow), ...op.get(aStep),
    ...op.get(k0), // accumulate after the first chunk
    ...op.call(0),
    ...op.get(k0), ...op.get(kc), ...op.add, ...op.tee(k0), ...op.get(k), ...op.ltU, ...op.brIf(0),
  ];
  return { params: 13, locals: [[2, I32]], code: [...op.i32(0), ...op.set(k0), ...op.loop(chunk)], export: 'gemm' };
}

/** The module's bytes, over a shared memory or an ordinary one. */
export function gemmModuleBytes(opts: { shared: boolean }): Uint8Array {
  return moduleBytes({ shared: opts.shared, functions: [gemmBlocks(), gemmChunks()] });
}

/** gemm(a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc), addresses and strides in bytes. */
export type GemmFunction = (
  a: number, b: number, c: number, m: number, k: number, n: number,
  count: number, strideA: number, strideB: number, strideC: number, aRow: number, aStep: number, kc: number,
) => void;

/** True when the kernel can take an [m, k]·[k, n] product. */
export function gemmFits(dims: { m: number; k: number; n: number }): boolean {
  return dims.m % GEMM_ROWS === 0 && dims.n % GEMM_COLS === 0 && dims.m > 0 && dims.n > 0 && dims.k > 0;
}

export function gemmModule(opts: { shared: boolean }): WasmModule {
  return compileOnce('gemm', opts.shared, (shared) => gemmModuleBytes({ shared }));
}

/** The kernel over `memory` (shared or not). */
export function instantiateGemm(memory: WasmMemory): GemmFunction {
  return instantiate(gemmModule({ shared: isShared(memory) }), memory).gemm as GemmFunction;
}
