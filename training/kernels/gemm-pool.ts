/**
 * Runs the wasm SIMD product (./gemm.ts) on this thread plus `threads − 1` worker threads that
 * share the heap (the threaded tfjs build's memory is a SharedArrayBuffer). Each call splits
 * the work — whole slices when there are several, otherwise blocks of rows — runs one part
 * here and hands the others to the workers, then waits for them.
 *
 * Hand-off is synchronous, through a small SharedArrayBuffer per worker: the caller writes the
 * arguments, bumps a sequence number and wakes the worker (Atomics.notify); the worker runs its
 * part and stores the sequence number back as "done". A worker takes work only after it has
 * said it is ready, so a worker that fails to start never blocks a caller (this thread then
 * does that part itself), and a worker whose part throws hands the error back.
 *
 * Every thread runs the same compiled module (with relaxed_madd or without, decided once), so
 * a split product gives the bits of one thread. Products with PACK_MIN_COLS columns or more
 * pack B's strips first, and those with a transposed A and PACK_A_MIN_COLS columns or more A's
 * strips, each thread into its own region of the heap, taken from the allocator given (the wasm
 * module's malloc) and kept for later calls.
 *
 * The same workers run the pointwise kernels of ./pointwise.ts (softmax, element-wise ops):
 * `runKernel` takes the parts already split by the caller, and each part names its kernel in
 * the control block.
 */
import { createRequire } from 'node:module';
import type { Worker as WorkerType } from 'node:worker_threads';
import { gemmModule, gemmPackBytes, instantiateGemm, GEMM_KC, GEMM_PACK_A_BYTES, GEMM_ROWS, type GemmFunction } from './gemm.js';
import { isShared, type WasmMemory } from './wasm-emit.js';
import { fmaKernels } from './relaxed-simd.js';
import { instantiatePointwise, pointwiseModule, POINTWISE_KERNELS } from './pointwise.js';

const require = createRequire(import.meta.url);
const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');

/** Int32 slots of a worker's control block. */
const SEQ = 0; // bumped by the caller for each job
const DONE = 1; // set to the job's SEQ by the worker when finished
const READY = 2; // 1 once the worker waits for jobs
const FAILED = 3; // 1 when the last job threw
const KERNEL = 4; // what to run: 0 gemm, i > 0 the pointwise kernel POINTWISE_KERNELS[i − 1]
const ARGS = 5; // the arguments of the kernel (gemm's as callArgs lists them)
/** gemm's arguments (see GemmFunction), the most any kernel takes. */
const ARG_COUNT: Parameters<GemmFunction>['length'] = 15;
const SLOTS = ARGS + ARG_COUNT;
/** A part takes milliseconds; a worker silent this long is gone. */
const WORKER_TIMEOUT_MS = 60_000;
/**
 * Columns from which B's strips are packed (see gemmChunks in ./gemm.ts): on 512 columns
 * packing gained 10–15%, on 128 or fewer nothing, and it costs a copy of B per call.
 */
export const PACK_MIN_COLS = 256;
/**
 * Columns from which a transposed A's strips are packed (see gemmChunks in ./gemm.ts): a strip
 * is copied once per block of rows and read by every block of columns, so it pays where there are
 * many. One thread, CPU time: [2048, 1024]ᵀ·[2048, 128] (the tied embedding's gradient at a
 * vocabulary of 1024) ran at 20–21 GFLOPS in place and 43 packed, [2048, 512]ᵀ·[2048, 128] at
 * 34–35 and 46, [2048, 128]ᵀ·[2048, 128] at 40–46 either way; the attention heads'
 * [256, 256]ᵀ·[256, 32] (32 columns) fell from 42–45 to 31–37 packed.
 */
export const PACK_A_MIN_COLS = 128;

/** True when the parts of `call` pack A's strips: A transposed (its rows adjacent, aRow = 4) and n ≥ PACK_A_MIN_COLS. */
export function packsA(call: GemmCall): boolean {
  return call.aRow === 4 && call.n >= PACK_A_MIN_COLS;
}

