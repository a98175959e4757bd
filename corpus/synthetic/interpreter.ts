/**
 * The reference interpreter: runs a program of the subset the way CPython would.
 *
 * It is why every generated program is known to be valid, exception-free and
 * within budget before it is emitted: the generator builds a candidate, runs it
 * here on its own entry arguments, and rejects it when it raises, loops too
 * long, or lets a value grow past the configured bounds. It counts events with
 * settrace semantics (call, one line event per executed statement, loop headers
 * once more than their iterations, return), so its count tracks what the tracer
 * records. The Python semantics used (floor division, modulo sign, slicing,
 * `split`, `repr`) are checked against native CPython in tests.
 */
import type { BinOp, Expr, FuncDef, PyDict, PyList, PyValue, Stmt, Target } from './ast.js';
import { asInt, asList, asSeq, asStr, contains, dictKey, floorDiv, isInt, list, pyCompare, pyEq, pyMod, pyRepr, pySplit, reject, sliceIndices, truthy, tuple } from './values.js';

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
