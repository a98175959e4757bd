/**
 * The small Python subset the synthetic generator builds: expression and
 * statement nodes, a printer to Python source, and an interpreter that runs a
 * program the way CPython would.
 *
 * The interpreter is why every generated program is known to be valid,
 * exception-free and within budget before it is emitted: the generator builds a
 * candidate, runs it here on its own entry arguments, and rejects it when it
 * raises, loops too long, or lets a value grow past the configured bounds. It
 * counts events with settrace semantics (call, one line event per executed
 * statement, loop headers once more than their iterations, return), so its
 * count tracks what the tracer records. The Python semantics used (floor
 * division, modulo sign, slicing, `split`, `repr`) are checked against native
 * CPython in tests.
 */

/** A runtime value. Ints are JS numbers kept far below 2^53 by the bounds. */
export type PyValue = number | boolean | string | null | PyList | PyTuple | PyDict;
export interface PyList {
  t: 'list';
  a: PyValue[];
}
export interface PyTuple {
  t: 'tuple';
  a: PyValue[];
}
export interface PyDict {
  t: 'dict';
  m: Map<string | number, PyValue>;
}

export type BinOp = '+' | '-' | '*' | '//' | '%';
export type CmpOp = '<' | '<=' | '>' | '>=' | '==' | '!=' | 'in' | 'not in';

export type Expr =
  | { k: 'lit'; v: PyValue }
  | { k: 'var'; name: string }
  | { k: 'bin'; op: BinOp; l: Expr; r: Expr }
  | { k: 'cmp'; op: CmpOp; l: Expr; r: Expr }
  | { k: 'and' | 'or'; l: Expr; r: Expr }
  | { k: 'not'; e: Expr }
  | { k: 'neg'; e: Expr }
  | { k: 'ifexp'; cond: Expr; a: Expr; b: Expr }
  | { k: 'call'; fn: string; args: Expr[]; reverse?: boolean }
  | { k: 'method'; obj: Expr; name: string; args: Expr[] }
  | { k: 'index'; obj: Expr; idx: Expr }
  | { k: 'slice'; obj: Expr; lo: Expr | null; hi: Expr | null; step: Expr | null }
  | { k: 'list' | 'tuple'; items: Expr[] }
  | { k: 'dict'; entries: [Expr, Expr][] }
  | { k: 'listcomp'; elt: Expr; targets: string[]; iter: Expr; cond: Expr | null }
  | { k: 'dictcomp'; key: Expr; value: Expr; targets: string[]; iter: Expr; cond: Expr | null };

export type Target = { k: 'name'; name: string } | { k: 'item'; obj: string; idx: Expr };

export type Stmt =
  | { k: 'assign'; target: Target; value: Expr }
  | { k: 'unpack'; names: string[]; value: Expr }
  | { k: 'aug'; target: Target; op: BinOp; value: Expr }
  | { k: 'expr'; e: Expr }
  | { k: 'if'; branches: { cond: Expr; body: Stmt[] }[]; orelse: Stmt[] | null }
  | { k: 'for'; targets: string[]; iter: Expr; body: Stmt[] }
  | { k: 'while'; cond: Expr; body: Stmt[] }
  | { k: 'return'; e: Expr }
  | { k: 'break' }
  | { k: 'continue' };

export interface FuncDef {
  name: string;
  params: string[];
  body: Stmt[];
}

// ---------------------------------------------------------------------------
// Printer

// Python operator precedence, low to high; operands that bind looser are parenthesized.
const PREC = {
  ifexp: 1,
  or: 2,
  and: 3,
  not: 4,
  cmp: 5,
  add: 6,
  mul: 7,
  unary: 8,
  atom: 10,
} as const;

function precOf(e: Expr): number {
  switch (e.k) {
    case 'ifexp':
      return PREC.ifexp;
    case 'or':
      return PREC.or;
    case 'and':
      return PREC.and;
    case 'not':
      return PREC.not;
    case 'cmp':
      return PREC.cmp;
    case 'bin':
      return e.op === '+' || e.op === '-' ? PREC.add : PREC.mul;
    case 'neg':
      return PREC.unary;
    case 'lit':
      return typeof e.v === 'number' && e.v < 0 ? PREC.unary : PREC.atom;
    default:
      return PREC.atom;
  }
}

function wrap(e: Expr, min: number): string {
  const s = printExpr(e);
  return precOf(e) < min ? `(${s})` : s;
}

