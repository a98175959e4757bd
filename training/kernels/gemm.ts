/**
 * A batched matrix product in wasm SIMD for the wasm backend's BatchMatMul. XNNPACK (inside
 * tfjs) runs batched products one operator per slice, each repacking its right operand, on one
 * thread — the attention heads' B·nh small products, e.g. [128, 32]·[32, 128] — and needs a
 * transposed left operand transposed physically first (weight gradients). This kernel reads both
 * straight from the tfjs heap (it imports the backend's memory), and a caller can split the work
 * between threads that share that memory (./gemm-pool.ts).
 *
 * The module (written with ./wasm-emit.ts) is small: one exported function,
 *   gemm(a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc, pack, packA)
 * which for s in [0, count) sets C_s[m, n] = A_s[m, k] · B_s[k, n], float32, with A_s at byte
 * address a + s·strideA (and likewise B_s, C_s). B and C are row-major; A's element (i, p) is at
 * A_s + i·aRow + p·aStep, so A is read row-major (aRow = 4k, aStep = 4) or transposed, stored
 * [k, m] (aRow = 4, aStep = 4m), with no copy. n must be a multiple of 4. The inner loop keeps
 * a 4×8 block of C in eight f32x4 registers and walks k, splatting one value of A per row and
 * loading one row of B as two vectors; the rows and columns left over (m mod 4, n mod 8) go to
 * blocks of one row or four columns. k is walked in chunks of kc (see GEMM_KC), and B's strips
 * may be packed first (see gemmChunks).
 *
 * Where the runtime validates relaxed SIMD (./relaxed-simd.ts) each multiply-add is one
 * f32x4.relaxed_madd, which x64 V8 emits as vfmadd231ps: the block then costs 8 FMAs, 2 loads
 * of B and 4 broadcasts of A per step of k, against 8 multiplies and 8 adds, and the loop runs
 * at the rate of the two FMA pipes instead of the front end. Larger blocks do not fit: 6×8 (12
 * accumulators), 5×8, 4×12 and 3×16 ran at 22–33 GFLOPS against 46–53 for 4×8, because V8
 * loads every broadcast of a step before the first FMA and so spills accumulators past x64's 16
 * vector registers (V8 keeps one as scratch). relaxed_madd may or may not round once; either
 * way every thread runs the same compiled code on the same CPU, so a split product gives the
 * same bits as one thread.
 *
 * One thread, on the products of the reference training config (CPU time, a loaded machine):
 * 34–43 GFLOPS with multiply and add, 43–53 with relaxed_madd and packing; XNNPACK reached
 * 14–20 on the per-head slices and 21–34 on the rest. A register-only loop of 8 or 12
 * independent f32x4 accumulators peaks near 58 GFLOPS on this Zen 4 either way (its two add
 * pipes are apart from the two FMA pipes), so 128-bit wasm SIMD tops out there.
 */
import { compileOnce, instantiate, isShared, moduleBytes, op, I32, V128, type FunctionDef, type WasmMemory, type WasmModule } from './wasm-emit.js';
import { fmaKernels } from './relaxed-simd.js';

/** Rows and columns of the block of C held in registers. */
export const GEMM_ROWS = 4;
export const GEMM_COLS = 8;
/**
 * Steps of k per chunk. Weight gradients (k = B·T = 2048) ran at 23–27 GFLOPS in one chunk
 * and 33–36 in chunks of 32 to 256; 256 leaves attention products (k ≤ T) in one chunk.
 */
export const GEMM_KC = 256;

/** Bytes of packing space a call with `pack` needs for n columns (see gemm). */
export function gemmPackBytes(n: number): number {
  return GEMM_KC * (n - (n % GEMM_COLS)) * 4;
}

/** Bytes of packing space a call with `packA` needs: one strip of GEMM_ROWS rows of A, GEMM_KC steps long. */
export const GEMM_PACK_A_BYTES = GEMM_KC * GEMM_ROWS * 4;

/**
 * An inner function: C[:, 0:cols] of one slice's product for m rows (a multiple of `rows`) and
 * cols columns (a multiple of `cols`) over k steps. Parameters, addresses and strides in bytes:
 *   (a, b, c, m, k, aRow, aStep, bCol, bStep, cRow, accumulate, cols)
 * A's element (i, p) at a + i·aRow + p·aStep; B's (p, j + q) at b + j·bCol + p·bStep + q·4 for
 * j a multiple of `cols` and q < cols; C's (i, j) at c + i·cRow + j·4. `accumulate`: add to C
 * instead of writing it. `fma`: each multiply-add as one relaxed_madd.
 */
