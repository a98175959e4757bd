/**
 * Element-wise and row-wise wasm SIMD kernels over the tfjs heap that the matrix product's pool
 * (./gemm-pool.ts) splits across its threads: after the products moved to two threads, these
 * were the work left on one (CPU time per training step at batch 8, one thread: Multiply,
 * Add and Sub of [2048, 512]- and [8, 4, 256, 256]-sized tensors ~25 ms, Softmax 6, its
 * gradient's four kernels ~4, the loss's row Max 3, Sigmoid 2).
 *
 * - binary_<op>(x, y, out, outer, mid, inner): x and out [outer, mid, inner], y [outer, inner]
 *   read for every mid (mid = 1: equal shapes; the attention mask [B, 1, T, T] added to the
 *   scores [B, nh, T, T]); binary_<op>_reversed computes y op x;
 * - scalar_<op>(x, s, out, count): x op s[0] (s the address of one float); _reversed s op x;
 * - softmax(src, dst, rows, n): each row's exp(x − max) · (1 / Σ), in three passes over the row;
 * - softmaxGrad(dy, y, out, rows, n): out = dy·y − (Σ_row dy·y)·y, tfjs's Softmax gradient in
 *   one kernel instead of four;
 * - rowMax(src, dst, rows, n): dst[r] = max_j src[r, j];
 * - sigmoid(x, out, count): e / (1 + e), e = exp(−|x|), and 1 minus that where x ≥ 0.
 *
 * Addresses in bytes; n, inner and count multiples of 4. exp is Cephes' expf in f32x4 (a
 * degree-5 polynomial after reducing by ln 2, ~1 ulp), 0 below −87.33 (where e^x leaves the
 * normal floats; the attention mask's −1e9 gives exactly 0), +88 at most. Each row, or each
 * value, is computed by one thread with the same code however the work is split, so results do
 * not depend on the thread count.
 */
import { compileOnce, instantiate, isShared, moduleBytes, op, I32, V128, type FunctionDef, type WasmMemory, type WasmModule } from './wasm-emit.js';

/** The binary ops, by the f32x4 instruction that computes them. */
const BINARY_OPS = { add: op.f32x4Add, sub: op.f32x4Sub, mul: op.f32x4Mul, div: op.f32x4Div } as const;
export type BinaryOp = keyof typeof BINARY_OPS;

/**
 * e^x for x ≤ 0 as XNNPACK computes it (its f32 "rr2_p5" kernels): x = k·ln 2 + t with ln 2 in
 * two parts, e^t ≈ 1 + t·p(t) with p of degree 4, 2^k written into the exponent bits; 0 below
 * EXP_CUTOFF, where e^x leaves the normal floats. k is rounded by adding ROUNDING, whose low
 * mantissa bits then hold k + 127: shifted by 23 they are 2^k. The constants are XNNPACK's
 * (hexadecimal floats there; exactly these float32 values).
 */
const EXP_CONSTANTS = {
  log2e: 1.4426950216293335,
  /** 1.5·2²³ + 127 */
  rounding: 12583039,
  minusLn2Hi: -0.693145751953125,
  minusLn2Lo: -1.428606765330187e-6,
  c5: 0.008289290592074394,
  c4: 0.04189782217144966,
  c3: 0.16667652130126953,
  c2: 0.4999915063381195,
  c1: 0.9999997019767761,
  cutoff: -87.33654022216797,
};
/** v128 locals exp takes: its constants (set by expConstants), then 3 scratch. */
const EXP_LOCALS = Object.keys(EXP_CONSTANTS).length + 3;

/** Code setting exp's constant locals from `first`; run once, before the loops (V8 builds a v128.const anew each time it runs). */
function expConstants(first: number): number[] {
  return Object.values(EXP_CONSTANTS).flatMap((value, i) => [...op.f32x4Const(value), ...op.set(first + i)]);
}