export function printExpr(e: Expr): string {
  switch (e.k) {
    case 'lit':
      return pyRepr(e.v);
    case 'var':
      return e.name;
    case 'bin': {
      const p = precOf(e);
      return `${wrap(e.l, p)} ${e.op} ${wrap(e.r, p + 1)}`;
    }
    case 'cmp':
      // Comparisons chain in Python, so a comparison operand is always parenthesized.
      return `${wrap(e.l, PREC.cmp + 1)} ${e.op} ${wrap(e.r, PREC.cmp + 1)}`;
    case 'and':
    case 'or': {
      const p = precOf(e);
      return `${wrap(e.l, p)} ${e.k} ${wrap(e.r, p + 1)}`;
    }
    case 'not':
      return `not ${wrap(e.e, PREC.not)}`;
    case 'neg':
      return `-${wrap(e.e, PREC.unary)}`;
    case 'ifexp':
      return `${wrap(e.a, PREC.ifexp + 1)} if ${wrap(e.cond, PREC.ifexp + 1)} else ${wrap(e.b, PREC.ifexp)}`;
    case 'call': {
      const args = e.args.map(printExpr);
      if (e.reverse) args.push('reverse=True');
      // `len(set(x))` is one node: sets never become values, so their order never shows.
      if (e.fn === 'set_len') return `len(set(${args.join(', ')}))`;
      return `${e.fn}(${args.join(', ')})`;
    }
    case 'method':
      return `${wrap(e.obj, PREC.atom)}.${e.name}(${e.args.map(printExpr).join(', ')})`;
    case 'index':
      return `${wrap(e.obj, PREC.atom)}[${printExpr(e.idx)}]`;
    case 'slice': {
      const part = (x: Expr | null): string => (x ? printExpr(x) : '');
      const step = e.step ? `:${part(e.step)}` : '';
      return `${wrap(e.obj, PREC.atom)}[${part(e.lo)}:${part(e.hi)}${step}]`;
    }
    case 'list':
      return `[${e.items.map(printExpr).join(', ')}]`;
    case 'tuple':
      return e.items.length === 1 ? `(${printExpr(e.items[0]!)},)` : `(${e.items.map(printExpr).join(', ')})`;
    case 'dict':
      return `{${e.entries.map(([k, v]) => `${printExpr(k)}: ${printExpr(v)}`).join(', ')}}`;
    case 'listcomp':
      return `[${printExpr(e.elt)} ${compTail(e.targets, e.iter, e.cond)}]`;
    case 'dictcomp':
      return `{${printExpr(e.key)}: ${printExpr(e.value)} ${compTail(e.targets, e.iter, e.cond)}}`;
  }
}

function compTail(targets: string[], iter: Expr, cond: Expr | null): string {
  const head = `for ${targets.join(', ')} in ${wrap(iter, PREC.or)}`;
  return cond ? `${head} if ${wrap(cond, PREC.or)}` : head;
}

function printTarget(t: Target): string {
  return t.k === 'name' ? t.name : `${t.obj}[${printExpr(t.idx)}]`;
}

function printBlock(body: Stmt[], indent: string, out: string[]): void {
  for (const s of body) printStmt(s, indent, out);
}

function printStmt(s: Stmt, indent: string, out: string[]): void {
  const inner = indent + '    ';
  switch (s.k) {
    case 'assign':
      out.push(`${indent}${printTarget(s.target)} = ${printExpr(s.value)}`);
      return;
    case 'unpack': {
      const value = s.value.k === 'tuple' ? s.value.items.map(printExpr).join(', ') : printExpr(s.value);
      out.push(`${indent}${s.names.join(', ')} = ${value}`);
      return;
    }
    case 'aug':
      out.push(`${indent}${printTarget(s.target)} ${s.op}= ${printExpr(s.value)}`);
      return;
    case 'expr':
      out.push(`${indent}${printExpr(s.e)}`);
      return;
    case 'if':
      s.branches.forEach((b, i) => {
        out.push(`${indent}${i === 0 ? 'if' : 'elif'} ${printExpr(b.cond)}:`);
        printBlock(b.body, inner, out);
      });
      if (s.orelse) {
        out.push(`${indent}else:`);
        printBlock(s.orelse, inner, out);
      }
      return;
    case 'for':
      out.push(`${indent}for ${s.targets.join(', ')} in ${printExpr(s.iter)}:`);
      printBlock(s.body, inner, out);
      return;
    case 'while':
      out.push(`${indent}while ${printExpr(s.cond)}:`);
      printBlock(s.body, inner, out);
      return;
    case 'return':
      // `return a, b` rather than `return (a, b)`, as people write it.
      out.push(`${indent}return ${s.e.k === 'tuple' && s.e.items.length > 1 ? s.e.items.map(printExpr).join(', ') : printExpr(s.e)}`);
      return;
    case 'break':
    case 'continue':
      out.push(`${indent}${s.k}`);
      return;
  }
}

/** Python source of the function definitions, separated by one blank line. */
export function printProgram(funcs: FuncDef[]): string {
  const chunks = funcs.map((f) => {
    const out = [`def ${f.name}(${f.params.join(', ')}):`];
    printBlock(f.body, '    ', out);
    return out.join('\n');
  });
  return chunks.join('\n\n') + '\n';
}

// ---------------------------------------------------------------------------
// Values

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

function reject(why: string): never {
  throw new Rejected(why);
}

function isInt(v: PyValue): v is number {
  return typeof v === 'number';
}

function asInt(v: PyValue): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return reject(`expected int, got ${pyRepr(v)}`);
}

function asSeq(v: PyValue, what: string): PyValue[] {
  if (typeof v === 'string') return [...v];
  if (v !== null && typeof v === 'object') {
    if (v.t === 'dict') return [...v.m.keys()];
    return v.a;
  }
  return reject(`${what}: not iterable`);
}

function asStr(v: PyValue): string {
  return typeof v === 'string' ? v : reject('expected str');
}

function asList(v: PyValue): PyList {
  return v !== null && typeof v === 'object' && v.t === 'list' ? v : reject('expected list');
}

