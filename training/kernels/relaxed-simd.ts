/**
 * Relaxed SIMD (`f32x4.relaxed_madd`: a·b + c, fused or not, as the CPU does it best) for the
 * wasm kernels. Node 22+ validates it as shipped; Node 20's V8 only behind
 * --experimental-wasm-relaxed-simd. A V8 flag is process-wide, can be set while running
 * (`v8.setFlagsFromString`), and covers modules compiled afterwards in every thread, so execwm sets
 * it itself — at CLI start (bin/execwm.js), and here before the first probe, which covers other
 * entry points (tests, benchmarks, library use) — and the user never has to.
 *
 * `fmaKernels()` says whether the kernels are built with relaxed_madd: true where the runtime
 * validates it, unless switched off with `useFmaKernels(false)` (the benchmark compares both).
 */
import v8 from 'node:v8';

/** The V8 flag that makes Node 20 validate relaxed SIMD. */
export const RELAXED_SIMD_FLAG = '--experimental-wasm-relaxed-simd';

/** (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd) */
const PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b,
]);

let validates: boolean | undefined;

/**
 * True when this runtime validates relaxed SIMD, setting the V8 flag first where it is needed
 * (not on a runtime that already validates it: newer V8s may drop the flag).
 */
export function relaxedSimd(): boolean {
  if (validates === undefined) {
    validates = validate();
    if (!validates) {
      v8.setFlagsFromString(RELAXED_SIMD_FLAG);
      validates = validate();
    }
  }
  return validates;
}

function validate(): boolean {
  try {
    return (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly.validate(PROBE);
  } catch {
    return false;
  }
}

let fmaWanted = true;

/** Builds the kernels compiled from now on with relaxed_madd (where validated) or without. */
export function useFmaKernels(on: boolean): void {
  fmaWanted = on;
}

/** True when kernels compiled now use f32x4.relaxed_madd. */
export function fmaKernels(): boolean {
  return fmaWanted && relaxedSimd();
}