/** Code leaving e^x on the stack, x ≤ 0 (or NaN) in v128 local `x`; exp's locals from `first` (EXP_LOCALS of them). */
function exp(x: number, first: number): number[] {
  const [log2e, rounding, minusLn2Hi, minusLn2Lo, c5, c4, c3, c2, c1, cutoff] = Object.keys(EXP_CONSTANTS).map((_, i) => op.get(first + i));
  const scratch = first + Object.keys(EXP_CONSTANTS).length;
  const [n, s, t] = [scratch, scratch + 1, scratch + 2];
  const horner = (coefficient: number[]): number[] => [...op.get(t), ...op.f32x4Mul, ...coefficient, ...op.f32x4Add];
  return [
    // n = x·log2 e + ROUNDING; s = 2^k; n = k
    ...op.get(x), ...log2e!, ...op.f32x4Mul, ...rounding!, ...op.f32x4Add, ...op.tee(n), ...op.i32(23), ...op.i32x4Shl, ...op.set(s),
    ...op.get(n), ...rounding!, ...op.f32x4Sub, ...op.set(n),
    // t = x − k·ln 2
    ...op.get(n), ...minusLn2Hi!, ...op.f32x4Mul, ...op.get(x), ...op.f32x4Add, ...op.set(t),
    ...op.get(n), ...minusLn2Lo!, ...op.f32x4Mul, ...op.get(t), ...op.f32x4Add, ...op.set(t),
    // s + (t·s)·p(t)
    ...c5!, ...horner(c4!), ...horner(c3!), ...horner(c2!), ...horner(c1!),
    ...op.get(t), ...op.get(s), ...op.f32x4Mul, ...op.f32x4Mul, ...op.get(s), ...op.f32x4Add,
    // 0 below the cutoff
    ...op.get(x), ...cutoff!, ...op.f32x4Lt, ...op.v128AndNot,
  ];
}

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

function binary(instruction: number[], reversed: boolean, name: string): FunctionDef {
  const [x, y, out, outer, mid, inner] = [0, 1, 2, 3, 4, 5];
  const [o, m, py, yEnd, d] = [6, 7, 8, 9, 10];
  // x and out advance together (out − x fixed, in d); y restarts its row for every mid.
  const step = [
    ...op.get(x), ...op.get(d), ...op.add,
    ...(reversed ? [...op.get(py), ...op.v128Load(), ...op.get(x), ...op.v128Load()] : [...op.get(x), ...op.v128Load(), ...op.get(py), ...op.v128Load()]),
    ...instruction, ...op.v128Store(),
    ...op.get(x), ...op.i32(16), ...op.add, ...op.set(x),
  ];
  const midRow = [...rowAddress(y, o, inner, py), ...op.get(py), ...op.get(inner), ...op.i32(4), ...op.mul, ...op.add, ...op.set(yEnd), ...walk(py, yEnd, step)];
  const outerRow = eachRow(m, mid, midRow);
  const code = [...op.get(out), ...op.get(x), ...op.sub, ...op.set(d), ...eachRow(o, outer, outerRow)];
  return { params: 6, locals: [[5, I32]], code, export: name };
}

function scalar(instruction: number[], reversed: boolean, name: string): FunctionDef {
  const [x, s, out, count] = [0, 1, 2, 3];
  const [end, d] = [4, 5];
  const value = 6; // v128
  const step = [
    ...op.get(x), ...op.get(d), ...op.add,
    ...(reversed ? [...op.get(value), ...op.get(x), ...op.v128Load()] : [...op.get(x), ...op.v128Load(), ...op.get(value)]),
    ...instruction, ...op.v128Store(),
  ];
  const code = [
    ...op.get(s), ...op.v128Load32Splat(), ...op.set(value),
    ...op.get(out), ...op.get(x), ...op.sub, ...op.set(d),
    ...op.get(x), ...op.get(count), ...op.i32(4), ...op.mul, ...op.add, ...op.set(end),
    ...walk(x, end, step),
  ];
  return { params: 4, locals: [[2, I32], [1, V128]], code, export: name };
}