function dictKey(v: PyValue): string | number {
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

function truthy(v: PyValue): boolean {
  if (v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v.length > 0;
  return v.t === 'dict' ? v.m.size > 0 : v.a.length > 0;
}

function contains(container: PyValue, item: PyValue): boolean {
  if (typeof container === 'string') return container.includes(asStr(item));
  if (container !== null && typeof container === 'object' && container.t === 'dict') {
    return container.m.has(dictKey(item));
  }
  return asSeq(container, 'in').some((x) => pyEq(x, item));
}

/** Python's slice index normalization (PySlice_AdjustIndices), then the selected positions. */
function sliceIndices(len: number, lo: number | null, hi: number | null, step: number): number[] {
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

function floorDiv(a: number, b: number): number {
  if (b === 0) reject('division by zero');
  return Math.floor(a / b);
}

function pyMod(a: number, b: number): number {
  if (b === 0) reject('modulo by zero');
  const m = a % b;
  return m !== 0 && m < 0 !== b < 0 ? m + b : m;
}

function pySplit(s: string, sep: string | null): string[] {
  if (sep === null) return s.split(/\s+/).filter((w) => w.length > 0);
  if (sep === '') reject('empty separator');
  return s.split(sep);
}

// ---------------------------------------------------------------------------
// Interpreter

/** Bounds a run must stay within; crossing one rejects the candidate. */
export interface RunBounds {
  /** Events (call, line, return) the run may use. */
  maxEvents: number;
  /** Largest absolute int value any operation may produce. */
  maxInt: number;
  /** Longest string any operation may produce. */
  maxStr: number;
  /** Longest list or dict any operation may produce. */
  maxLen: number;
  /** Deepest call stack, counting the entry function as 1. */
  maxDepth: number;
}

export interface RunResult {
  value: PyValue;
  events: number;
}

class ReturnSignal {
  constructor(readonly value: PyValue) {}
}
class BreakSignal {}
class ContinueSignal {}

type Env = Map<string, PyValue>;

export class Interpreter {
  events = 0;
  private depth = 0;
  private readonly funcs: Map<string, FuncDef>;
  /** The dict behind each `keys()`/`values()`/`items()` result, to catch resizing during iteration. */
  private readonly views = new WeakMap<PyList, PyDict>();

  constructor(
    funcs: FuncDef[],
    private readonly bounds: RunBounds,
  ) {
    this.funcs = new Map(funcs.map((f) => [f.name, f]));
  }

  /** Calls `name` with `args`; throws {@link Rejected} when the run fails or leaves the bounds. */
  run(name: string, args: PyValue[]): RunResult {
    const value = this.callUser(name, args);
    return { value, events: this.events };
  }

  private tick(n = 1): void {
    this.events += n;
    if (this.events > this.bounds.maxEvents) reject('event budget exceeded');
  }

  private check(v: PyValue): PyValue {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || Math.abs(v) > this.bounds.maxInt) reject('int out of bounds');
    } else if (typeof v === 'string') {
      if (v.length > this.bounds.maxStr) reject('string too long');
    } else if (v !== null && typeof v === 'object') {
      const n = v.t === 'dict' ? v.m.size : v.a.length;
      if (n > this.bounds.maxLen) reject('container too long');
    }
    return v;
  }

  private callUser(name: string, args: PyValue[]): PyValue {
    const f = this.funcs.get(name) ?? reject(`unknown function ${name}`);
    if (args.length !== f.params.length) reject(`bad arity for ${name}`);
    if (++this.depth > this.bounds.maxDepth) reject('recursion too deep');
    const env: Env = new Map(f.params.map((p, i) => [p, args[i]!]));
    this.tick(); // call
    let result: PyValue = null;
    try {
      this.block(f.body, env);
    } catch (e) {
      if (!(e instanceof ReturnSignal)) throw e;
      result = e.value;
    }
    this.tick(); // return
    this.depth--;
    return result;
  }

  private block(body: Stmt[], env: Env): void {
    for (const s of body) this.stmt(s, env);
  }

  private assign(t: Target, v: PyValue, env: Env): void {
    if (t.k === 'name') {
      env.set(t.name, v);
      return;
    }
    const obj = env.get(t.obj) ?? reject(`unbound ${t.obj}`);
    const idx = this.expr(t.idx, env);
    if (typeof obj === 'object' && obj !== null && obj.t === 'dict') {
      obj.m.set(dictKey(idx), v);
      this.check(obj);
    } else {
      const l = asList(obj);
      const i = this.normIndex(asInt(idx), l.a.length);
      l.a[i] = v;
    }
  }

  private normIndex(i: number, len: number): number {
    const j = i < 0 ? i + len : i;
    if (j < 0 || j >= len) reject('index out of range');
    return j;
  }

  private stmt(s: Stmt, env: Env): void {
    switch (s.k) {
      case 'assign':
        this.tick();
        this.assign(s.target, this.expr(s.value, env), env);
        return;
      case 'unpack': {
        this.tick();
        const parts = asSeq(this.expr(s.value, env), 'unpack');
        if (parts.length !== s.names.length) reject('unpack arity');
        s.names.forEach((n, i) => env.set(n, parts[i]!));
        return;
      }
      case 'aug': {
        this.tick();
        const cur = s.target.k === 'name' ? (env.get(s.target.name) ?? reject('unbound')) : this.expr(itemExpr(s.target), env);
        const rhs = this.expr(s.value, env);
        // `lst += other` extends in place (aliases see it); other types rebind.
        if (s.op === '+' && typeof cur === 'object' && cur !== null && cur.t === 'list') {
          cur.a.push(...asSeq(rhs, '+='));
          this.check(cur);
          return;
        }
        this.assign(s.target, this.binop(s.op, cur, rhs), env);
        return;
      }
      case 'expr':
        this.tick();
        this.expr(s.e, env);
        return;
      case 'if':
        for (const b of s.branches) {
          this.tick();
          if (truthy(this.expr(b.cond, env))) {
            this.block(b.body, env);
            return;
          }
        }
        if (s.orelse) this.block(s.orelse, env);
        return;
      case 'for': {
        const iterable = this.expr(s.iter, env);
        const dict =
          typeof iterable === 'object' && iterable !== null ? (iterable.t === 'dict' ? iterable : iterable.t === 'list' ? this.views.get(iterable) : undefined) : undefined;
        const sizeAtStart = dict ? dict.m.size : 0;
        // Lists are iterated live by index, as CPython does.
        const live = typeof iterable === 'object' && iterable !== null && iterable.t === 'list' && !dict ? iterable.a : null;
        const items = live ?? asSeq(iterable, 'for');
        for (let i = 0; ; i++) {
          this.tick();
          if (dict && dict.m.size !== sizeAtStart) reject('dict changed size during iteration');
          if (i >= items.length) break;
          this.bindTargets(s.targets, items[i]!, env);
          try {
            this.block(s.body, env);
          } catch (e) {
            if (e instanceof BreakSignal) return;
            if (!(e instanceof ContinueSignal)) throw e;
          }
        }
        return;
      }
      case 'while':
        for (;;) {
          this.tick();
          if (!truthy(this.expr(s.cond, env))) return;
          try {
            this.block(s.body, env);
          } catch (e) {
            if (e instanceof BreakSignal) return;
            if (!(e instanceof ContinueSignal)) throw e;
          }
        }
      case 'return':
        this.tick();
        throw new ReturnSignal(this.expr(s.e, env));
      case 'break':
        this.tick();
        throw new BreakSignal();
      case 'continue':
        this.tick();
        throw new ContinueSignal();
    }
  }

  private bindTargets(targets: string[], v: PyValue, env: Env): void {
    if (targets.length === 1) {
      env.set(targets[0]!, v);
      return;
    }
    const parts = asSeq(v, 'unpack');
    if (parts.length !== targets.length) reject('unpack arity');
    targets.forEach((n, i) => env.set(n, parts[i]!));
  }

  private binop(op: BinOp, a: PyValue, b: PyValue): PyValue {
    if (op === '+') {
      if (typeof a === 'string' && typeof b === 'string') return this.check(a + b);
      if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
        if (a.t === 'list' && b.t === 'list') return this.check(list([...a.a, ...b.a]));
        if (a.t === 'tuple' && b.t === 'tuple') return this.check(tuple([...a.a, ...b.a]));
        return reject('bad + operands');
      }
    }
    if (op === '*' && (typeof a === 'string' || typeof b === 'string')) {
      const [s, n] = typeof a === 'string' ? [a, asInt(b)] : [asStr(b), asInt(a)];
      if (n * s.length > this.bounds.maxStr) reject('string too long');
      return n <= 0 ? '' : s.repeat(n);
    }
    if (!(isInt(a) || typeof a === 'boolean') || !(isInt(b) || typeof b === 'boolean')) reject(`bad ${op} operands`);
    const x = asInt(a);
    const y = asInt(b);
    switch (op) {
      case '+':
        return this.check(x + y);
      case '-':
        return this.check(x - y);
      case '*':
        return this.check(x * y);
      case '//':
        return this.check(floorDiv(x, y));
      case '%':
        return this.check(pyMod(x, y));
    }
  }

  private expr(e: Expr, env: Env): PyValue {
    switch (e.k) {
      case 'lit':
        return e.v;
      case 'var':
        return env.has(e.name) ? env.get(e.name)! : reject(`unbound ${e.name}`);
      case 'bin':
        return this.binop(e.op, this.expr(e.l, env), this.expr(e.r, env));
      case 'cmp': {
        const a = this.expr(e.l, env);
        const b = this.expr(e.r, env);
        switch (e.op) {
          case '==':
            return pyEq(a, b);
          case '!=':
            return !pyEq(a, b);
          case 'in':
            return contains(b, a);
          case 'not in':
            return !contains(b, a);
          case '<':
            return pyCompare(a, b) < 0;
          case '<=':
            return pyCompare(a, b) <= 0;
          case '>':
            return pyCompare(a, b) > 0;
          case '>=':
            return pyCompare(a, b) >= 0;
        }
        break;
      }
      case 'and': {
        const a = this.expr(e.l, env);
        return truthy(a) ? this.expr(e.r, env) : a;
      }
      case 'or': {
        const a = this.expr(e.l, env);
        return truthy(a) ? a : this.expr(e.r, env);
      }
      case 'not':
        return !truthy(this.expr(e.e, env));
      case 'neg':
        return this.check(-asInt(this.expr(e.e, env)));
      case 'ifexp':
        return truthy(this.expr(e.cond, env)) ? this.expr(e.a, env) : this.expr(e.b, env);
      case 'call':
        return this.call(e, env);
      case 'method':
        return this.method(e.name, this.expr(e.obj, env), e.args.map((a) => this.expr(a, env)));
      case 'index': {
        const obj = this.expr(e.obj, env);
        const idx = this.expr(e.idx, env);
        if (typeof obj === 'object' && obj !== null && obj.t === 'dict') {
          const k = dictKey(idx);
          return obj.m.has(k) ? obj.m.get(k)! : reject('KeyError');
        }
        const seq = asSeq(obj, 'index');
        return seq[this.normIndex(asInt(idx), seq.length)]!;
      }
      case 'slice': {
        const obj = this.expr(e.obj, env);
        const opt = (x: Expr | null): number | null => (x ? asInt(this.expr(x, env)) : null);
        const seq = asSeq(obj, 'slice');
        const picked = sliceIndices(seq.length, opt(e.lo), opt(e.hi), opt(e.step) ?? 1).map((i) => seq[i]!);
        if (typeof obj === 'string') return picked.join('');
        return typeof obj === 'object' && obj !== null && obj.t === 'tuple' ? tuple(picked) : list(picked);
      }
      case 'list':
        return this.check(list(e.items.map((x) => this.expr(x, env))));
      case 'tuple':
        return tuple(e.items.map((x) => this.expr(x, env)));
      case 'dict': {
        const m = new Map<string | number, PyValue>();
        for (const [k, v] of e.entries) m.set(dictKey(this.expr(k, env)), this.expr(v, env));
        return this.check({ t: 'dict', m });
      }
      case 'listcomp':
      case 'dictcomp': {
        // Comprehension variables live in their own scope (PEP 709 keeps that semantics).
        const scope: Env = new Map(env);
        const items = asSeq(this.expr(e.iter, env), 'comprehension');
        const out: PyValue[] = [];
        const m = new Map<string | number, PyValue>();
        for (const item of items) {
          this.tick();
          this.bindTargets(e.targets, item, scope);
          if (e.cond && !truthy(this.expr(e.cond, scope))) continue;
          if (e.k === 'listcomp') out.push(this.expr(e.elt, scope));
          else m.set(dictKey(this.expr(e.key, scope)), this.expr(e.value, scope));
        }
        return this.check(e.k === 'listcomp' ? list(out) : { t: 'dict', m });
      }
    }
    return reject('unreachable');
  }

  private call(e: Extract<Expr, { k: 'call' }>, env: Env): PyValue {
    const args = e.args.map((a) => this.expr(a, env));
    const a0 = args[0]!;
    switch (e.fn) {
      case 'len':
        return asSeq(a0, 'len').length;
      case 'sum':
        return this.check(asSeq(a0, 'sum').reduce<number>((s, x) => s + asInt(x), 0));
      case 'max':
      case 'min': {
        const xs = args.length === 1 ? asSeq(a0, e.fn) : args;
        if (xs.length === 0) reject(`${e.fn}() arg is an empty sequence`);
        const sign = e.fn === 'max' ? 1 : -1;
        // Python keeps the first of equal extremes.
        return xs.reduce((best, x) => (sign * pyCompare(x, best) > 0 ? x : best));
      }
      case 'abs':
        return Math.abs(asInt(a0));
      case 'sorted': {
        const xs = [...asSeq(a0, 'sorted')].sort(pyCompare);
        return list(e.reverse ? stableReverseSorted(asSeq(a0, 'sorted')) : xs);
      }
      case 'str':
        return this.check(pyRepr(asInt(a0)));
      case 'list':
        return this.check(list([...asSeq(a0, 'list')]));
      case 'set_len':
        return distinctCount(asSeq(a0, 'set'));
      case 'range': {
        const [lo, hi, step] = args.length === 1 ? [0, asInt(a0), 1] : [asInt(a0), asInt(args[1]!), args[2] === undefined ? 1 : asInt(args[2])];
        if (step === 0) reject('range step zero');
        const out: number[] = [];
        for (let i = lo; step > 0 ? i < hi : i > hi; i += step) {
          out.push(i);
          if (out.length > this.bounds.maxEvents) reject('range too long');
        }
        return list(out);
      }
      case 'enumerate':
        return list(asSeq(a0, 'enumerate').map((x, i) => tuple([i, x])));
      case 'zip': {
        const xs = asSeq(a0, 'zip');
        const ys = asSeq(args[1]!, 'zip');
        return list(xs.slice(0, Math.min(xs.length, ys.length)).map((x, i) => tuple([x, ys[i]!])));
      }
      case 'divmod': {
        const x = asInt(a0);
        const y = asInt(args[1]!);
        return tuple([floorDiv(x, y), pyMod(x, y)]);
      }
      case 'reversed':
        return list([...asSeq(a0, 'reversed')].reverse());
      case 'dict': {
        const m = new Map<string | number, PyValue>();
        for (const pair of asSeq(a0, 'dict')) {
          const [k, v] = asSeq(pair, 'dict');
          m.set(dictKey(k!), v!);
        }
        return this.check({ t: 'dict', m });
      }
      default:
        return this.callUser(e.fn, args);
    }
  }

  private method(name: string, obj: PyValue, args: PyValue[]): PyValue {
    if (typeof obj === 'string') return this.strMethod(name, obj, args);
    if (obj !== null && typeof obj === 'object' && obj.t === 'list') return this.listMethod(name, obj, args);
    if (obj !== null && typeof obj === 'object' && obj.t === 'dict') return this.dictMethod(name, obj, args);
    return reject(`no method ${name}`);
  }

  private strMethod(name: string, s: string, args: PyValue[]): PyValue {
    const arg = (i: number): string => asStr(args[i] ?? reject('missing argument'));
    switch (name) {
      case 'upper':
        return s.toUpperCase();
      case 'lower':
        return s.toLowerCase();
      case 'strip':
        return s.trim();
      case 'capitalize':
        return s.length === 0 ? s : s[0]!.toUpperCase() + s.slice(1).toLowerCase();
      case 'replace': {
        const from = arg(0);
        if (from === '') reject('empty replace pattern');
        return this.check(s.split(from).join(arg(1)));
      }
      case 'find':
        return s.indexOf(arg(0));
      case 'count': {
        const sub = arg(0);
        if (sub === '') reject('empty count pattern');
        return s.split(sub).length - 1;
      }
      case 'startswith':
        return s.startsWith(arg(0));
      case 'endswith':
        return s.endsWith(arg(0));
      case 'isdigit':
        return s.length > 0 && /^[0-9]+$/.test(s);
      case 'isalpha':
        return s.length > 0 && /^[A-Za-z]+$/.test(s);
      case 'split':
        return list(pySplit(s, args.length ? arg(0) : null));
      case 'join':
        return this.check(asSeq(args[0]!, 'join').map(asStr).join(s));
    }
    return reject(`no str method ${name}`);
  }

  private listMethod(name: string, l: PyList, args: PyValue[]): PyValue {
    switch (name) {
      case 'append':
        l.a.push(args[0]!);
        this.check(l);
        return null;
      case 'extend':
        l.a.push(...asSeq(args[0]!, 'extend'));
        this.check(l);
        return null;
      case 'insert': {
        const n = l.a.length;
        let i = asInt(args[0]!);
        i = i < 0 ? Math.max(0, i + n) : Math.min(i, n);
        l.a.splice(i, 0, args[1]!);
        this.check(l);
        return null;
      }
      case 'pop': {
        if (l.a.length === 0) reject('pop from empty list');
        const i = this.normIndex(args.length ? asInt(args[0]!) : -1, l.a.length);
        return l.a.splice(i, 1)[0]!;
      }
      case 'remove': {
        const i = l.a.findIndex((x) => pyEq(x, args[0]!));
        if (i < 0) reject('remove: not in list');
        l.a.splice(i, 1);
        return null;
      }
      case 'index': {
        const i = l.a.findIndex((x) => pyEq(x, args[0]!));
        return i < 0 ? reject('index: not in list') : i;
      }
      case 'count':
        return l.a.filter((x) => pyEq(x, args[0]!)).length;
      case 'sort':
        l.a.sort(pyCompare);
        return null;
      case 'reverse':
        l.a.reverse();
        return null;
      case 'copy':
        return list([...l.a]);
    }
    return reject(`no list method ${name}`);
  }

  private dictMethod(name: string, d: PyDict, args: PyValue[]): PyValue {
    switch (name) {
      case 'get': {
        const k = dictKey(args[0]!);
        return d.m.has(k) ? d.m.get(k)! : (args[1] ?? null);
      }
      case 'keys':
      case 'values':
      case 'items': {
        const pick = (k: string | number, v: PyValue): PyValue => (name === 'keys' ? k : name === 'values' ? v : tuple([k, v]));
        const view = list([...d.m].map(([k, v]) => pick(k, v)));
        this.views.set(view, d);
        return view;
      }
      case 'pop': {
        const k = dictKey(args[0]!);
        if (d.m.has(k)) {
          const v = d.m.get(k)!;
          d.m.delete(k);
          return v;
        }
        return args.length > 1 ? args[1]! : reject('KeyError');
      }
    }
    return reject(`no dict method ${name}`);
  }
}

