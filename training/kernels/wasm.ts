/**
 * Kernels the stock tfjs wasm backend (4.22.0) lacks or runs slowly, registered for 'wasm'.
 *
 * They reach into backend internals (the heap, tensor ids, the exported C functions), so
 * `installWasmKernels` first checks those internals look as expected and reports whether the
 * overrides went in; when they did not, the caller switches the model to the public-API
 * customGrad matmul (./matmul.ts) instead.
 */
import * as tf from '../tf.js';

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
export interface WasmBackendInternals {
  wasm: {
    cwrap: (name: string, ret: null | 'number', args: string[]) => (...args: unknown[]) => unknown;
    HEAPU8: Uint8Array;
  };
  dataIdMap: { get(dataId: object): { id: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object): boolean;
}

/** True when `backend` exposes everything the kernels below rely on. */
export function hasExpectedInternals(backend: unknown): backend is WasmBackendInternals {
  const b = backend as Partial<WasmBackendInternals> | null;
  return (
    b != null &&
    typeof b.makeOutput === 'function' &&
    typeof b.typedArrayFromHeap === 'function' &&
    typeof b.disposeData === 'function' &&
    b.dataIdMap != null &&
    typeof b.wasm?.cwrap === 'function'
  );
}

/**
 * UnsortedSegmentSum (needed by the gradient of tf.gather, i.e. the embedding) — missing from
 * the wasm backend. Written against the public KernelBackend interface (readSync / write), so it
 * works whatever the internals; it runs once per step on a small [V, D] result.
 */
function unsortedSegmentSum(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const { backend } = args;
  const x = args.inputs.x!;
  const segmentIds = args.inputs.segmentIds!;
  const numSegments = args.attrs!.numSegments as number;
  const innerShape = x.shape.slice(segmentIds.shape.length);
  const inner = tf.util.sizeFromShape(innerShape);
  const xVals = backend.readSync(x.dataId) as Float32Array | Int32Array;
  const ids = backend.readSync(segmentIds.dataId) as Int32Array;
  const outVals = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue; // tf semantics: out-of-range ids are dropped
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) outVals[dst + j]! += xVals[src + j]!;
  }
  const shape = [numSegments, ...innerShape];
  return { dataId: backend.write(outVals, shape, x.dtype), shape, dtype: x.dtype };
}

export interface WasmKernelReport {
  /** True when the internals-based overrides are registered. */
  overrides: boolean;
  /** Human-readable summary for `execwm doctor` and logs. */
  detail: string;
}

function register(kernelName: string, kernelFunc: tf.KernelFunc): void {
  if (tf.getKernel(kernelName, 'wasm') != null) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
}

/**
 * Registers the wasm kernels. Call after the wasm backend is initialised (it needs the
 * backend instance to check internals). Idempotent.
 */
export function installWasmKernels(backend: unknown): WasmKernelReport {
  register('UnsortedSegmentSum', unsortedSegmentSum as unknown as tf.KernelFunc);
  if (!hasExpectedInternals(backend)) {
    return { overrides: false, detail: 'wasm backend internals differ from tfjs 4.22.0' };
  }
  return { overrides: true, detail: 'UnsortedSegmentSum' };
}