function gemmBlocks(shape: { rows: number; cols: number; fma: boolean }): FunctionDef {
  const vectors = shape.cols / 4; // per row of the block
  const [a, b, c, m, k, aRow, aStep, bCol, bStep, cRow, accumulate, cols] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const [i, j, kk, ap, bp, cp, row] = [12, 13, 14, 15, 16, 17, 18];
  const firstVector = 19;
  // acc[r·vectors + v]: row r, columns 4v to 4v + 3 of the block; then B's vectors, then A's splat.
  const acc = Array.from({ length: shape.rows * vectors }, (_, q) => firstVector + q);
  const bv = Array.from({ length: vectors }, (_, v) => firstVector + acc.length + v);
  const x = firstVector + acc.length + vectors;

  const kStep: number[] = [];
  bv.forEach((local, v) => kStep.push(...op.get(bp), ...op.v128Load(16 * v), ...op.set(local)));
  for (let r = 0; r < shape.rows; r++) {
    // Row r of A at ap + r·aRow, each row's address from the one before.
    const address = r === 0 ? op.get(ap) : [...op.get(r === 1 ? ap : row), ...op.get(aRow), ...op.add, ...op.tee(row)];
    kStep.push(...address, ...op.v128Load32Splat(), ...op.set(x));
    bv.forEach((local, v) => {
      const target = acc[r * vectors + v]!;
      kStep.push(
        ...(shape.fma
          ? [...op.get(x), ...op.get(local), ...op.get(target), ...op.f32x4RelaxedMadd]
          : [...op.get(target), ...op.get(x), ...op.get(local), ...op.f32x4Mul, ...op.f32x4Add]),
        ...op.set(target),
      );
    });
  }
  kStep.push(
    ...op.get(ap), ...op.get(aStep), ...op.add, ...op.set(ap),
    ...op.get(bp), ...op.get(bStep), ...op.add, ...op.set(bp),
    ...op.get(kk), ...op.i32(1), ...op.sub, ...op.tee(kk), ...op.brIf(0),
  );

  // The block's first row in C: cp = c + i·cRow + j·4.
  const block: number[] = [
    ...op.get(c), ...op.get(i), ...op.get(cRow), ...op.mul, ...op.add, ...op.get(j), ...op.i32(4), ...op.mul, ...op.add, ...op.set(cp),
  ];
  // Start from C's values (accumulate) or from zero.
  const loadBlock: number[] = [];
  const zeroBlock: number[] = [];
  for (let r = 0; r < shape.rows; r++) {
    for (let v = 0; v < vectors; v++) {
      const address = [...op.get(cp), ...(r > 0 ? [...op.i32(r), ...op.get(cRow), ...op.mul, ...op.add] : [])];
      loadBlock.push(...address, ...op.v128Load(16 * v), ...op.set(acc[r * vectors + v]!));
      zeroBlock.push(...op.v128Zero, ...op.set(acc[r * vectors + v]!));
    }
  }
  block.push(
    ...op.get(accumulate), ...op.ifElse(loadBlock, zeroBlock),
    // ap = a + i·aRow, bp = b + j·bCol, kk = k
    ...op.get(a), ...op.get(i), ...op.get(aRow), ...op.mul, ...op.add, ...op.set(ap),
    ...op.get(b), ...op.get(j), ...op.get(bCol), ...op.mul, ...op.add, ...op.set(bp),
    ...op.get(k), ...op.set(kk),
    ...op.loop(kStep),
  );
  for (let r = 0; r < shape.rows; r++) {
    if (r > 0) block.push(...op.get(cp), ...op.get(cRow), ...op.add, ...op.set(cp));
    for (let v = 0; v < vectors; v++) block.push(...op.get(cp), ...op.get(acc[r * vectors + v]!), ...op.v128Store(16 * v));
  }
  block.push(...op.get(j), ...op.i32(shape.cols), ...op.add, ...op.tee(j), ...op.get(cols), ...op.ltU, ...op.brIf(0));

  const code = [
    ...op.i32(0), ...op.set(i),
    ...op.loop([
      ...op.i32(0), ...op.set(j),
      ...op.loop(block),
      ...op.get(i), ...op.i32(shape.rows), ...op.add, ...op.tee(i), ...op.get(m), ...op.ltU, ...op.brIf(0),
    ]),
  ];
  return { params: 12, locals: [[7, I32], [acc.length + vectors + 1, V128]], code };
}

