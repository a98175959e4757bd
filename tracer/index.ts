/**
 * The tracer: runs untrusted Python in sandboxed Pyodide processes and records, at every event of
 * the program's own frames, the encoded values of its locals (see src/schema.ts for the contract).
 *
 *   const pool = await TracerPool.create({ workers: 2 });
 *   const trace = await pool.trace({ id: 'p1', source: 'def f(x):\n    return x + 1\n', entry: 'f(1)' });
 *   await pool.close();
 */
import type { Program, Trace } from '../src/schema.js';
import { TracerPool, type TracerOptions } from './pool.js';

export { TracerPool, type TracerOptions } from './pool.js';
export { detectIsolation, type IsolationLayer } from './isolation.js';

/** Traces one program in a one-off pool of one sandbox (pays the Pyodide start-up each call). */
export async function traceProgram(program: Program, opts: TracerOptions = {}): Promise<Trace> {
  const pool = await TracerPool.create({ ...opts, workers: 1 });
  try {
    return await pool.trace(program);
  } finally {
    await pool.close();
  }
}