/** The worker, plain JavaScript evaluated in the worker thread. */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, pointwise, names, memory, control } = workerData;
const gemm = new WebAssembly.Instance(module, { env: { memory } }).exports.gemm;
const kernels = new WebAssembly.Instance(pointwise, { env: { memory } }).exports;
const run = [gemm, ...names.map((name) => kernels[name])];
const c = new Int32Array(control);
Atomics.store(c, ${READY}, 1);
let seen = 0;
for (;;) {
  Atomics.wait(c, ${SEQ}, seen);
  seen = Atomics.load(c, ${SEQ});
  try {
    run[c[${KERNEL}]](${Array.from({ length: ARG_COUNT }, (_, i) => `c[${ARGS + i}]`).join(', ')});
    Atomics.store(c, ${FAILED}, 0);
  } catch {
    Atomics.store(c, ${FAILED}, 1);
  }
  Atomics.store(c, ${DONE}, seen);
  Atomics.notify(c, ${DONE});
}
`;

/** Arguments of one gemm call (see ./gemm.ts), addresses and strides in bytes. */
export interface GemmCall {
  a: number;
  b: number;
  c: number;
  m: number;
  k: number;
  n: number;
  count: number;
  strideA: number;
  strideB: number;
  strideC: number;
  aRow: number;
  aStep: number;
}

/** Where one part packs B and A (0: it reads them in place). */
interface PackSpace {
  b: number;
  a: number;
}

function callArgs(call: GemmCall, pack: PackSpace): Parameters<GemmFunction> {
  return [call.a, call.b, call.c, call.m, call.k, call.n, call.count, call.strideA, call.strideB, call.strideC, call.aRow, call.aStep, GEMM_KC, pack.b, pack.a];
}

/** Memory of the heap the kernel runs over, for packing space (e.g. the wasm module's malloc). */
export interface HeapAllocator {
  /** The address of `bytes` new bytes, or 0 when there is no room. */
  allocate(bytes: number): number;
  free(address: number): void;
}

/**
 * Splits a call into at most `parts` calls: by whole slices when it has several, otherwise by
 * blocks of 4 rows (the last part takes the rows left over).
 */
export function splitCall(call: GemmCall, parts: number): GemmCall[] {
  const bySlices = call.count > 1;
  const units = bySlices ? call.count : Math.ceil(call.m / GEMM_ROWS);
  const n = Math.min(parts, units);
  const calls: GemmCall[] = [];
  for (let p = 0, first = 0; p < n; p++) {
    const size = Math.floor(units / n) + (p < units % n ? 1 : 0);
    if (bySlices) {
      calls.push({ ...call, a: call.a + first * call.strideA, b: call.b + first * call.strideB, c: call.c + first * call.strideC, count: size });
    } else {
      const row = first * GEMM_ROWS;
      calls.push({ ...call, a: call.a + row * call.aRow, c: call.c + row * call.n * 4, m: Math.min(size * GEMM_ROWS, call.m - row) });
    }
    first += size;
  }
  return calls;
}

interface PoolWorker {
  worker: WorkerType;
  control: Int32Array;
  seq: number;
}

export class GemmPool {
  /** True when the kernel multiplies and adds with relaxed_madd (see ./relaxed-simd.ts). */
  readonly fma: boolean;
  private readonly gemm: GemmFunction;
  /** The pointwise kernels on this thread, by name (./pointwise.ts). */
  private readonly pointwise: Record<string, (...args: number[]) => void>;
  private readonly workers: PoolWorker[] = [];
  private readonly heap: HeapAllocator | undefined;
  /** Packing space: one region of packBytes per thread (this one first), or none yet. */
  private packs: number[] = [];
  private packBytes = 0;

  /**
   * `threads` counts this thread; more than one needs a shared `memory`. `heap`: where to take
   * packing space (none: B is never packed). `fma`: relaxed_madd or not (default: where the
   * runtime validates it).
   */
  constructor(memory: WasmMemory, threads: number, opts: { heap?: HeapAllocator; fma?: boolean } = {}) {
    if (threads > 1 && !isShared(memory)) throw new Error('A GemmPool with more than one thread needs a shared memory');
    this.fma = opts.fma ?? fmaKernels();
    this.heap = opts.heap;
    const module = gemmModule({ shared: isShared(memory), fma: this.fma });
    this.gemm = instantiateGemm(module, memory);
    this.pointwise = instantiatePointwise(memory);
    const pointwise = pointwiseModule({ shared: isShared(memory) });
    for (let t = 1; t < threads; t++) {
      const control = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
      let worker: WorkerType;
      try {
        worker = new Worker(WORKER_SOURCE, {
          eval: true,
          execArgv: [],
          workerData: { module, pointwise, names: POINTWISE_KERNELS, memory, control: control.buffer },
        });
      } catch {
        break; // workers not allowed here (e.g. Node's permission model): this thread does it all
      }
      worker.unref(); // idle between calls; must not keep the process alive
      worker.on('error', () => Atomics.store(control, READY, 0)); // never handed work again
      this.workers.push({ worker, control, seq: 0 });
    }
  }

  /** Threads a call can use now (this one plus the workers that are ready). */
  get threads(): number {
    return 1 + this.workers.filter((w) => Atomics.load(w.control, READY) === 1).length;
  }

  /** Runs `call` here only. */
  runHere(call: GemmCall): void {
    this.gemm(...callArgs(call, this.packFor(call, 1)[0]!));
  }

  /**
   * Packing space for `threads` parts of `call`, one region each: A's strip first, then B's
   * strips where B is packed. The regions grow as wider products come and stay for the life of
   * the pool.
   */
  private packFor(call: GemmCall, threads: number): PackSpace[] {
    const packB = call.n >= PACK_MIN_COLS;
    const packA = packsA(call);
    const none = Array.from({ length: threads }, () => ({ b: 0, a: 0 }));
    if (!this.heap || !(packA || packB)) return none;
    const bytes = GEMM_PACK_A_BYTES + (packB ? gemmPackBytes(call.n) : 0);
    if (bytes > this.packBytes || threads > this.packs.length) {
      const wanted = Math.max(threads, this.packs.length);
      const size = Math.max(bytes, this.packBytes);
      const packs = Array.from({ length: wanted }, () => this.heap!.allocate(size));
      if (packs.some((address) => address === 0)) {
        for (const address of packs) if (address !== 0) this.heap.free(address);
        return none; // no room: read A and B in place
      }
      for (const address of this.packs) this.heap.free(address);
      this.packs = packs;
      this.packBytes = size;
    }
    return this.packs.slice(0, threads).map((region) => ({ a: packA ? region : 0, b: packB ? region + GEMM_PACK_A_BYTES : 0 }));
  }

  /** Runs `call` split across this thread and the ready workers. */
  run(call: GemmCall): void {
    const ready = this.readyWorkers();
    const parts = splitCall(call, ready.length + 1);
    const packs = this.packFor(call, parts.length);
    this.dispatch(
      0,
      parts.map((part, i) => callArgs(part, packs[i]!)),
      ready,
      (args) => this.gemm(...(args as Parameters<GemmFunction>)),
    );
  }

  /**
   * Runs the pointwise kernel `name` (./pointwise.ts) once per argument list in `parts`: the
   * first here, the others on ready workers (at most `threads` parts in all are taken at once).
   */
  runKernel(name: string, parts: number[][]): void {
    const index = POINTWISE_KERNELS.indexOf(name);
    const kernel = this.pointwise[name];
    if (index < 0 || !kernel) throw new Error(`No pointwise kernel named ${name}`);
    if (parts.length === 1) {
      kernel(...parts[0]!);
      return;
    }
    const ready = this.readyWorkers();
    if (parts.length > ready.length + 1) throw new Error(`${parts.length} parts for ${ready.length + 1} threads`);
    this.dispatch(index + 1, parts, ready, (args) => kernel(...args));
  }

  private readyWorkers(): PoolWorker[] {
    return this.workers.filter((w) => Atomics.load(w.control, READY) === 1);
  }

  /** Hands parts 1… to `ready` workers, runs part 0 with `here`, and waits for the workers. */
  private dispatch(kernel: number, parts: number[][], ready: PoolWorker[], here: (args: number[]) => void): void {
    const [mine, ...theirs] = parts;
    const started = theirs.map((args, i) => {
      const w = ready[i]!;
      w.control[KERNEL] = kernel;
      w.control.set(args, ARGS);
      w.seq = (w.seq + 1) | 0 || 1;
      Atomics.store(w.control, SEQ, w.seq);
      Atomics.notify(w.control, SEQ);
      return w;
    });
    // Wait for the workers even when this part fails: the next call must not hand them new work
    // while they still read this one.
    let failedHere: unknown = null;
    try {
      here(mine!);
    } catch (error) {
      failedHere = error;
    }
    let failed = false;
    for (const w of started) {
      const deadline = Date.now() + WORKER_TIMEOUT_MS;
      for (;;) {
        const done = Atomics.load(w.control, DONE);
        if (done === w.seq) break;
        if (Date.now() > deadline) {
          Atomics.store(w.control, READY, 0);
          throw new Error(`A matrix product worker gave no answer in ${WORKER_TIMEOUT_MS / 1000} s`);
        }
        Atomics.wait(w.control, DONE, done, 100);
      }
      failed ||= Atomics.load(w.control, FAILED) === 1;
    }
    if (failedHere !== null) throw failedHere;
    if (failed) throw new Error(kernel === 0 ? 'The wasm matrix product failed on a worker thread' : `The wasm kernel ${POINTWISE_KERNELS[kernel - 1]} failed on a worker thread`);
  }

  dispose(): void {
    for (const w of this.workers) void w.worker.terminate();
    this.workers.length = 0;
    for (const address of this.packs) this.heap?.free(address);
    this.packs = [];
    this.packBytes = 0;
  }
}