/**
 * pack(src, k, cols, srcRow, dst): the first `cols` columns (a multiple of `width`) of k rows
 * srcRow bytes apart, copied to dst as strips of `width` columns, each strip k rows of `width`
 * floats one after the other — so that a block walks one strip front to back.
 */
function packStrips(width: number): FunctionDef {
  const [src, k, cols, srcRow, dst] = [0, 1, 2, 3, 4];
  const [p, j, from, to, strip] = [5, 6, 7, 8, 9];
  const copy: number[] = [];
  for (let v = 0; v < width / 4; v++) copy.push(...op.get(to), ...op.get(from), ...op.v128Load(16 * v), ...op.v128Store(16 * v));
  copy.push(
    ...op.get(from), ...op.i32(width * 4), ...op.add, ...op.set(from),
    ...op.get(to), ...op.get(strip), ...op.add, ...op.set(to),
    ...op.get(j), ...op.i32(width), ...op.add, ...op.tee(j), ...op.get(cols), ...op.ltU, ...op.brIf(0),
  );
  const rows = [
    // from = src + p·srcRow, to = dst + p·width·4, j = 0
    ...op.get(src), ...op.get(p), ...op.get(srcRow), ...op.mul, ...op.add, ...op.set(from),
    ...op.get(dst), ...op.get(p), ...op.i32(width * 4), ...op.mul, ...op.add, ...op.set(to),
    ...op.i32(0), ...op.set(j),
    ...op.loop(copy),
    ...op.get(p), ...op.i32(1), ...op.add, ...op.tee(p), ...op.get(k), ...op.ltU, ...op.brIf(0),
  ];
  const code = [
    ...op.get(k), ...op.i32(width * 4), ...op.mul, ...op.set(strip),
    ...op.i32(0), ...op.set(p),
    ...op.loop(rows),
  ];
  return { params: 5, locals: [[5, I32]], code };
}

/** The functions of the module by index: the blocks (4×8, 4×4, 1×8, 1×4), packStrips for B and for A, gemm. */
const BLOCK_SHAPES = [
  { rows: GEMM_ROWS, cols: GEMM_COLS },
  { rows: GEMM_ROWS, cols: 4 },
  { rows: 1, cols: GEMM_COLS },
  { rows: 1, cols: 4 },
];
const PACK_B = BLOCK_SHAPES.length;
const PACK_A = PACK_B + 1;

/**
 * The exported function, slice by slice: gemm over chunks of kc steps of k, the first chunk
 * writing C and the others adding to it, so that a chunk of B stays in cache while every block
 * of rows reads it (long k, as in weight gradients, would otherwise stream B from memory once
 * per block of rows). In each chunk the 4×8 blocks cover all but the last m mod 4 rows and
 * n mod 8 columns; blocks of 4 columns and of single rows cover those.
 *
 * With `pack` (not 0), each chunk of B's whole strips of 8 columns is first copied to `pack`,
 * strip after strip (packStrips). Read in place, a strip touches a new cache line at every step
 * of k, and with rows 256 or more floats apart those lines fall into a few cache sets that evict
 * each other: on 512 columns the products ran at 36–46 GFLOPS in place and 43–52 packed; on 128
 * columns or fewer packing gained nothing (see PACK_MIN_COLS in ./gemm-pool.ts).
 *
 * With `packA` (not 0; A transposed, aRow = 4), the whole blocks run block of rows by block of
 * rows, each first copying its strip of this chunk of A — len steps of 4 adjacent floats, aStep
 * bytes apart — to `packA`, 16 bytes a step. Read in place, every step of k is a new cache line
 * and, with aStep = 4 KiB (a vocabulary of 1024), a new page in the same cache set, and every
 * block of columns reads the strip again: the tied embedding's gradient ran at half the speed of
 * the same product with A untransposed. Packed, only the copy reads those lines (see
 * PACK_A_MIN_COLS in ./gemm-pool.ts for where it pays). The rows left over read A in place.
 */
