/**
 * Multi-threaded wasm in Node. tfjs 4.22.0 never loads its threaded build under Node
 * (`WASM_HAS_MULTITHREAD_SUPPORT` is false there) because the build's pthread workers are meant
 * to come from a Blob URL, which Node's worker_threads cannot load. We register our own factory
 * for the 'wasm' backend that writes the worker script and the module script to real files and
 * points Emscripten at them.
 *
 * The C side caps the pool at `emscripten_num_logical_cores() / 2` (it assumes two hyperthreads
 * per core), which in Node is `os.cpus().length / 2`; we double what `os.cpus()` reports while
 * the module initialises so that the requested count is not cut to half the cores.
 *
 * Left alone, every XNNPACK operator runs on the pool, and a parallel call costs a wake-up and
 * a barrier across the pool threads: at best it saved 8% on an attention head's product and
 * nothing on a softmax, and it costs ten times the work when another process holds a core.
 * So the pool stays off (the C side reads its global `threadpool` pointer on every call, and
 * pthreadpool runs a null pool's work on the calling thread) except around the large matrix
 * products left to XNNPACK, which `withThreadPool` runs with the pool. The products of training
 * run on our own SIMD kernel instead, whose workers share the module's memory (./gemm-pool.ts);
 * `wasmThreads` tells it how many threads the backend was loaded with.
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import type { WorkerOptions } from 'node:worker_threads';
import path from 'node:path';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import * as tf from '../tf.js';

const require = createRequire(import.meta.url);
// The CommonJS module object, the one Emscripten's glue requires (an ESM namespace is read-only).
const workerThreads = require('node:worker_threads') as typeof import('node:worker_threads');

/** Writes `contents` to `file` unless already there (atomically, so racing processes are safe). */
function ensureFile(file: string, contents: string): void {
  if (existsSync(file)) return;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, file);
}

/** Where the threaded module keeps its `threadpool` pointer, and the pool it points to. */
interface ThreadPoolSlot {
  memory: { buffer: ArrayBufferLike };
  /** Int32 index of the pointer in the heap. */
  index: number;
  /** The pool created at start-up. */
  pool: number;
}

const pools = new WeakMap<object, ThreadPoolSlot>();
/** Pool threads of each threaded backend. */
const threadCounts = new WeakMap<object, number>();

/** The threads a backend from registerThreadedWasm runs with; 1 for any other backend. */
export function wasmThreads(backend: unknown): number {
  return threadCounts.get(backend as object) ?? 1;
}

/** Points the module's `threadpool` at `pointer` (0: none) while fn runs, then back at none. */
function withPointer<T>(slot: ThreadPoolSlot, pointer: number, fn: () => T): T {
  const heap = new Int32Array(slot.memory.buffer); // the live buffer: the heap may have grown
  heap[slot.index] = pointer;
  try {
    return fn();
  } finally {
    heap[slot.index] = 0;
  }
}

/**
 * Runs `fn` (calls into the module of `backend`) with XNNPACK on the pool threads. Just `fn()`
 * for the single-threaded build, or when the pool pointer was not found (then the pool is on
 * for every call, as tfjs leaves it).
 */
export function withThreadPool<T>(backend: unknown, fn: () => T): T {
  const slot = pools.get(backend as object);
  return slot ? withPointer(slot, slot.pool, fn) : fn();
}

/** Gives `backend` its pool back for every call, as tfjs leaves it (without our matmul kernel). */
export function leaveThreadPoolOn(backend: unknown): void {
  const slot = pools.get(backend as object);
  if (!slot) return;
  new Int32Array(slot.memory.buffer)[slot.index] = slot.pool;
  pools.delete(backend as object);
}

/**
 * The heap address of the C global `threadpool`, read from the code of the exported
 * `get_threads_count`, which is `return pthreadpool_get_threads_count(threadpool)` and so starts
 * with `i32.const <address>; i32.load`. Null when the binary does not look like that.
 */
export function threadPoolAddress(binary: Uint8Array): number | null {
  let pos = 8; // magic and version
  const leb = (): number => {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = binary[pos++]!;
      result += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    return result;
  };
  const skipName = (): void => {
    const length = leb();
    pos += length;
  };
  let importedFunctions = 0;
  let exported: number | undefined;
  let code: number | undefined;
  while (pos < binary.length) {
    const id = binary[pos++]!;
    const size = leb();
    const end = pos + size;
    if (id === 2) {
      // Imports: count functions, which come before the module's own in the index space.
      for (let n = leb(); n > 0; n--) {
        skipName();
        skipName();
        const kind = binary[pos++]!;
        if (kind === 0) {
          leb();
          importedFunctions++;
        } else if (kind === 1 || kind === 2) {
          if (kind === 1) pos++; // table element type
          const flags = leb();
          leb();
          if (flags & 1) leb();
        } else if (kind === 3) {
          pos += 2; // global type and mutability
        } else {
          return null;
        }
      }
    } else if (id === 7) {
      for (let n = leb(); n > 0; n--) {
        const length = leb();
        const name = new TextDecoder().decode(binary.subarray(pos, pos + length));
        pos += length;
        const kind = binary[pos++]!;
        const index = leb();
        if (kind === 0 && name === 'get_threads_count') exported = index;
      }
    } else if (id === 10) {
      code = pos;
    }
    pos = end;
  }
  if (exported === undefined || code === undefined) return null;
  pos = code;
  const bodies = leb();
  const target = exported - importedFunctions;
  if (target < 0 || target >= bodies) return null;
  for (let i = 0; i < target; i++) {
    const size = leb(); // read before moving: `pos += leb()` would add to the old position
    pos += size;
  }
  leb(); // body size
  for (let groups = leb(); groups > 0; groups--) {
    leb();
    pos++; // locals: count and type
  }
  if (binary[pos++] !== 0x41) return null; // i32.const
  const address = leb();
  return binary[pos] === 0x28 && address % 4 === 0 ? address : null; // i32.load
}