function softmax(): FunctionDef {
  const [src, dst, rows, n] = [0, 1, 2, 3];
  const [r, p, end, d] = [4, 5, 6, 7];
  const [acc, v, t] = [8, 9, 10];
  const row = [
    ...rowAddress(src, r, n, p), ...op.get(p), ...op.get(n), ...op.i32(4), ...op.mul, ...op.add, ...op.set(end),
    ...rowAddress(dst, r, n, d), ...op.get(d), ...op.get(p), ...op.sub, ...op.set(d), // dst row − src row
    // acc = the row's max in every lane
    ...op.f32x4Const(-Infinity), ...op.set(acc),
    ...walk(p, end, [...op.get(acc), ...op.get(p), ...op.v128Load(), ...op.f32x4Pmax, ...op.set(acc)]),
    ...lanes(acc, op.f32Max), ...op.f32x4Splat, ...op.set(t),
    // dst = exp(src − max), acc = lane sums
    ...rowAddress(src, r, n, p), ...op.v128Zero, ...op.set(acc),
    ...walk(p, end, [
      ...op.get(p), ...op.v128Load(), ...op.get(t), ...op.f32x4Sub, ...op.set(v),
      ...op.get(p), ...op.get(d), ...op.add, ...exp(v, t + 1), ...op.tee(v), ...op.v128Store(),
      ...op.get(acc), ...op.get(v), ...op.f32x4Add, ...op.set(acc),
    ]),
    ...op.f32Const(1), ...lanes(acc, op.f32Add), ...op.f32Div, ...op.f32x4Splat, ...op.set(t),
    // dst ·= 1 / sum
    ...rowAddress(src, r, n, p),
    ...walk(p, end, [...op.get(p), ...op.get(d), ...op.add, ...op.get(p), ...op.get(d), ...op.add, ...op.v128Load(), ...op.get(t), ...op.f32x4Mul, ...op.v128Store()]),
  ];
  return { params: 4, locals: [[4, I32], [3 + EXP_LOCALS, V128]], code: [...expConstants(t + 1), ...eachRow(r, rows, row)], export: 'softmax' };
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

/** XNNPACK's sigmoid: f = e/(1 + e) with e = exp(−|x|), and 1 − f where x ≥ 0. */
function sigmoid(): FunctionDef {
  const [x, out, count] = [0, 1, 2];
  const [end, d] = [3, 4];
  const [v, e, f, one, sign] = [5, 6, 7, 8, 9];
  const first = 10; // exp's locals
  const step = [
    ...op.get(x), ...op.get(d), ...op.add,
    // e = exp(−|x|) (the sign bit set), f = e / (e + 1)
    ...op.get(x), ...op.v128Load(), ...op.tee(v), ...op.get(sign), ...op.v128Or, ...op.set(e),
    ...exp(e, first), ...op.tee(e), ...op.get(e), ...op.get(one), ...op.f32x4Add, ...op.f32x4Div, ...op.tee(f),
    // x < 0 ? f : 1 − f
    ...op.get(one), ...op.get(f), ...op.f32x4Sub,
    ...op.get(v), ...op.v128Zero, ...op.f32x4Lt, ...op.v128Bitselect,
    ...op.v128Store(),
  ];
  const code = [
    ...expConstants(first), ...op.f32x4Const(1), ...op.set(one), ...op.f32x4Const(-0), ...op.set(sign),
    ...op.get(out), ...op.get(x), ...op.sub, ...op.set(d),
    ...op.get(x), ...op.get(count), ...op.i32(4), ...op.mul, ...op.add, ...op.set(end),
    ...walk(x, end, step),
  ];
  return { params: 3, locals: [[2, I32], [5 + EXP_LOCALS, V128]], code, export: 'sigmoid' };
}

function pointwiseFunctions(): FunctionDef[] {
  const functions: FunctionDef[] = [];
  for (const [name, instruction] of Object.entries(BINARY_OPS)) {
    functions.push(binary(instruction, false, `binary_${name}`), binary(instruction, true, `binary_${name}_reversed`));
    functions.push(scalar(instruction, false, `scalar_${name}`), scalar(instruction, true, `scalar_${name}_reversed`));
  }
  functions.push(softmax(), softmaxGrad(), rowMax(), sigmoid());
  return functions;
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

/**
 * x [outer, mid, inner] against y broadcast along the middle axes, from the shape of the result
 * (x's) and of y: y must equal the result on every axis but one run of adjacent axes where it
 * has 1s (leading 1s may be left out). Equal shapes: outer = 1, mid = 1, inner = the size.
 * Null for any other broadcast (y broadcast along two separate runs).
 */
export function broadcastLayout(shape: number[], yShape: number[]): { outer: number; mid: number; inner: number } | null {
  if (yShape.length > shape.length) return null;
  const y = [...new Array<number>(shape.length - yShape.length).fill(1), ...yShape];
  const broadcast = shape.map((d, i) => y[i] !== d);
  if (broadcast.some((b, i) => b && y[i] !== 1)) return null;
  const first = broadcast.indexOf(true);
  if (first < 0) return { outer: 1, mid: 1, inner: shape.reduce((p, d) => p * d, 1) };
  const end = broadcast.lastIndexOf(true) + 1;
  // Axes of size 1 inside the run are fine either way; an axis where y is whole is not.
  if (shape.slice(first, end).some((d, i) => !broadcast[first + i] && d !== 1)) return null;
  const size = (axes: number[]): number => axes.reduce((p, d) => p * d, 1);
  return { outer: size(shape.slice(0, first)), mid: size(shape.slice(first, end)), inner: size(shape.slice(end)) };
}