function itemExpr(t: Extract<Target, { k: 'item' }>): Expr {
  return { k: 'index', obj: { k: 'var', name: t.obj }, idx: t.idx };
}

/** `sorted(xs, reverse=True)`: stable, so equal items keep their original order. */
function stableReverseSorted(xs: PyValue[]): PyValue[] {
  return xs
    .map((x, i) => ({ x, i }))
    .sort((p, q) => pyCompare(q.x, p.x) || p.i - q.i)
    .map((p) => p.x);
}

function distinctCount(xs: PyValue[]): number {
  const seen: PyValue[] = [];
  for (const x of xs) if (!seen.some((y) => pyEq(x, y))) seen.push(x);
  return seen.length;
}

// ---------------------------------------------------------------------------
// Dead code elimination

/** Methods that change their receiver in place. */
const MUTATORS = new Set(['append', 'extend', 'insert', 'pop', 'remove', 'sort', 'reverse']);

function exprReads(e: Expr, out: Set<string>): void {
  switch (e.k) {
    case 'lit':
      return;
    case 'var':
      out.add(e.name);
      return;
    case 'bin':
    case 'cmp':
    case 'and':
    case 'or':
      exprReads(e.l, out);
      exprReads(e.r, out);
      return;
    case 'not':
    case 'neg':
      exprReads(e.e, out);
      return;
    case 'ifexp':
      exprReads(e.cond, out);
      exprReads(e.a, out);
      exprReads(e.b, out);
      return;
    case 'call':
      for (const a of e.args) exprReads(a, out);
      return;
    case 'method':
      exprReads(e.obj, out);
      for (const a of e.args) exprReads(a, out);
      return;
    case 'index':
      exprReads(e.obj, out);
      exprReads(e.idx, out);
      return;
    case 'slice':
      exprReads(e.obj, out);
      for (const x of [e.lo, e.hi, e.step]) if (x) exprReads(x, out);
      return;
    case 'list':
    case 'tuple':
      for (const x of e.items) exprReads(x, out);
      return;
    case 'dict':
      for (const [k, x] of e.entries) {
        exprReads(k, out);
        exprReads(x, out);
      }
      return;
    case 'listcomp':
    case 'dictcomp':
      exprReads(e.iter, out);
      if (e.cond) exprReads(e.cond, out);
      if (e.k === 'listcomp') exprReads(e.elt, out);
      else {
        exprReads(e.key, out);
        exprReads(e.value, out);
      }
      return;
  }
}

