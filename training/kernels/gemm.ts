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
 * [k, m] (aRow = 4, aStep = 4m), with no copy. n must be a multiple of 4. The inner loop keeps
 * a 4×8 block of C in eight f32x4 registers and walks k, splatting one value of A per row and
 * loading one row of B as two vectors; the rows and columns left over (m mod 4, n mod 8) go to
 * blocks of one row or four columns. k is walked in chunks of kc (see GEMM_KC).
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

/**
 * An inner function: C[:, 0:cols] of the product for m rows (a multiple of `rows`) and cols
 * columns (a multiple of `cols`), with B and C rows n floats apart. Its parameters are gemm's
 * with `accumulate` (add to C instead of writing it) in place of kc, then `cols`.
 */
function gemmBlocks(shape: { rows: number; cols: number }): FunctionDef {
  const vectors = shape.cols / 4; // per row of the block
  // Parameters 0–13, then locals.
  const [a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, accumulate, cols] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
  const [s, i, j, kk, ap, bp, cp, n4, aRow2, aRow3] = [14, 15, 16, 17, 18, 19, 20, 21, 22, 23];
  const firstVector = 24;
  // acc[r·vectors + v]: row r, columns 4v to 4v + 3 of the block; then B's vectors, then A's splat.
  const acc = Array.from({ length: shape.rows * vectors }, (_, q) => firstVector + q);
  const bv = Array.from({ length: vectors }, (_, v) => firstVector + acc.length + v);
  const x = firstVector + acc.length + vectors;

  const rowAddress = (r: number): number[] =>
    r === 0 ? op.get(ap) : [...op.get(ap), ...op.get([0, aRow, aRow2, aRow3][r]!), ...op.add];
  const kStep: number[] = [];
  bv.forEach((local, v) => kStep.push(...op.get(bp), ...op.v128Load(16 * v), ...op.set(local)));
  for (let r = 0; r < shape.rows; r++) {
    kStep.push(...rowAddress(r), ...op.v128Load32Splat(), ...op.set(x));
    bv.forEach((local, v) => {
      const target = acc[r * vectors + v]!;
      kStep.push(...op.get(target), ...op.get(x), ...op.get(local), ...op.f32x4Mul, ...op.f32x4Add, ...op.set(target));
    });
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
  for (let r = 0; r < shape.rows; r++) {
    for (let v = 0; v < vectors; v++) {
      const address = [...op.get(cp), ...(r > 0 ? [...op.i32(r), ...op.get(n4), ...op.mul, ...op.add] : [])];
      loadBlock.push(...address, ...op.v128Load(16 * v), ...op.set(acc[r * vectors + v]!));
      zeroBlock.push(...op.v128Zero, ...op.set(acc[r * vectors + v]!));
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
  for (let r = 0; r < shape.rows; r++) {
    if (r > 0) block.push(...op.get(cp), ...op.get(n4), ...op.add, ...op.set(cp));
    for (let v = 0; v < vectors; v++) block.push(...op.get(cp), ...op.get(acc[r * vectors + v]!), ...op.v128Store(16 * v));
  }
  block.push(...op.get(j), ...op.i32(shape.cols), ...op.add, ...op.tee(j), ...op.get(cols), ...op.ltU, ...op.brIf(0));

  const rowBlocks = [
    ...op.i32(0), ...op.set(j),
    ...op.loop(block),
    ...op.get(i), ...op.i32(shape.rows), ...op.add, ...op.tee(i), ...op.get(m), ...op.ltU, ...op.brIf(0),
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
  return { params: 14, locals: [[10, I32], [acc.length + vectors + 1, V128]], code };
}

/** The inner functions, by index in the module: whole blocks, then the rows and columns left over. */
const BLOCK_SHAPES = [
  { rows: GEMM_ROWS, cols: GEMM_COLS },
  { rows: GEMM_ROWS, cols: 4 },
  { rows: 1, cols: GEMM_COLS },
  { rows: 1, cols: 4 },
];

/**
 * The body of the exported function: gemm over chunks of kc steps of k, the first chunk
 * writing C and the others adding to it, so that a chunk of B stays in cache while every block
 * of rows reads it (long k, as in weight gradients, would otherwise stream B from memory once
 * per block of rows). In each chunk the 4×8 blocks cover all but the last m mod 4 rows and
 * n mod 8 columns; blocks of 4 columns and of single rows cover those.
 */
function gemmChunks(): FunctionDef {
  const [a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  // m4, n8: m and n rounded down to whole blocks; mt, nt: the rows and columns left over.
  const [k0, len, m4, n8, mt, nt] = [13, 14, 15, 16, 17, 18];
  /** The inner function `func` over the left-over rows (`row`) or columns (`col`), or the whole blocks. */
  const call = (func: number, o: { row: boolean; col: boolean }): number[] => [
    // a + k0·aStep (+ m4·aRow)
    ...op.get(a), ...op.get(k0), ...op.get(aStep), ...op.mul, ...op.add,
    ...(o.row ? [...op.get(m4), ...op.get(aRow), ...op.mul, ...op.add] : []),
    // b + k0·n·4 (+ n8·4)
    ...op.get(b), ...op.get(k0), ...op.get(n), ...op.mul, ...op.i32(4), ...op.mul, ...op.add,
    ...(o.col ? [...op.get(n8), ...op.i32(4), ...op.mul, ...op.add] : []),
    // c (+ m4·n·4) (+ n8·4)
    ...op.get(c),
    ...(o.row ? [...op.get(m4), ...op.get(n), ...op.mul, ...op.i32(4), ...op.mul, ...op.add] : []),
    ...(o.col ? [...op.get(n8), ...op.i32(4), ...op.mul, ...op.add] : []),
    // rows, k, n, count, strides, aRow, aStep, accumulate (after the first chunk), cols
    ...op.get(o.row ? mt : m4),
    ...op.get(len), ...op.get(n), ...op.get(count), ...op.get(strideA), ...op.get(strideB), ...op.get(strideC), ...op.get(aRow), ...op.get(aStep),
    ...op.get(k0),
    ...op.get(o.col ? nt : n8),
    ...op.call(func),
  ];
  const chunk = [
    ...op.get(k), ...op.get(k0), ...op.sub, ...op.set(len),
    ...op.get(kc), ...op.get(len), ...op.get(len), ...op.get(kc), ...op.gtU, ...op.select, ...op.set(len), // min(kc, k − k0)
  ];
  // Each inner function where its rows and its columns are not empty.
  BLOCK_SHAPES.forEach((shape, func) => {
    const o = { row: shape.rows !== GEMM_ROWS, col: shape.cols !== GEMM_COLS };
    chunk.push(...op.get(o.row ? mt : m4), ...op.when([...op.get(o.col ? nt : n8), ...op.when(call(func, o))]));
  });
  chunk.push(...op.get(k0), ...op.get(kc), ...op.add, ...op.tee(k0), ...op.get(k), ...op.ltU, ...op.brIf(0));
  const code = [
    ...op.get(m), ...op.i32(-GEMM_ROWS), ...op.and, ...op.set(m4),
    ...op.get(n), ...op.i32(-GEMM_COLS), ...op.and, ...op.set(n8),
    ...op.get(m), ...op.get(m4), ...op.sub, ...op.set(mt),
    ...op.get(n), ...op.get(n8), ...op.sub, ...op.set(nt),
    ...op.i32(0), ...op.set(k0),
    ...op.loop(chunk),
  ];
  return { params: 13, locals: [[6, I32]], code, export: 'gemm' };
}

/** The module's bytes, over a shared memory or an ordinary one. */
export function gemmModuleBytes(opts: { shared: boolean }): Uint8Array {
  return moduleBytes({ shared: opts.shared, functions: [...BLOCK_SHAPES.map(gemmBlocks), gemmChunks()] });
}

/** gemm(a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc), addresses and strides in bytes. */
export type GemmFunction = (
  a: number, b: number, c: number, m: number, k: number, n: number,
  count: number, strideA: number, strideB: number, strideC: number, aRow: number, aStep: number, kc: number,
) => void;

/** True when the kernel can take an [m, k]·[k, n] product: any sizes, n a multiple of 4. */
export function gemmFits(dims: { m: number; k: number; n: number }): boolean {
  return dims.m > 0 && dims.k > 0 && dims.n > 0 && dims.n % 4 === 0;
}

export function gemmModule(opts: { shared: boolean }): WasmModule {
  return compileOnce('gemm', opts.shared, (shared) => gemmModuleBytes({ shared }));
}

/** The kernel over `memory` (shared or not). */
export function instantiateGemm(memory: WasmMemory): GemmFunction {
  return instantiate(gemmModule({ shared: isShared(memory) }), memory).gemm as GemmFunction;
}
