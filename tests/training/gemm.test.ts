/**
 * The wasm SIMD matrix product (training/kernels/gemm.ts) against a float64 product in JS, built
 * with multiply and add and with relaxed_madd (fused or not, as the runtime likes: both meet the
 * tolerance), B read in place and packed; and its thread pool (training/kernels/gemm-pool.ts):
 * the split into parts, and parts run on a worker over shared memory giving the same bits as
 * one thread.
 * Tolerance: |kernel − exact| ≤ 1e-5 · (1 + Σ|a·b|) — float32 sums.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../helpers.js';
import { gemmFits, gemmModuleBytes, gemmOver, gemmPackBytes, GEMM_KC, GEMM_PACK_A_BYTES, type GemmFunction } from '../../training/kernels/gemm.js';
import { Wasm, type WasmMemory } from '../../training/kernels/wasm-emit.js';
import { GemmPool, PACK_MIN_COLS, splitCall, type GemmCall, type HeapAllocator } from '../../training/kernels/gemm-pool.js';
import { relaxedSimd } from '../../training/kernels/relaxed-simd.js';

/** Deterministic values in [-1, 1). */
function fill(heap: Float32Array, start: number, size: number, seed: number): void {
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    heap[start + i] = x / 2 ** 31 - 1;
  }
}

interface Product {
  m: number;
  k: number;
  n: number;
  count: number;
  /** A stored [k, m] per slice and read transposed. */
  transposeA?: boolean;
  /** One A for every slice (stride 0). */
  sharedA?: boolean;
}

/** Lays out a product at the start of `memory`: A, then B, then C (filled with NaN). */
function layout(memory: WasmMemory, p: Product): GemmCall {
  const heap = new Float32Array(memory.buffer);
  const aSize = p.m * p.k * (p.sharedA ? 1 : p.count);
  const bSize = p.k * p.n * p.count;
  fill(heap, 0, aSize, 1);
  fill(heap, aSize, bSize, 2);
  heap.fill(Number.NaN, aSize + bSize, aSize + bSize + p.m * p.n * p.count);
  return {
    a: 0,
    b: aSize * 4,
    c: (aSize + bSize) * 4,
    m: p.m,
    k: p.k,
    n: p.n,
    count: p.count,
    strideA: p.sharedA ? 0 : p.m * p.k * 4,
    strideB: p.k * p.n * 4,
    strideC: p.m * p.n * 4,
    aRow: p.transposeA ? 4 : p.k * 4,
    aStep: p.transposeA ? p.m * 4 : 4,
  };
}

/** Worst error of C against the exact product, in units of the tolerance (≤ 1 passes). */
function worstError(memory: WasmMemory, call: GemmCall): number {
  const heap = new Float32Array(memory.buffer);
  let worst = 0;
  for (let s = 0; s < call.count; s++) {
    for (let i = 0; i < call.m; i++) {
      for (let j = 0; j < call.n; j++) {
        let exact = 0;
        let magnitude = 0;
        for (let p = 0; p < call.k; p++) {
          const a = heap[(call.a + s * call.strideA + i * call.aRow + p * call.aStep) / 4]!;
          const b = heap[(call.b + s * call.strideB + (p * call.n + j) * 4) / 4]!;
          exact += a * b;
          magnitude += Math.abs(a * b);
        }
        const got = heap[(call.c + s * call.strideC + (i * call.n + j) * 4) / 4]!;
        const error = Math.abs(got - exact) / (1e-5 * (1 + magnitude));
        worst = Number.isNaN(error) ? Infinity : Math.max(worst, error);
      }
    }
  }
  return worst;
}

function run(gemm: GemmFunction, call: GemmCall, opts: { kc?: number; pack?: number; packA?: number } = {}): void {
  gemm(call.a, call.b, call.c, call.m, call.k, call.n, call.count, call.strideA, call.strideB, call.strideC, call.aRow, call.aStep, opts.kc ?? GEMM_KC, opts.pack ?? 0, opts.packA ?? 0);
}

/** Bytes from the top of `memory` down, one region after another (a stand-in for the module's malloc). */
function topDownHeap(memory: WasmMemory): HeapAllocator & { live: Set<number> } {
  let top = memory.buffer.byteLength;
  const live = new Set<number>();
  return {
    live,
    allocate(bytes) {
      top -= bytes;
      live.add(top);
      return top;
    },
    free(address) {
      live.delete(address);
    },
  };
}