/** Variables whose list or dict a mutating method call inside `e` changes. */
function mutatedVars(e: Expr, out: Set<string>): void {
  if (e.k === 'method' && MUTATORS.has(e.name) && e.obj.k === 'var') out.add(e.obj.name);
  switch (e.k) {
    case 'bin':
    case 'cmp':
    case 'and':
    case 'or':
      mutatedVars(e.l, out);
      mutatedVars(e.r, out);
      return;
    case 'not':
    case 'neg':
      mutatedVars(e.e, out);
      return;
    case 'call':
      for (const a of e.args) mutatedVars(a, out);
      return;
    case 'method':
      mutatedVars(e.obj, out);
      for (const a of e.args) mutatedVars(a, out);
      return;
    default:
      return;
  }
}

/** Variables a simple statement changes (names, containers written through an index or a method). */
function writes(s: Stmt): Set<string> {
  const out = new Set<string>();
  switch (s.k) {
    case 'assign':
    case 'aug':
      out.add(s.target.k === 'name' ? s.target.name : s.target.obj);
      mutatedVars(s.value, out);
      break;
    case 'unpack':
      for (const n of s.names) out.add(n);
      mutatedVars(s.value, out);
      break;
    case 'expr':
      mutatedVars(s.e, out);
      break;
    default:
      break;
  }
  return out;
}