/**
 * Replaces the 'wasm' backend factory with one that loads the threaded SIMD build with
 * `threads` pool threads. Must run before the wasm backend is first initialised.
 */
export function registerThreadedWasm(threads: number): void {
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  const factory = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js') as (
    config: object,
  ) => Promise<Record<string, unknown>>;
  const { wasmWorkerContents } = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
    wasmWorkerContents: string;
  };
  const version = (require('@tensorflow/tfjs-backend-wasm/package.json') as { version: string }).version;
  const dir = path.join(os.tmpdir(), `execwm-tfjs-wasm-${version}`);
  mkdirSync(dir, { recursive: true });
  const workerFile = path.join(dir, 'worker.cjs');
  const mainFile = path.join(dir, 'main.cjs');
  // The worker source is kept in a template literal whose "\n" escapes became real newlines;
  // tfjs re-escapes them the same way before making its Blob.
  ensureFile(workerFile, wasmWorkerContents.replace(/\n/g, '\\n'));
  // Each worker evaluates this file to get the module factory, as tfjs does with a Blob.
  ensureFile(mainFile, `var WasmBackendModuleThreadedSimd = ${factory.toString()}`);

  tfwasm.setThreadsCount(threads);
  tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      const cpus = os.cpus;
      os.cpus = () => [...cpus(), ...cpus()];
      // Emscripten takes worker_threads.Worker when it starts; hand it one whose workers do not
      // inherit our execArgv (a loader such as tsx, or flags like --input-type, break them).
      const Worker = workerThreads.Worker;
      (workerThreads as { Worker: unknown }).Worker = class extends Worker {
        constructor(file: string | URL, options: WorkerOptions = {}) {
          super(file, { ...options, execArgv: [] });
        }
      };
      let module: Record<string, unknown> & { cwrap: (...args: unknown[]) => unknown };
      try {
        module = (await factory({
          locateFile: (file: string, prefix: string) =>
            file.endsWith('.worker.js')
              ? workerFile
              : file.endsWith('.wasm')
                ? path.join(wasmDir, 'tfjs-backend-wasm-threaded-simd.wasm')
                : prefix + file,
          mainScriptUrlOrBlob: mainFile,
        })) as typeof module;
      } finally {
        os.cpus = cpus;
        (workerThreads as { Worker: unknown }).Worker = Worker;
      }
      // The same bridge tfjs's own init() sets up.
      const getThreadsCount = module.cwrap('get_threads_count', 'number', []) as () => number;
      module.tfjs = {
        init: module.cwrap('init', null, []),
        initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
        getThreadsCount,
        registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
        disposeData: module.cwrap('dispose_data', null, ['number']),
        dispose: module.cwrap('dispose', null, []),
      };
      const backend = new tfwasm.BackendWasm(module as never);
      threadCounts.set(backend, threads);
      const address = threadPoolAddress(readFileSync(path.join(wasmDir, 'tfjs-backend-wasm-threaded-simd.wasm')));
      const memory = module.wasmMemory as { buffer: ArrayBufferLike } | undefined;
      if (address !== null && memory) {
        const slot = { memory, index: address / 4, pool: new Int32Array(memory.buffer)[address / 4]! };
        // Check the pointer is the pool's: nulled, the module must report no pool threads.
        new Int32Array(memory.buffer)[slot.index] = 0;
        if (slot.pool !== 0 && getThreadsCount() !== threads && withPointer(slot, slot.pool, getThreadsCount) === threads) {
          pools.set(backend, slot); // and the pool stays off until withThreadPool
        } else {
          new Int32Array(memory.buffer)[slot.index] = slot.pool;
        }
      }
      // Emscripten refs the worker of every running pthread in Node, and the pool's threads run
      // for the life of the module, so the process would never exit; they hold no work of ours
      // between kernel calls.
      const pthreads = module.PThread as { runningWorkers: { unref(): void }[] } | undefined;
      for (const worker of pthreads?.runningWorkers ?? []) worker.unref();
      return backend;
    },
    2,
  );
}