const PRODUCTS: (Product & { name: string; kc?: number })[] = [
  { name: 'one 4×8 block', m: 4, k: 3, n: 8, count: 1 },
  { name: 'several blocks each way', m: 12, k: 7, n: 24, count: 1 },
  { name: 'batched slices (attention heads)', m: 16, k: 8, n: 16, count: 6 },
  { name: 'a transposed, read in place', m: 8, k: 10, n: 16, count: 3, transposeA: true },
  { name: 'one a for every slice', m: 4, k: 5, n: 8, count: 4, sharedA: true },
  { name: 'k in chunks, the last one short (the first overwrites C, filled with NaN)', m: 8, k: 13, n: 8, count: 2, kc: 5 },
  { name: 'k in chunks with a transposed', m: 8, k: 11, n: 16, count: 1, transposeA: true, kc: 4 },
  { name: 'k longer than GEMM_KC', m: 4, k: GEMM_KC + 37, n: 8, count: 1 },
  { name: 'rows left over (m mod 4) in single-row blocks', m: 7, k: 5, n: 16, count: 2 },
  { name: 'columns left over (n mod 8) in 4-column blocks', m: 8, k: 6, n: 12, count: 2 },
  { name: 'both left over, a transposed, k in chunks', m: 6, k: 9, n: 20, count: 3, transposeA: true, kc: 4 },
  { name: 'fewer rows and columns than one block (a decoding step)', m: 1, k: 7, n: 4, count: 5 },
  { name: 'one row against a shared a', m: 3, k: 4, n: 4, count: 2, sharedA: true },
  { name: 'many columns (B packed where asked), columns left over', m: 9, k: 7, n: 36, count: 2 },
];

describe('wasm SIMD matrix product', () => {
  it('builds a valid module for shared and unshared memory, with and without relaxed_madd', () => {
    expect(() => new Wasm.Module(gemmModuleBytes({ shared: false, fma: false }))).not.toThrow();
    expect(() => new Wasm.Module(gemmModuleBytes({ shared: true, fma: false }))).not.toThrow();
    expect(relaxedSimd()).toBe(true); // Node >= 20, with the flag the test setup sets as the CLI does
    expect(() => new Wasm.Module(gemmModuleBytes({ shared: false, fma: true }))).not.toThrow();
    expect(() => new Wasm.Module(gemmModuleBytes({ shared: true, fma: true }))).not.toThrow();
  });

  it('takes any non-empty shape whose columns are a multiple of 4', () => {
    expect(gemmFits({ m: 128, k: 32, n: 128 })).toBe(true);
    expect(gemmFits({ m: 1, k: 1, n: 4 })).toBe(true);
    expect(gemmFits({ m: 6, k: 32, n: 12 })).toBe(true);
    expect(gemmFits({ m: 128, k: 32, n: 6 })).toBe(false);
    expect(gemmFits({ m: 128, k: 0, n: 128 })).toBe(false);
    expect(gemmFits({ m: 0, k: 3, n: 8 })).toBe(false);
  });

  for (const memoryKind of ['unshared', 'shared'] as const) {
    for (const fma of [false, true]) {
      for (const packed of [false, true]) {
        describe(`over ${memoryKind} memory, ${fma ? 'relaxed_madd' : 'multiply and add'}, ${packed ? 'B and a transposed A packed' : 'A and B in place'}`, () => {
          const memory =
            memoryKind === 'shared' ? new Wasm.Memory({ initial: 16, maximum: 16, shared: true }) : new Wasm.Memory({ initial: 16 });
          const gemm = gemmOver(memory, { fma });
          // Packing space at 512 KiB, past every product's operands, A's after B's; NaN so stale values would show.
          const pack = packed ? 512 * 1024 : 0;
          for (const p of PRODUCTS) {
            it(p.name, () => {
              const call = layout(memory, p);
              const packA = packed && p.transposeA ? pack + gemmPackBytes(p.n) : 0;
              if (packed) new Float32Array(memory.buffer).fill(Number.NaN, pack / 4, (pack + gemmPackBytes(p.n) + GEMM_PACK_A_BYTES) / 4);
              run(gemm, call, { kc: p.kc, pack, packA });
              expect(worstError(memory, call)).toBeLessThanOrEqual(1);
            });
          }
        });
      }
    }
  }

  it('gives the same bits with A and B packed as read in place', () => {
    const memory = new Wasm.Memory({ initial: 16 });
    const gemm = gemmOver(memory);
    const call = layout(memory, { m: 13, k: 300, n: 44, count: 2, transposeA: true });
    const heap = new Float32Array(memory.buffer);
    const cSize = call.m * call.n * call.count;
    run(gemm, call);
    const inPlace = heap.slice(call.c / 4, call.c / 4 + cSize);
    for (const pack of [{ pack: 512 * 1024 }, { packA: 768 * 1024 }, { pack: 512 * 1024, packA: 768 * 1024 }]) {
      heap.fill(Number.NaN, call.c / 4, call.c / 4 + cSize);
      run(gemm, call, pack);
      expect(heap.slice(call.c / 4, call.c / 4 + cSize)).toEqual(inPlace);
    }
  });

  it('writes C only inside its slices', () => {
    const memory = new Wasm.Memory({ initial: 1 });
    const call = layout(memory, { m: 4, k: 3, n: 8, count: 2 });
    const heap = new Float32Array(memory.buffer);
    const end = (call.c + 2 * call.strideC) / 4;
    heap.fill(7, end, end + 64);
    run(gemmOver(memory), call);
    expect(Array.from(heap.subarray(end, end + 64)).every((v) => v === 7)).toBe(true);
  });
});