/** Variables a simple statement reads, including the receiver of `x += …` and index targets. */
function reads(s: Stmt): Set<string> {
  const out = new Set<string>();
  switch (s.k) {
    case 'assign':
    case 'aug':
      if (s.target.k === 'item') {
        exprReads(s.target.idx, out);
        // `d[k] = v` keeps the rest of `d`, so the old `d` flows into the new one.
        out.add(s.target.obj);
      } else if (s.k === 'aug') out.add(s.target.name);
      exprReads(s.value, out);
      break;
    case 'unpack':
      exprReads(s.value, out);
      break;
    case 'expr':
    case 'return':
      exprReads(s.e, out);
      break;
    default:
      break;
  }
  return out;
}

/**
 * Marks the statements the return value depends on (a flow-insensitive backward
 * slice over variable names: data dependences, plus the conditions and loop
 * headers that control a kept statement), growing `live` until it is stable.
 */
function markRelevant(body: Stmt[], live: Set<string>, keep: Set<Stmt>): boolean {
  let grew = false;
  const need = (names: Iterable<string>): void => {
    for (const n of names) {
      if (!live.has(n)) {
        live.add(n);
        grew = true;
      }
    }
  };
  const visit = (stmts: Stmt[]): boolean => {
    let any = false;
    for (const s of stmts) {
      switch (s.k) {
        case 'if': {
          let hit = false;
          for (const b of s.branches) hit = visit(b.body) || hit;
          if (s.orelse) hit = visit(s.orelse) || hit;
          if (hit) {
            keep.add(s);
            const r = new Set<string>();
            for (const b of s.branches) exprReads(b.cond, r);
            need(r);
          }
          any ||= hit;
          break;
        }
        case 'for':
        case 'while': {
          if (visit(s.body)) {
            keep.add(s);
            const r = new Set<string>();
            exprReads(s.k === 'for' ? s.iter : s.cond, r);
            need(r);
            // Inside a kept loop, break and continue decide which iterations run.
            markControl(s.body, keep);
            any = true;
          }
          break;
        }
        case 'break':
        case 'continue':
          break;
        case 'return':
          keep.add(s);
          need(reads(s));
          any = true;
          break;
        default:
          if ([...writes(s)].some((n) => live.has(n))) {
            keep.add(s);
            need(reads(s));
            any = true;
          }
      }
    }
    return any;
  };
  visit(body);
  return grew;
}