function gemmChunks(): FunctionDef {
  const [a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc, pack, packA] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
  // m4, n8: m and n rounded down to whole blocks; mt, nt: the rows and columns left over;
  // row: the first row of the block whose strip of A is packed.
  const [s, k0, len, m4, n8, mt, nt, n4, row] = [15, 16, 17, 18, 19, 20, 21, 22, 23];
  /** `ifTrue` when local `flag` is not 0, else `ifFalse` (both evaluated: plain arithmetic). */
  const choose = (flag: number, ifTrue: number[], ifFalse: number[]): number[] => [...ifTrue, ...ifFalse, ...op.get(flag), ...op.select];
  const lenBytes = [...op.get(len), ...op.i32(4), ...op.mul];
  /**
   * The inner function `func` over the left-over rows (`row`) or columns (`col`), or the whole
   * blocks; with `packedA`, over the one block of rows whose strip of A is packed at packA.
   */
  const call = (func: number, o: { row: boolean; col: boolean; packedA?: boolean }): number[] => {
    // A at a + k0·aStep (+ m4·aRow); B in place at b + k0·n·4 (+ n8·4), or its packed strips
    // (whole blocks only) 8·len floats apart, their rows 8 floats apart.
    const aInPlace = [...op.get(a), ...op.get(k0), ...op.get(aStep), ...op.mul, ...op.add, ...(o.row ? [...op.get(m4), ...op.get(aRow), ...op.mul, ...op.add] : [])];
    const bInPlace = [...op.get(b), ...op.get(k0), ...op.get(n4), ...op.mul, ...op.add, ...(o.col ? [...op.get(n8), ...op.i32(4), ...op.mul, ...op.add] : [])];
    return [
      ...(o.packedA ? op.get(packA) : aInPlace),
      ...(o.col ? bInPlace : choose(pack, op.get(pack), bInPlace)),
      // c (+ m4·n·4 | row·n·4) (+ n8·4)
      ...op.get(c),
      ...(o.row ? [...op.get(m4), ...op.get(n4), ...op.mul, ...op.add] : []),
      ...(o.packedA ? [...op.get(row), ...op.get(n4), ...op.mul, ...op.add] : []),
      ...(o.col ? [...op.get(n8), ...op.i32(4), ...op.mul, ...op.add] : []),
      ...(o.packedA ? op.i32(GEMM_ROWS) : op.get(o.row ? mt : m4)), ...op.get(len),
      // aRow, aStep: a packed strip holds the block's GEMM_ROWS values of each step of k side by side.
      ...(o.packedA ? [...op.i32(4), ...op.i32(GEMM_ROWS * 4)] : [...op.get(aRow), ...op.get(aStep)]),
      // bCol, bStep
      ...(o.col ? op.i32(4) : choose(pack, lenBytes, op.i32(4))),
      ...(o.col ? op.get(n4) : choose(pack, op.i32(GEMM_COLS * 4), op.get(n4))),
      // cRow, accumulate (after the first chunk), cols
      ...op.get(n4), ...op.get(k0), ...op.get(o.col ? nt : n8),
      ...op.call(func),
    ];
  };
  const chunk = [
    ...op.get(k), ...op.get(k0), ...op.sub, ...op.set(len),
    ...op.get(kc), ...op.get(len), ...op.get(len), ...op.get(kc), ...op.gtU, ...op.select, ...op.set(len), // min(kc, k − k0)
    // pack(src, k, cols, srcRow, dst): B's rows k0 to k0 + len.
    ...op.get(pack), ...op.when([...op.get(n8), ...op.when([
      ...op.get(b), ...op.get(k0), ...op.get(n4), ...op.mul, ...op.add, ...op.get(len), ...op.get(n8), ...op.get(n4), ...op.get(pack), ...op.call(PACK_B),
    ])]),
  ];
  // With packA: block by block of rows, the block's strip of this chunk of A copied to packA
  // (packStrips: len rows of GEMM_ROWS floats, from a + k0·aStep + row·4, aStep bytes apart),
  // then the whole blocks and the columns left over on it.
  const packedBlocks = [
    ...op.i32(0), ...op.set(row),
    ...op.loop([
      ...op.get(a), ...op.get(k0), ...op.get(aStep), ...op.mul, ...op.add, ...op.get(row), ...op.i32(4), ...op.mul, ...op.add,
      ...op.get(len), ...op.i32(GEMM_ROWS), ...op.get(aStep), ...op.get(packA), ...op.call(PACK_A),
      ...op.get(n8), ...op.when(call(0, { row: false, col: false, packedA: true })),
      ...op.get(nt), ...op.when(call(1, { row: false, col: true, packedA: true })),
      ...op.get(row), ...op.i32(GEMM_ROWS), ...op.add, ...op.tee(row), ...op.get(m4), ...op.ltU, ...op.brIf(0),
    ]),
  ];
  // Otherwise each inner function where its rows and its columns are not empty; the rows left
  // over read A in place either way.
  const blocks = (rows: boolean): number[] =>
    BLOCK_SHAPES.flatMap((shape, func) => {
      const o = { row: shape.rows !== GEMM_ROWS, col: shape.cols !== GEMM_COLS };
      return o.row === rows ? [...op.get(o.col ? nt : n8), ...op.when(call(func, o))] : [];
    });
  chunk.push(
    ...op.get(m4), ...op.when([...op.get(packA), ...op.ifElse(packedBlocks, blocks(false))]),
    ...op.get(mt), ...op.when(blocks(true)),
  );
  chunk.push(...op.get(k0), ...op.get(kc), ...op.add, ...op.tee(k0), ...op.get(k), ...op.ltU, ...op.brIf(0));
  const slices = [
    ...op.i32(0), ...op.set(k0),
    ...op.loop(chunk),
    ...op.get(a), ...op.get(strideA), ...op.add, ...op.set(a),
    ...op.get(b), ...op.get(strideB), ...op.add, ...op.set(b),
    ...op.get(c), ...op.get(strideC), ...op.add, ...op.set(c),
    ...op.get(s), ...op.i32(1), ...op.add, ...op.tee(s), ...op.get(count), ...op.ltU, ...op.brIf(0),
  ];
  const code = [
    ...op.get(m), ...op.i32(-GEMM_ROWS), ...op.and, ...op.set(m4),
    ...op.get(n), ...op.i32(-GEMM_COLS), ...op.and, ...op.set(n8),
    ...op.get(m), ...op.get(m4), ...op.sub, ...op.set(mt),
    ...op.get(n), ...op.get(n8), ...op.sub, ...op.set(nt),
    ...op.get(n), ...op.i32(4), ...op.mul, ...op.set(n4),
    ...op.i32(0), ...op.set(s),
    ...op.loop(slices),
  ];
  return { params: 15, locals: [[9, I32]], code, export: 'gemm' };
}