describe('splitting a product into parts', () => {
  const base: GemmCall = { a: 1000, b: 50_000, c: 90_000, m: 12, k: 5, n: 8, count: 5, strideA: 240, strideB: 160, strideC: 384, aRow: 20, aStep: 4 };

  it('splits several slices by whole slices, the first parts taking one more', () => {
    const parts = splitCall(base, 2);
    expect(parts.map((p) => p.count)).toEqual([3, 2]);
    expect(parts[1]).toMatchObject({ a: 1000 + 3 * 240, b: 50_000 + 3 * 160, c: 90_000 + 3 * 384, m: 12 });
  });

  it('splits one slice by blocks of 4 rows', () => {
    const parts = splitCall({ ...base, count: 1 }, 2);
    expect(parts.map((p) => p.m)).toEqual([8, 4]);
    expect(parts[1]).toMatchObject({ a: 1000 + 8 * 20, b: 50_000, c: 90_000 + 8 * 8 * 4, count: 1 });
  });

  it('gives the rows left over to the last part', () => {
    expect(splitCall({ ...base, count: 1, m: 10 }, 2).map((p) => p.m)).toEqual([8, 2]);
    expect(splitCall({ ...base, count: 1, m: 14 }, 2).map((p) => p.m)).toEqual([8, 6]);
    expect(splitCall({ ...base, count: 1, m: 3 }, 2).map((p) => p.m)).toEqual([3]);
  });

  it('never makes more parts than there are slices or row blocks', () => {
    expect(splitCall({ ...base, count: 2 }, 4)).toHaveLength(2);
    expect(splitCall({ ...base, count: 1, m: 4 }, 2)).toHaveLength(1);
    expect(splitCall(base, 1)).toEqual([base]);
  });
});

