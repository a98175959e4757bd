/**
 * Relaxed SIMD for the wasm kernels (training/kernels/relaxed-simd.ts): Node 20 validates it
 * only behind a V8 flag, which execwm sets itself while running. Checked in fresh processes
 * started without any flag: set on the main thread, it covers worker threads; set from a worker
 * thread, it covers the main thread. That the CLI sets it at start is checked by `execwm doctor`
 * (tests/cli/doctor.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../helpers.js';

/** Runs an ES module script in a fresh Node process with no flags; its last line of output as JSON. */
function fresh(script: string): unknown {
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  expect(res.status, res.stderr).toBe(0);
  return JSON.parse(res.stdout.trim().split('\n').at(-1)!);
}

/** (func (param v128 v128 v128) (result v128) local.get 0..2 f32x4.relaxed_madd), as a JS array literal. */
const PROBE = `new Uint8Array([0,97,115,109,1,0,0,0,1,8,1,96,3,123,123,123,1,123,3,2,1,0,10,13,1,11,0,32,0,32,1,32,2,253,133,2,11])`;

describe('relaxed SIMD for the wasm kernels', () => {
  it('is validated after relaxedSimd() on the main thread, in worker threads too', () => {
    const out = fresh(`
      import { Worker } from 'node:worker_threads';
      const before = WebAssembly.validate(${PROBE});
      const { relaxedSimd } = await import('./dist/training/kernels/relaxed-simd.js');
      const on = relaxedSimd();
      const worker = await new Promise((resolve, reject) => {
        const w = new Worker("require('node:worker_threads').parentPort.postMessage(WebAssembly.validate(${PROBE}))", { eval: true, execArgv: [] });
        w.once('message', (m) => { resolve(m); void w.terminate(); });
        w.once('error', reject);
      });
      console.log(JSON.stringify({ before, on, main: WebAssembly.validate(${PROBE}), worker }));
    `) as { before: boolean; on: boolean; main: boolean; worker: boolean };
    expect(out).toMatchObject({ on: true, main: true, worker: true });
    expect(typeof out.before).toBe('boolean'); // false on Node 20, true where relaxed SIMD ships
  });

  it('is validated on the main thread when a worker thread set it first', () => {
    const out = fresh(`
      import { Worker } from 'node:worker_threads';
      import { pathToFileURL } from 'node:url';
      const url = pathToFileURL('./dist/training/kernels/relaxed-simd.js').href;
      const worker = await new Promise((resolve, reject) => {
        const w = new Worker(\`import { parentPort } from 'node:worker_threads'; const { relaxedSimd } = await import('\${url}'); parentPort.postMessage(relaxedSimd());\`, { eval: true });
        w.once('message', (m) => { resolve(m); void w.terminate(); });
        w.once('error', reject);
      });
      console.log(JSON.stringify({ worker, main: WebAssembly.validate(${PROBE}) }));
    `);
    expect(out).toEqual({ worker: true, main: true });
  });
});