/** The module's bytes, over a shared memory or an ordinary one, with relaxed_madd or without. */
export function gemmModuleBytes(opts: { shared: boolean; fma: boolean }): Uint8Array {
  return moduleBytes({
    shared: opts.shared,
    functions: [...BLOCK_SHAPES.map((shape) => gemmBlocks({ ...shape, fma: opts.fma })), packStrips(GEMM_COLS), packStrips(GEMM_ROWS), gemmChunks()],
  });
}

/**
 * gemm(a, b, c, m, k, n, count, strideA, strideB, strideC, aRow, aStep, kc, pack, packA): for s
 * in [0, count), C_s[m, n] = A_s[m, k] · B_s[k, n] (see the top of this file); addresses and
 * strides in bytes. `pack`: 0, or the address of gemmPackBytes(n) bytes of scratch this call
 * may overwrite (kc at most GEMM_KC). `packA`: 0, or, for a transposed A only (aRow = 4), the
 * address of GEMM_PACK_A_BYTES bytes of scratch of its own.
 */
export type GemmFunction = (
  a: number, b: number, c: number, m: number, k: number, n: number,
  count: number, strideA: number, strideB: number, strideC: number, aRow: number, aStep: number, kc: number, pack: number, packA: number,
) => void;

/** True when the kernel can take an [m, k]·[k, n] product: any sizes, n a multiple of 4. */
export function gemmFits(dims: { m: number; k: number; n: number }): boolean {
  return dims.m > 0 && dims.k > 0 && dims.n > 0 && dims.n % 4 === 0;
}

/** The compiled kernel; `fma` defaults to what this runtime can run (see ./relaxed-simd.ts). */
export function gemmModule(opts: { shared: boolean; fma?: boolean }): WasmModule {
  const fma = opts.fma ?? fmaKernels();
  return compileOnce(fma ? 'gemm-fma' : 'gemm', opts.shared, (shared) => gemmModuleBytes({ shared, fma }));
}

/** The exported function of `module` over `memory`. */
export function instantiateGemm(module: WasmModule, memory: WasmMemory): GemmFunction {
  return instantiate(module, memory).gemm as GemmFunction;
}

/** The kernel over `memory` (shared or not), as this runtime builds it. */
export function gemmOver(memory: WasmMemory, opts: { fma?: boolean } = {}): GemmFunction {
  return instantiateGemm(gemmModule({ shared: isShared(memory), fma: opts.fma }), memory);
}