describe('the matrix product on two threads', () => {
  const memory = new Wasm.Memory({ initial: 64, maximum: 64, shared: true });
  const heap = topDownHeap(memory);
  const pool = new GemmPool(memory, 2, { heap });
  afterAll(() => pool.dispose());

  // Workers start in well under a second on an idle machine; the deadline is for a loaded one.
  async function ready(): Promise<void> {
    const deadline = performance.now() + 45_000;
    while (pool.threads < 2 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(pool.threads).toBe(2);
  }

  for (const p of [
    { name: 'split by slices', m: 16, k: 9, n: 16, count: 7 },
    { name: 'split by rows, a transposed', m: 20, k: 300, n: 24, count: 1, transposeA: true },
    { name: 'split by rows, rows and columns left over', m: 23, k: 17, n: 28, count: 1 },
    { name: 'split by rows, B packed by each thread', m: 21, k: 300, n: PACK_MIN_COLS + 4, count: 1 },
    { name: 'split by slices, B packed by each thread, a transposed', m: 9, k: 33, n: PACK_MIN_COLS, count: 3, transposeA: true },
  ]) {
    it(`gives the same bits as one thread: ${p.name}`, async () => {
      await ready();
      const call = layout(memory, p);
      const heap = new Float32Array(memory.buffer);
      const cSize = p.m * p.n * p.count;
      pool.run(call);
      const split = heap.slice(call.c / 4, call.c / 4 + cSize);
      expect(worstError(memory, call)).toBeLessThanOrEqual(1);
      heap.fill(Number.NaN, call.c / 4, call.c / 4 + cSize);
      pool.runHere(call);
      expect(heap.slice(call.c / 4, call.c / 4 + cSize)).toEqual(split);
    });
  }

  it("reports a worker's failure as an error, and keeps working", async () => {
    await ready();
    // The second slice lies past the end of memory: the worker's part traps.
    const call = { ...layout(memory, { m: 4, k: 3, n: 8, count: 2 }), strideA: 64 * 65536 };
    expect(() => pool.run(call)).toThrow(/failed on a worker thread/);
    const good = layout(memory, { m: 8, k: 3, n: 8, count: 2 });
    pool.run(good);
    expect(worstError(memory, good)).toBeLessThanOrEqual(1);
  });

  it("waits for the workers when this thread's part fails, then rethrows its error", async () => {
    await ready();
    // Slice 0 (this thread's) lies past the end of memory, slice 1 (the worker's) at address 0.
    const good = layout(memory, { m: 4, k: 3, n: 8, count: 2 });
    const call = { ...good, a: 8 << 20, strideA: -(8 << 20) };
    expect(() => pool.run(call)).toThrow(/out of bounds/);
    const next = layout(memory, { m: 8, k: 5, n: 16, count: 3 });
    pool.run(next);
    expect(worstError(memory, next)).toBeLessThanOrEqual(1);
  });

  it('runs on this thread alone where workers are not allowed (Node permission model)', () => {
    // The built modules: a loader such as tsx needs workers of its own.
    const script = `
      const { GemmPool } = await import('./dist/training/kernels/gemm-pool.js');
      const { Wasm } = await import('./dist/training/kernels/wasm-emit.js');
      const memory = new Wasm.Memory({ initial: 1, maximum: 1, shared: true });
      const heap = new Float32Array(memory.buffer);
      heap.set([1, 2, 3, 4], 0); // a: 4×1
      heap.set([1, 1, 1, 1, 1, 1, 1, 1], 4); // b: 1×8
      const pool = new GemmPool(memory, 2);
      pool.run({ a: 0, b: 16, c: 48, m: 4, k: 1, n: 8, count: 1, strideA: 0, strideB: 0, strideC: 0, aRow: 4, aStep: 16 });
      console.log(JSON.stringify({ threads: pool.threads, c: Array.from(heap.subarray(12, 44)) }));
    `;
    const res = spawnSync(process.execPath, ['--experimental-permission', '--allow-fs-read=*', '--no-warnings', '--input-type=module', '-e', script], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(res.status, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout) as { threads: number; c: number[] };
    expect(out.threads).toBe(1);
    expect(out.c).toEqual([1, 2, 3, 4].flatMap((v) => new Array<number>(8).fill(v)));
  });

  it('takes one packing region per thread from the heap for wide products, and gives them back', async () => {
    await ready();
    const own = topDownHeap(memory);
    const wide = new GemmPool(memory, 2, { heap: own });
    for (let i = 0; i < 200 && wide.threads < 2; i++) await new Promise((r) => setTimeout(r, 25));
    wide.run(layout(memory, { m: 8, k: 5, n: 16, count: 2 }));
    expect(own.live.size).toBe(0); // narrow: B read in place
    const call = layout(memory, { m: 16, k: 5, n: PACK_MIN_COLS, count: 2 });
    wide.run(call);
    expect(worstError(memory, call)).toBeLessThanOrEqual(1);
    expect(own.live.size).toBe(wide.threads);
    wide.dispose();
    expect(own.live.size).toBe(0);
  });

  it('needs shared memory for more than one thread', () => {
    expect(() => new GemmPool(new Wasm.Memory({ initial: 1 }), 2)).toThrow(/shared memory/);
  });
});
