/**
 * Every test worker sets the V8 flag for wasm relaxed SIMD before its tests compile a kernel,
 * as the CLI does at start (bin/execwm.js), so tests run the kernels training runs.
 */
import { relaxedSimd } from '../../training/kernels/relaxed-simd.js';

relaxedSimd();
