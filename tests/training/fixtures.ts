/**
 * Hand-built traces for training tests, so they do not depend on the tracer.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import type { Locals, Step, Trace, TraceEvent, Value } from '../../src/schema.js';
import type { CorpusTrace } from '../../corpus/index.js';
import type { InMemoryCorpus } from '../../training/train.js';
import type { TrainConfigInput } from '../../training/config.js';
import { CRUXEVAL_PATH, cruxevalAvailable } from '../helpers.js';

/** A value with a type guessed from its repr (enough for tests). */
export function val(repr: string): Value {
  const type = /^-?\d+$/.test(repr) ? 'int' : repr.startsWith('[') ? 'list' : repr.startsWith("'") ? 'str' : 'object';
  return { repr, type };
}

export function locals(obj: Record<string, string>): Locals {
  return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, val(v)]));
}

export function step(event: TraceEvent, line: number, opts: { func?: string; depth?: number; locals?: Record<string, string>; arg?: string } = {}): Step {
  return {
    event,
    line,
    func: opts.func ?? 'f',
    depth: opts.depth ?? 0,
    locals: event === 'call' || event === 'line' ? locals(opts.locals ?? {}) : null,
    arg: opts.arg === undefined ? null : val(opts.arg),
    stdout: '',
  };
}

export function makeTrace(opts: { id?: string; source: string; entry: string | null; steps: Step[]; status?: Trace['status'] }): Trace {
  return {
    id: opts.id ?? 'fixture',
    source: opts.source,
    entry: opts.entry,
    status: opts.status ?? 'ok',
    message: null,
    result: null,
    steps: opts.steps,
    stdout: '',
  };
}

/** The DESIGN.md example: `def f(x): y = x + 1; return y` called as `f(3)`. */
export function designExample(): Trace {
  return makeTrace({
    source: 'def f(x):\n    y = x + 1\n    return y\n',
    entry: 'f(3)',
    steps: [
      step('call', 1, { locals: { x: '3' } }),
      step('line', 2, { locals: { x: '3' } }),
      step('line', 3, { locals: { x: '3', y: '4' } }),
      step('return', 3, { arg: '4' }),
    ],
  });
}

/** A loop `s = 0; for i in range(n): s += i` traced by hand for `f(n)`. */
export function loopTrace(n: number, id = `loop${n}`): Trace {
  const source = 'def f(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n';
  const steps: Step[] = [step('call', 1, { locals: { n: String(n) } }), step('line', 2, { locals: { n: String(n) } })];
  let s = 0;
  steps.push(step('line', 3, { locals: { n: String(n), s: '0' } }));
  for (let i = 0; i < n; i++) {
    steps.push(step('line', 4, { locals: { n: String(n), s: String(s), i: String(i) } }));
    s += i;
    steps.push(step('line', 3, { locals: { n: String(n), s: String(s), i: String(i) } }));
  }
  steps.push(step('line', 5, { locals: { n: String(n), s: String(s), ...(n > 0 ? { i: String(n - 1) } : {}) } }));
  steps.push(step('return', 5, { arg: String(s) }));
  return { ...makeTrace({ id, source, entry: `f(${n})`, steps }), result: val(String(s)) };
}

/** The training-loop tests' run: the tiny model on wasm, a few steps on {@link loopCorpus}. */
export const TINY_RUN: TrainConfigInput = {
  preset: 'tiny',
  vocabSize: 320,
  steps: 16,
  batchSize: 4,
  lr: 1e-2,
  warmupSteps: 2,
  evalEvery: 8,
  evalBatches: 1,
  checkpointEvery: 8,
  backend: 'wasm',
  seed: 3,
};

/** A fresh, not yet existing run folder each call, in a temporary folder removed after the file's tests. */
export function runFolders(prefix: string): () => string {
  const tmp = mkdtempSync(path.join(tmpdir(), prefix));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  let runs = 0;
  return () => path.join(tmp, `run${runs++}`);
}

/** 16 loop traces in memory, every fourth in the val split: what the training-loop tests train on. */
export function loopCorpus(): InMemoryCorpus {
  const traces: CorpusTrace[] = [];
  for (let n = 0; n < 16; n++) traces.push({ ...loopTrace(n % 8, `t${n}`), split: n % 4 === 3 ? 'val' : 'train', origin: '' });
  return { manifestId: 'loops', traces };
}

/**
 * CRUXEval programs as pseudo-traces: a call with the input as one argument,
 * one line step per source line carrying the input and output strings, and the
 * output as return value. Not real executions, but real code and real values.
 */
export function cruxevalPseudoTraces(limit = Infinity): Trace[] {
  if (!cruxevalAvailable() || !existsSync(CRUXEVAL_PATH)) return [];
  const rows = readFileSync(CRUXEVAL_PATH, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, limit)
    .map((l) => JSON.parse(l) as { code: string; input: string; output: string; id: string });
  return rows.map((r) => {
    const lines = r.code.split('\n');
    const steps: Step[] = [step('call', 1, { locals: { args: r.input } })];
    for (let i = 2; i <= lines.length; i++) steps.push(step('line', i, { locals: { args: r.input, out: r.output } }));
    steps.push(step('return', lines.length, { arg: r.output }));
    return makeTrace({ id: r.id, source: r.code, entry: `f(${r.input})`, steps });
  });
}