/** Keeps the break/continue statements of a kept loop (not of loops nested in it) and the ifs around them. */
function markControl(body: Stmt[], keep: Set<Stmt>): boolean {
  let any = false;
  for (const s of body) {
    if (s.k === 'break' || s.k === 'continue') {
      keep.add(s);
      any = true;
    } else if (s.k === 'if') {
      let hit = false;
      for (const b of s.branches) hit = markControl(b.body, keep) || hit;
      if (s.orelse) hit = markControl(s.orelse, keep) || hit;
      if (hit) keep.add(s);
      any ||= hit;
    }
  }
  return any;
}

function controlReads(body: Stmt[], keep: Set<Stmt>, out: Set<string>): void {
  for (const s of body) {
    if (s.k === 'if' && keep.has(s)) {
      for (const b of s.branches) {
        exprReads(b.cond, out);
        controlReads(b.body, keep, out);
      }
      controlReads(s.orelse ?? [], keep, out);
    } else if ((s.k === 'for' || s.k === 'while') && keep.has(s)) controlReads(s.body, keep, out);
  }
}

function prune(body: Stmt[], keep: Set<Stmt>, live: Set<string>): Stmt[] {
  const out: Stmt[] = [];
  for (const s of body) {
    if (!keep.has(s)) continue;
    if (s.k === 'if') {
      const branches = s.branches.map((b) => ({ cond: b.cond, body: prune(b.body, keep, live) })).filter((b) => b.body.length > 0);
      const orelse = s.orelse ? prune(s.orelse, keep, live) : [];
      if (branches.length === 0) continue;
      out.push({ k: 'if', branches, orelse: orelse.length > 0 ? orelse : null });
    } else if (s.k === 'for' || s.k === 'while') {
      const inner = prune(s.body, keep, live);
      if (inner.some((x) => !isLoopControl(s, x))) out.push({ ...s, body: inner });
    } else if (s.k === 'assign' && s.target.k === 'name' && !live.has(s.target.name)) {
      // Kept only for its side effect (`last = items.pop()` shrinks `items`).
      out.push({ k: 'expr', e: s.value });
    } else out.push(s);
  }
  return out;
}

/**
 * Whether `x` only steers `loop`: break, continue, or the counter update of a
 * while loop. A loop with nothing else (`while n > 0: n -= 1`) does no work.
 */
function isLoopControl(loop: Stmt, x: Stmt): boolean {
  if (x.k === 'break' || x.k === 'continue') return true;
  return loop.k === 'while' && x.k === 'aug' && x.target.k === 'name' && exprMentions(loop.cond, x.target.name);
}

function exprMentions(e: Expr, name: string): boolean {
  const r = new Set<string>();
  exprReads(e, r);
  return r.has(name);
}

