/** Hand-built traces for corpus tests (no tracer needed). */
import type { Locals, Step, Trace, TraceEvent, TraceStatus, Value } from '../../src/schema.js';
import { TRACE_STATUSES } from '../../src/schema.js';

export const v = (repr: string, type = 'int', id?: number): Value => (id === undefined ? { repr, type } : { repr, type, id });

/** `def f(x): y = x + 1; return y` called as `f(3)`, as the tracer records it. */
export function incrementTrace(id = 'inc'): Trace {
  return {
    id,
    source: 'def f(x):\n    y = x + 1\n    return y\n',
    entry: 'f(3)',
    status: 'ok',
    message: null,
    result: v('4'),
    stdout: '',
    steps: [
      { event: 'call', line: 1, func: 'f', depth: 0, locals: { x: v('3') }, arg: null, stdout: '' },
      { event: 'line', line: 2, func: 'f', depth: 0, locals: { x: v('3') }, arg: null, stdout: '' },
      { event: 'line', line: 3, func: 'f', depth: 0, locals: { x: v('3'), y: v('4') }, arg: null, stdout: '' },
      { event: 'return', line: 3, func: 'f', depth: 0, locals: null, arg: v('4'), stdout: '' },
    ],
  };
}

/** A small deterministic PRNG (mulberry32) so random fixtures are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sets a local, also one named `__proto__`. */
function setLocal(locals: Locals, name: string, value: Value): void {
  Object.defineProperty(locals, name, { value, enumerable: true, writable: true, configurable: true });
}

const NAMES = ['a', 'b', 'i', 'acc', 'xs', '__proto__', 'constructor', 'toString', 'n'];
const TYPES = ['int', 'list', 'str', 'dict', 'NoneType', 'Point'];

/**
 * A random but well-formed trace: nested calls, locals that change, appear in
 * odd orders, get deleted, alias ids, unicode and truncated values.
 */
export function randomTrace(seed: number, id = `r${seed}`): Trace {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const value = (): Value => {
    const type = pick(TYPES);
    const repr = pick(['0', '-1', "'é✓'", '[1, [...]]', '{}', 'None', `${Math.floor(r() * 1000)}`, 'x'.repeat(20) + '…<truncated>']);
    return r() < 0.3 ? { repr, type, id: Math.floor(r() * 5) } : { repr, type };
  };
  const steps: Step[] = [];
  const stack: Locals[] = [];
  const n = 1 + Math.floor(r() * 40);
  for (let k = 0; k < n; k++) {
    const depth = stack.length;
    const roll = r();
    let event: TraceEvent;
    if (depth === 0 || (roll < 0.15 && depth < 4)) event = 'call';
    else if (roll < 0.25) event = 'return';
    else if (roll < 0.3) event = 'exception';
    else event = 'line';
    if (event === 'call') {
      const locals: Locals = {};
      for (const name of NAMES) if (r() < 0.3) setLocal(locals, name, value());
      stack.push(locals);
      steps.push({ event, line: 1 + k, func: pick(['f', 'g', '<lambda>', '<module>']), depth, locals: { ...locals }, arg: null, stdout: '' });
    } else if (event === 'line') {
      const cur = stack[depth - 1];
      const next: Locals = {};
      // Sometimes rebuild in another order, as co_varnames order does.
      const names = r() < 0.2 ? [...NAMES].reverse() : NAMES;
      for (const name of names) {
        const had = Object.hasOwn(cur, name);
        const roll2 = r();
        if (had && roll2 < 0.1) continue; // del
        if (had && roll2 < 0.6) setLocal(next, name, cur[name]);
        else if (had || roll2 < 0.2) setLocal(next, name, value());
      }
      stack[depth - 1] = next;
      steps.push({ event, line: 1 + k, func: 'f', depth: depth - 1, locals: { ...next }, arg: null, stdout: r() < 0.2 ? 'out\n' : '' });
    } else {
      steps.push({ event, line: 1 + k, func: 'f', depth: depth - 1, locals: null, arg: event === 'return' ? value() : v('ValueError: bad', 'str'), stdout: '' });
      if (event === 'return') stack.pop();
    }
  }
  const status: TraceStatus = pick(TRACE_STATUSES);
  return {
    id,
    source: `def f(a):\n    return a  # ${seed}\n`,
    entry: r() < 0.2 ? null : `f(${seed})`,
    status,
    message: status === 'ok' ? null : 'ValueError: bad',
    result: status === 'ok' ? value() : null,
    steps,
    stdout: steps.map((s) => s.stdout).join(''),
  };
}
