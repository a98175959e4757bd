/**
 * Choosing and setting up the TensorFlow.js backend.
 *
 * `node-gpu` / `node` are the native libtensorflow bindings (`@tensorflow/tfjs-node-gpu`,
 * `@tensorflow/tfjs-node`): optional dependencies that often cannot install (they download
 * libtensorflow), so they are loaded with a dynamic import and treated as absent when the
 * package is missing or its native addon fails to load. `wasm` is the portable fast path
 * (XNNPACK, SIMD, our kernel overrides in ./kernels/); `cpu` is pure JavaScript and slow.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from './tf.js';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { installWasmKernels } from './kernels/wasm.js';
import { useTransposingMatMul } from './kernels/matmul.js';
import { registerThreadedWasm } from './kernels/threads.js';

export type BackendName = 'auto' | 'node-gpu' | 'node' | 'wasm' | 'cpu';

export interface BackendProbe {
  name: Exclude<BackendName, 'auto'>;
  usable: boolean;
  /** Why not, or what it runs with, e.g. 'simd, 1 thread' or 'package not installed'. */
  detail: string;
  /** wasm only: true when our matrix kernel runs on fused multiply-add (relaxed SIMD). */
  fma?: boolean;
}

export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'node-gpu', 'node', 'wasm', 'cpu'];

/** The npm package providing each native backend; both register the tfjs backend 'tensorflow'. */
const NATIVE_PACKAGES = { 'node-gpu': '@tensorflow/tfjs-node-gpu', node: '@tensorflow/tfjs-node' } as const;

/** Result of trying to load a native binding, remembered: a failed addon does not get better. */
const nativeLoads = new Map<keyof typeof NATIVE_PACKAGES, Promise<{ ok: boolean; detail: string }>>();

function loadNative(name: keyof typeof NATIVE_PACKAGES): Promise<{ ok: boolean; detail: string }> {
  let load = nativeLoads.get(name);
  if (!load) {
    const specifier: string = NATIVE_PACKAGES[name];
    load = import(specifier).then(
      () => ({ ok: tf.findBackend('tensorflow') != null, detail: 'libtensorflow' }),
      (err: unknown) => {
        const e = err as { code?: string; message?: string };
        const missing =
          (e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') &&
          (e.message ?? '').includes(specifier);
        const firstLine = (e.message ?? String(err)).split('\n')[0];
        return { ok: false, detail: missing ? 'package not installed' : `native addon failed to load: ${firstLine}` };
      },
    );
    nativeLoads.set(name, load);
  }
  return load;
}

/** The folder holding the .wasm binaries, for Node (the browser default is a URL beside the script). */
function wasmFolder(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
}

let wasmReport: { detail: string; overrides: boolean; fma: boolean } | undefined;

/** Initialises the wasm backend once (without switching to it) and installs our kernels. */
async function initWasm(threads: number | undefined): Promise<{ ok: boolean; detail: string; fma?: boolean }> {
  if (wasmReport) return { ok: true, detail: wasmReport.detail, fma: wasmReport.fma };
  try {
    tfwasm.setWasmPaths(wasmFolder());
    // The stock single-threaded SIMD build unless more threads are asked for (see ./kernels/threads.ts).
    if (threads !== undefined && threads > 1) registerThreadedWasm(threads);
    const previous = tf.engine().backendName as string | null;
    // Emscripten's Node glue adds process handlers that rethrow every uncaught error from inside
    // its minified source (printing a huge line); drop them so errors surface as usual.
    const before = {
      uncaughtException: new Set(process.listeners('uncaughtException')),
      unhandledRejection: new Set(process.listeners('unhandledRejection')),
    };
    const ready = await tf.setBackend('wasm');
    for (const listener of process.listeners('uncaughtException')) {
      if (!before.uncaughtException.has(listener)) process.removeListener('uncaughtException', listener);
    }
    for (const listener of process.listeners('unhandledRejection')) {
      if (!before.unhandledRejection.has(listener)) process.removeListener('unhandledRejection', listener);
    }
    if (!ready) return { ok: false, detail: 'wasm backend failed to initialise' };
    const kernels = installWasmKernels(tf.backend());
    const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) as boolean;
    const n = tfwasm.getThreadsCount();
    const detail = `${simd ? 'simd' : 'no simd'}, ${n} thread${n === 1 ? '' : 's'}; ${kernels.detail}`;
    wasmReport = { detail, overrides: kernels.overrides, fma: kernels.fma };
    if (previous && previous !== 'wasm') await tf.setBackend(previous);
    return { ok: true, detail, fma: kernels.fma };
  } catch (err) {
    return { ok: false, detail: `wasm backend failed to initialise: ${(err as Error).message ?? String(err)}` };
  }
}

/** What each backend would do here. Never throws (a missing native binding is just unusable). */
export async function probeBackends(): Promise<BackendProbe[]> {
  const probes: BackendProbe[] = [];
  for (const name of ['node-gpu', 'node'] as const) {
    const load = await loadNative(name);
    probes.push({ name, usable: load.ok, detail: load.detail });
  }
  const wasm = await initWasm(undefined);
  probes.push({ name: 'wasm', usable: wasm.ok, detail: wasm.detail, ...(wasm.ok ? { fma: wasm.fma ?? false } : {}) });
  probes.push({ name: 'cpu', usable: true, detail: 'pure JavaScript (slow)' });
  return probes;
}

/**
 * Makes `name` the active backend and returns the one chosen. `auto` tries node-gpu, then node,
 * then wasm, then cpu. An explicitly requested backend that cannot run throws an Error saying why.
 * `threads` > 1 loads the multi-threaded wasm build with that many pool threads; it only takes
 * effect before wasm is first initialised (by this or by `probeBackends`).
 */
export async function setupBackend(
  name: BackendName,
  opts: { threads?: number } = {},
): Promise<Exclude<BackendName, 'auto'>> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new Error(`Expected a backend among ${BACKEND_NAMES.join(', ')}, got ${String(name)}`);
  }
  const order: Exclude<BackendName, 'auto'>[] = name === 'auto' ? ['node-gpu', 'node', 'wasm', 'cpu'] : [name];
  const reasons: string[] = [];
  for (const candidate of order) {
    let detail: string;
    if (candidate === 'node-gpu' || candidate === 'node') {
      const load = await loadNative(candidate);
      if (load.ok && (await tf.setBackend('tensorflow'))) {
        useTransposingMatMul(false);
        return candidate;
      }
      detail = load.detail;
    } else if (candidate === 'wasm') {
      const init = await initWasm(opts.threads);
      if (init.ok && (await tf.setBackend('wasm'))) {
        // Without our overrides, only the customGrad matmul keeps products on XNNPACK.
        useTransposingMatMul(!wasmReport!.overrides);
        return candidate;
      }
      detail = init.detail;
    } else {
      if (await tf.setBackend('cpu')) {
        useTransposingMatMul(false);
        return candidate;
      }
      detail = 'cpu backend failed to initialise';
    }
    reasons.push(`${candidate}: ${detail}`);
  }
  throw new Error(`Backend ${name} is not usable here (${reasons.join('; ')})`);
}
