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
 * What threads buy is limited: XNNPACK's fully-connected operator (every matmul) is run without
 * the thread pool by tfjs, so only element-wise ops, softmax and reductions use it.
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
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
      module.tfjs = {
        init: module.cwrap('init', null, []),
        initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
        getThreadsCount: module.cwrap('get_threads_count', 'number', []),
        registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
        disposeData: module.cwrap('dispose_data', null, ['number']),
        dispose: module.cwrap('dispose', null, []),
      };
      const backend = new tfwasm.BackendWasm(module as never);
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
