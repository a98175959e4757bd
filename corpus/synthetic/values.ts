/**
 * Python's semantics for the subset's values: `repr`, equality, ordering,
 * truthiness, slicing, floor division and modulo, `split`. An operation Python
 * would raise on rejects the candidate program instead ({@link Rejected}).
 */
import type { PyDict, PyList, PyTuple, PyValue } from './ast.js';


/** Python's `repr` for the values the subset produces. */
export function pyRepr(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return String(v === 0 ? 0 : v);
  if (typeof v === 'string') return reprStr(v);
  if (v.t === 'list') return `[${v.a.map(pyRepr).join(', ')}]`;
  if (v.t === 'tuple') return v.a.length === 1 ? `(${pyRepr(v.a[0]!)},)` : `(${v.a.map(pyRepr).join(', ')})`;
  return `{${[...v.m].map(([k, x]) => `${pyRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
}

function reprStr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let body = '';
  for (const ch of s) {
    if (ch === '\\') body += '\\\\';
    else if (ch === quote) body += '\\' + ch;
    else if (ch === '\n') body += '\\n';
    else if (ch === '\t') body += '\\t';
    else body += ch;
  }
  return quote + body + quote;
}

export const list = (a: PyValue[]): PyList => ({ t: 'list', a });
export const tuple = (a: PyValue[]): PyTuple => ({ t: 'tuple', a });

/** Raised when a candidate program would fail or exceed a bound: it is discarded. */
export class Rejected extends Error {
  override readonly name = 'Rejected';
}

export function reject(why: string): never {
  throw new Rejected(why);
}

export function isInt(v: PyValue): v is number {
  return typeof v === 'number';
}

export function asInt(v: PyValue): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return reject(`expected int, got ${pyRepr(v)}`);
}

export function asSeq(v: PyValue, what: string): PyValue[] {
  if (typeof v === 'string') return [...v];
  if (v !== null && typeof v === 'object') {
    if (v.t === 'dict') return [...v.m.keys()];
    return v.a;
  }
  return reject(`${what}: not iterable`);
}

export function asStr(v: PyValue): string {
  return typeof v === 'string' ? v : reject('expected str');
}

export function asList(v: PyValue): PyList {
  return v !== null && typeof v === 'object' && v.t === 'list' ? v : reject('expected list');
}

export function dictKey(v: PyValue): string | number {
  if (typeof v === 'string' || typeof v === 'number') return v;
  return reject('unsupported dict key');
}

export function pyEq(a: PyValue, b: PyValue): boolean {
  if (typeof a === 'boolean' || typeof b === 'boolean') {
    if ((typeof a === 'boolean' || typeof a === 'number') && (typeof b === 'boolean' || typeof b === 'number')) {
      return asInt(a) === asInt(b);
    }
    return false;
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (a.t !== b.t) return false;
  if (a.t === 'dict') {
    const bm = (b as PyDict).m;
    if (a.m.size !== bm.size) return false;
    for (const [k, v] of a.m) if (!bm.has(k) || !pyEq(v, bm.get(k)!)) return false;
    return true;
  }
  const ba = (b as PyList | PyTuple).a;
  return a.a.length === ba.length && a.a.every((x, i) => pyEq(x, ba[i]!));
}

/** Ordering as Python's `<`; mixed types raise TypeError there, so they reject here. */
export function pyCompare(a: PyValue, b: PyValue): number {
  if ((typeof a === 'number' || typeof a === 'boolean') && (typeof b === 'number' || typeof b === 'boolean')) {
    return asInt(a) - asInt(b);
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && a.t === b.t && a.t !== 'dict') {
    const x = a.a;
    const y = (b as PyList | PyTuple).a;
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = pyCompare(x[i]!, y[i]!);
      if (c !== 0) return c;
    }
    return x.length - y.length;
  }
  return reject('unorderable types');
}

export function truthy(v: PyValue): boolean {
  if (v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v.length > 0;
  return v.t === 'dict' ? v.m.size > 0 : v.a.length > 0;
}

export function contains(container: PyValue, item: PyValue): boolean {
  if (typeof container === 'string') return container.includes(asStr(item));
  if (container !== null && typeof container === 'object' && container.t === 'dict') {
    return container.m.has(dictKey(item));
  }
  return asSeq(container, 'in').some((x) => pyEq(x, item));
}

/** Python's slice index normalization (PySlice_AdjustIndices), then the selected positions. */
export function sliceIndices(len: number, lo: number | null, hi: number | null, step: number): number[] {
  if (step === 0) reject('slice step cannot be zero');
  const adjust = (v: number | null, dflt: number, lower: number, upper: number): number => {
    if (v === null) return dflt;
    if (v < 0) return Math.max(v + len, lower);
    return Math.min(v, upper);
  };
  const out: number[] = [];
  if (step > 0) {
    const start = adjust(lo, 0, 0, len);
    const stop = adjust(hi, len, 0, len);
    for (let i = start; i < stop; i += step) out.push(i);
  } else {
    const start = adjust(lo, len - 1, -1, len - 1);
    const stop = adjust(hi, -1, -1, len - 1);
    for (let i = start; i > stop; i += step) out.push(i);
  }
  return out;
}

export function floorDiv(a: number, b: number): number {
  if (b === 0) reject('division by zero');
  return Math.floor(a / b);
}

export function pyMod(a: number, b: number): number {
  if (b === 0) reject('modulo by zero');
  const m = a % b;
  return m !== 0 && m < 0 !== b < 0 ? m + b : m;
}

export function pySplit(s: string, sep: string | null): string[] {
  if (sep === null) return s.split(/\s+/).filter((w) => w.length > 0);
  if (sep === '') reject('empty separator');
  return s.split(sep);
}