/**
 * Drops every statement the return value does not depend on, so each line of a
 * generated function matters to its result (and a mutation of it usually
 * changes the result). The pruned program is run again by the interpreter, so
 * this only has to keep the code valid, not its behaviour.
 */
export function eliminateDeadCode(f: FuncDef): FuncDef {
  const live = new Set<string>();
  let keep = new Set<Stmt>();
  for (;;) {
    keep = new Set<Stmt>();
    const grew = markRelevant(f.body, live, keep);
    const r = new Set<string>();
    controlReads(f.body, keep, r);
    const before = live.size;
    for (const n of r) live.add(n);
    if (!grew && live.size === before) break;
  }
  const sliced = prune(f.body, keep, live);
  return { ...f, body: backward(sliced, new Set()).body };
}

/**
 * Flow-sensitive clean-up after the slice: walking backwards with the set of
 * variables live after each statement, drops writes nothing reads later (such as
 * a last `tag += ' '` after the value was used).
 */
function backward(body: Stmt[], liveOut: Set<string>): { body: Stmt[]; liveIn: Set<string> } {
  let live = new Set(liveOut);
  const out: Stmt[] = [];
  for (let i = body.length - 1; i >= 0; i--) {
    const s = body[i]!;
    switch (s.k) {
      case 'return':
        live = reads(s);
        out.push(s);
        break;
      case 'break':
      case 'continue':
        out.push(s);
        break;
      case 'if': {
        const after = live;
        const branches = s.branches.map((b) => ({ cond: b.cond, ...backward(b.body, after) }));
        const orelse = s.orelse ? backward(s.orelse, after) : null;
        const kept = branches.filter((b) => b.body.length > 0);
        if (kept.length === 0) break;
        live = new Set(orelse ? orelse.liveIn : after);
        for (const b of kept) {
          for (const n of b.liveIn) live.add(n);
          exprReads(b.cond, live);
        }
        out.push({ k: 'if', branches: kept.map((b) => ({ cond: b.cond, body: b.body })), orelse: orelse && orelse.body.length > 0 ? orelse.body : null });
        break;
      }
      case 'for':
      case 'while': {
        // Live at the end of the body: live after the loop, what the header reads,
        // and what the next iteration reads before writing it (a fixpoint).
        const atEnd = new Set(live);
        exprReads(s.k === 'for' ? s.iter : s.cond, atEnd);
        let inner = backward(s.body, atEnd);
        for (;;) {
          const size = atEnd.size;
          for (const n of inner.liveIn) atEnd.add(n);
          if (atEnd.size === size) break;
          inner = backward(s.body, atEnd);
        }
        if (!inner.body.some((x) => !isLoopControl(s, x))) break;
        for (const n of inner.liveIn) live.add(n);
        exprReads(s.k === 'for' ? s.iter : s.cond, live);
        out.push({ ...s, body: inner.body });
        break;
      }
      default: {
        const w = writes(s);
        if (![...w].some((n) => live.has(n))) break;
        // Only a plain assignment kills: `x += 1` and `x[i] = v` keep the old `x`.
        if (s.k === 'assign' && s.target.k === 'name' && !reads(s).has(s.target.name)) live.delete(s.target.name);
        for (const n of reads(s)) live.add(n);
        out.push(s);
      }
    }
  }
  return { body: out.reverse(), liveIn: live };
}

function subExprs(e: Expr): Expr[] {
  switch (e.k) {
    case 'lit':
    case 'var':
      return [];
    case 'bin':
    case 'cmp':
    case 'and':
    case 'or':
      return [e.l, e.r];
    case 'not':
    case 'neg':
      return [e.e];
    case 'ifexp':
      return [e.cond, e.a, e.b];
    case 'call':
      return e.args;
    case 'method':
      return [e.obj, ...e.args];
    case 'index':
      return [e.obj, e.idx];
    case 'slice':
      return [e.obj, ...[e.lo, e.hi, e.step].filter((x): x is Expr => x !== null)];
    case 'list':
    case 'tuple':
      return e.items;
    case 'dict':
      return e.entries.flat();
    case 'listcomp':
      return [e.iter, e.elt, ...(e.cond ? [e.cond] : [])];
    case 'dictcomp':
      return [e.iter, e.key, e.value, ...(e.cond ? [e.cond] : [])];
  }
}

function stmtExprs(s: Stmt): Expr[] {
  switch (s.k) {
    case 'assign':
    case 'aug':
      return s.target.k === 'item' ? [s.target.idx, s.value] : [s.value];
    case 'unpack':
      return [s.value];
    case 'expr':
    case 'return':
      return [s.e];
    case 'if':
      return [...s.branches.flatMap((b) => [b.cond, ...b.body.flatMap(stmtExprs)]), ...(s.orelse ?? []).flatMap(stmtExprs)];
    case 'for':
      return [s.iter, ...s.body.flatMap(stmtExprs)];
    case 'while':
      return [s.cond, ...s.body.flatMap(stmtExprs)];
    case 'break':
    case 'continue':
      return [];
  }
}

/** Names of the functions `f` calls (builtins included). */
export function callees(f: FuncDef): Set<string> {
  const out = new Set<string>();
  const walk = (e: Expr): void => {
    if (e.k === 'call') out.add(e.fn);
    for (const x of subExprs(e)) walk(x);
  };
  for (const s of f.body) for (const e of stmtExprs(s)) walk(e);
  return out;
}

/** Names `f`'s body reads anywhere. */
export function namesRead(f: FuncDef): Set<string> {
  const out = new Set<string>();
  for (const s of f.body) for (const e of stmtExprs(s)) exprReads(e, out);
  return out;
}
