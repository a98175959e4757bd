/**
 * The program builder: functions, scopes, statements and loops. It draws a
 * candidate program from the knobs; what depends on a value's type comes from
 * the table in ./value-types.ts, and the recursive helpers from ./recursive.ts.
 */
import type { Draws } from '../../src/rng.js';
import { assign, aug, bin, call, cmp, ifs, lit, meth, ret, v, type BinOp, type Expr, type FuncDef, type PyValue, type Stmt } from './ast.js';
import { callees, eliminateDeadCode, namesRead } from './dead-code.js';
import { PYTHON_KEYWORDS } from '../keywords.js';
import type { Feature, Knobs } from './knobs.js';
import { printExpr } from './printer.js';
import { RECURSIVE } from './recursive.js';
import { Rejected } from './values.js';
import { ACCUMULATOR_TYPES, TYPES, VALUE_TYPES, type Builder, type Option, type Ty } from './value-types.js';

interface Var {
  name: string;
  ty: Ty;
  /** Times an expression has read it; unread variables are preferred, so values flow to the result. */
  reads: number;
  /** Loop counters and iterated containers: the body must not reassign or resize them. */
  locked: boolean;
  /** Loop targets are read eagerly by the loop body. */
  loopVar: boolean;
  param: boolean;
  /** A loop's accumulator or a helper's result: what the function is about, so the return prefers it. */
  hint: boolean;
  /** A single character (a loop over a string): not sliced, searched or iterated again. */
  char: boolean;
}

interface HelperSig {
  name: string;
  params: Ty[];
  ret: Ty;
  /** Builds the argument expressions at a call site (recursion bounds its argument there). */
  args: () => Expr[] | null;
  called: boolean;
}

/** Names only ever given to single characters taken from a string. */
const CHAR_NAMES = new Set(['ch', 'c', 'letter']);

const CONSONANTS = 'bdfghklmnprstvz';
const VOWELS = 'aeiou';
const FINALS = 'lnrstx';

/**
 * A made-up identifier: one or two consonant-vowel syllables (rarely three), sometimes a final
 * consonant, a second part after `_`, or a digit (`ko`, `bale`, `tisun`, `ra_mo`, `lusa2`).
 */
function madeUpName(rng: Draws): string {
  const part = (): string => {
    let s = '';
    for (let i = rng.chance(0.1) ? 3 : rng.between(1, 2); i > 0; i--) s += CONSONANTS[rng.between(0, CONSONANTS.length - 1)]! + VOWELS[rng.between(0, VOWELS.length - 1)]!;
    if (rng.chance(0.3)) s += FINALS[rng.between(0, FINALS.length - 1)]!;
    return s;
  };
  let name = part();
  if (rng.chance(0.15)) name += `_${part()}`;
  if (rng.chance(0.15)) name += String(rng.between(1, 9));
  return name;
}

/** Function names of the subset: never used as variables. */
const RESERVED = new Set(['f', 'len', 'sum', 'max', 'min', 'abs', 'sorted', 'str', 'list', 'set', 'range', 'enumerate', 'zip', 'divmod', 'reversed', 'dict']);

/** Whether `e` reads one of the comprehension targets (`[len(name) for w in words]` would not). */
function mentionsAny(e: Expr, targets: [string, Ty][]): boolean {
  const text = printExpr(e);
  return targets.some(([n]) => new RegExp(`\\b${n}\\b`).test(text));
}

/**
 * Forgets the entries added after the first `size`. Scopes only ever grow or
 * lose their newest names, so insertion order makes this a rollback.
 */
function truncate<K, V>(map: Map<K, V>, size: number): void {
  let i = 0;
  for (const k of map.keys()) if (i++ >= size) map.delete(k);
}

export class ProgramBuilder implements Builder {
  private readonly feats: Set<Feature>;
  private scope = new Map<string, Var>();
  /** Every name bound in the current function with its type; names are never reused with another type. */
  private bound = new Map<string, Ty>();
  private loops = 0;
  private loopKinds: ('for' | 'while')[] = [];
  private helpers: HelperSig[] = [];
  private depthLimit: number;
  /** Set while building a helper call's arguments, so calls do not nest. */
  private inCall = false;
  /** A variable being updated: its own new value should not be built from it (`x -= x`). */
  private excluded: string | null = null;

  constructor(
    readonly rng: Draws,
    readonly knobs: Knobs,
  ) {
    this.feats = new Set(knobs.features);
    this.depthLimit = knobs.maxDepth;
  }

  has(f: Feature): boolean {
    return this.feats.has(f);
  }

  build(): { funcs: FuncDef[]; args: PyValue[] } {
    const funcs: FuncDef[] = [];
    const nHelpers = this.has('helper') || this.has('recursion') ? this.rng.between(0, this.knobs.helpers) : 0;
    for (let i = 0; i < nHelpers; i++) {
      const useRec = this.has('recursion') && (!this.has('helper') || this.rng.chance(0.5));
      const def = useRec ? this.recursiveHelper() : this.plainHelper();
      if (def && !funcs.some((f) => f.name === def.name)) funcs.push(def);
    }
    const { def, args } = this.mainFunction();
    funcs.push(def);
    const pruned = funcs.map(eliminateDeadCode);
    // Helpers whose calls were all pruned away are dropped with them.
    const reachable = new Set(['f']);
    for (let i = pruned.length - 1; i >= 0; i--) {
      if (reachable.has(pruned[i]!.name)) for (const c of callees(pruned[i]!)) reachable.add(c);
    }
    // A helper that ignores a parameter (`def combine(m, k): return m`) is not worth a call.
    for (const h of pruned.slice(0, -1)) {
      const read = namesRead(h);
      if (reachable.has(h.name) && h.params.some((p) => !read.has(p))) throw new Rejected('helper ignores a parameter');
    }
    // Parameters the pruned f no longer reads leave the signature and the entry.
    const main = pruned[pruned.length - 1]!;
    const used = namesRead(main);
    const keepParam = main.params.map((p) => used.has(p));
    if (!keepParam.some(Boolean)) throw new Rejected('f ignores its inputs');
    pruned[pruned.length - 1] = { ...main, params: main.params.filter((_, i) => keepParam[i]) };
    return { funcs: pruned.filter((h) => reachable.has(h.name)), args: args.filter((_, i) => keepParam[i]) };
  }

  // --- functions -----------------------------------------------------------

  private resetFunction(): void {
    this.scope = new Map();
    this.bound = new Map();
    this.loops = 0;
    this.loopKinds = [];
  }

  private paramTypes(): Ty[] {
    const pool: Ty[] = [];
    for (const ty of this.typesInUse()) {
      const p = VALUE_TYPES[ty].param;
      if (!p || (p.chance !== undefined && !this.rng.chance(p.chance))) continue;
      for (let i = 0; i < p.copies; i++) pool.push(ty);
    }
    const n = this.rng.between(1, this.knobs.maxParams);
    const tys: Ty[] = [];
    for (let i = 0; i < n; i++) tys.push(this.rng.pick(pool));
    return tys;
  }

  private addParam(ty: Ty): string {
    const names = VALUE_TYPES[ty].param?.names;
    if (!names) throw new Error(`${ty} is never a parameter`);
    const name = this.freshName(ty, names);
    this.declare(name, ty, { param: true });
    return name;
  }

  private mainFunction(): { def: FuncDef; args: PyValue[] } {
    this.resetFunction();
    const tys = this.paramTypes();
    const params = tys.map((ty) => this.addParam(ty));
    const args = tys.map((ty) => VALUE_TYPES[ty].param!.input(this));
    const n = this.rng.between(Math.max(1, Math.ceil(this.knobs.statements / 2)), this.knobs.statements);
    // Every f has at least one top-level loop: execution worth tracing.
    const loop = (): Stmt[] => {
      for (let i = 0; i < 4; i++) {
        const useFor = this.has('for') && (!this.has('while') || this.rng.chance(0.65));
        const s = this.attempt(() => (useFor ? this.forLoop(0) : this.whileLoop(0)));
        if (s) return s;
      }
      return this.stmt(0);
    };
    const nLoops = this.has('for') || this.has('while') ? Math.min(n, Math.max(1, Math.floor(this.knobs.maxLoops / 2))) : 0;
    const body: Stmt[] = [];
    for (let i = 0; i < nLoops; i++) body.push(...this.block(Math.floor((n - nLoops) / nLoops), 0), ...loop());
    body.push(...this.block(n - nLoops - nLoops * Math.floor((n - nLoops) / nLoops), 0));
    body.push(ret(this.returnExpr()));
    return { def: { name: 'f', params, body }, args };
  }

  private plainHelper(): FuncDef | null {
    this.resetFunction();
    const sigs: { name: string[]; params: Ty[]; ret: Ty; need: Feature[] }[] = [
      { name: ['adjust', 'scale', 'score', 'weight', 'bump'], params: ['int'], ret: 'int', need: [] },
      { name: ['combine', 'mix', 'gap', 'blend'], params: ['int', 'int'], ret: 'int', need: [] },
      { name: ['clamp', 'fit'], params: ['int', 'int', 'int'], ret: 'int', need: ['compare'] },
      { name: ['is_good', 'accept', 'check'], params: ['int'], ret: 'bool', need: ['compare'] },
      { name: ['clean', 'transform', 'shout', 'encode', 'decorate'], params: ['str'], ret: 'str', need: ['str'] },
      { name: ['score_word', 'weight_of', 'measure'], params: ['str'], ret: 'int', need: ['str'] },
      { name: ['summarize', 'total_of', 'spread'], params: ['ilist'], ret: 'int', need: ['list'] },
      { name: ['normalize', 'filtered', 'shifted'], params: ['ilist'], ret: 'ilist', need: ['list'] },
    ];
    const usable = sigs.filter((s) => s.need.every((f) => this.has(f)));
    const sig = this.rng.pick(usable);
    const name = this.rng.pick(sig.name);
    if (this.helpers.some((h) => h.name === name)) return null;
    const params = sig.params.map((ty) => this.addParam(ty));
    // Helpers stay short and shallow: the interesting nesting belongs to f.
    const savedLimit = this.depthLimit;
    this.depthLimit = Math.min(2, this.knobs.maxDepth);
    const body = this.block(this.rng.between(1, 3), 0);
    this.depthLimit = savedLimit;
    body.push(ret(this.expr(sig.ret, 2, true)));
    this.helpers.push({
      name,
      params: sig.params,
      ret: sig.ret,
      args: () => sig.params.map((ty) => this.expr(ty, 1)),
      called: false,
    });
    return { name, params, body };
  }

  /** A bounded recursive helper; its call site caps the argument so the depth stays small. */
  private recursiveHelper(): FuncDef | null {
    this.resetFunction();
    const templates = RECURSIVE.filter((t) => t.need.every((f) => this.has(f)));
    const t = this.rng.pick(templates);
    if (this.helpers.some((h) => h.name === t.def.name)) return null;
    this.helpers.push({ name: t.def.name, params: t.params, ret: t.ret, args: () => t.args(this), called: false });
    return t.def;
  }

  // --- names and scope -----------------------------------------------------

  /**
   * A name for a new variable. Loop targets (`allowReuse`) may take a name an
   * earlier loop used with the same type; nothing takes a helper's name, which
   * would shadow the function for the whole body.
   */
  private freshName(ty: Ty, pool: readonly string[], allowReuse = false): string {
    const ok = (n: string): boolean => {
      if (this.scope.has(n) || RESERVED.has(n) || this.helpers.some((h) => h.name === n)) return false;
      const prev = this.bound.get(n);
      return prev === undefined || (allowReuse && prev === ty);
    };
    // Made-up names only where the pool carries no meaning the builder reads (single characters).
    if (this.knobs.freshNames > 0 && !pool.some((n) => CHAR_NAMES.has(n)) && this.rng.chance(this.knobs.freshNames)) {
      for (let i = 0; i < 8; i++) {
        const n = madeUpName(this.rng);
        if (ok(n) && !PYTHON_KEYWORDS.has(n)) return n;
      }
    }
    const free = pool.filter(ok);
    if (free.length > 0) return this.rng.pick(free);
    for (let i = 2; ; i++) {
      const n = `${pool[0]}${i}`;
      if (ok(n)) return n;
    }
  }

  private declare(name: string, ty: Ty, opts: { param?: boolean; loopVar?: boolean; locked?: boolean } = {}): void {
    this.scope.set(name, { name, ty, reads: 0, locked: opts.locked ?? false, loopVar: opts.loopVar ?? false, param: opts.param ?? false, hint: false, char: CHAR_NAMES.has(name.replace(/\d+$/, '')) });
    this.bound.set(name, ty);
  }

  /** Variables of a type; `'text'` means strings that are not single characters. */
  private varsOf(ty: Ty | 'text', writable = false): Var[] {
    const want = ty === 'text' ? 'str' : ty;
    const out: Var[] = [];
    for (const x of this.scope.values()) {
      if (x.ty !== want || (ty === 'text' && x.char) || x.name === this.excluded) continue;
      if (!writable || (!x.locked && !x.loopVar && !x.param)) out.push(x);
    }
    return out;
  }

  private excluding<T>(name: string, fn: () => T): T {
    const saved = this.excluded;
    this.excluded = name;
    const result = fn();
    this.excluded = saved;
    return result;
  }

  /** Reads a variable of type `ty`, preferring loop targets and values not read yet. */
  readVar(ty: Ty | 'text'): Expr | null {
    const vars = this.varsOf(ty);
    if (vars.length === 0) return null;
    const chosen = this.rng.weighted(vars.map((x) => [1 + (x.reads === 0 ? 3 : 0) + (x.loopVar ? 4 : 0), x] as const));
    chosen.reads++;
    return v(chosen.name);
  }

  /** Runs `fn` in a nested block: names first bound inside are out of scope afterwards. */
  private nested<T>(fn: () => T): T {
    const before = this.scope.size;
    const result = fn();
    truncate(this.scope, before);
    return result;
  }

  private withLocked<T>(names: string[], fn: () => T): T {
    const changed = names.map((n) => this.scope.get(n)).filter((x): x is Var => !!x && !x.locked);
    for (const x of changed) x.locked = true;
    const result = fn();
    for (const x of changed) x.locked = false;
    return result;
  }

  // --- values --------------------------------------------------------------

  smallInt(lo = 0): number {
    const r = this.knobs.valueRange;
    return this.rng.between(this.knobs.negatives && lo < 0 ? -r : lo, r);
  }

  private typesInUse(): Ty[] {
    return TYPES.filter((ty) => VALUE_TYPES[ty].enabled((f) => this.has(f)));
  }

  literal(ty: Ty): Expr {
    return VALUE_TYPES[ty].literal(this);
  }

  // --- expressions ---------------------------------------------------------

  /**
   * Tries weighted options until one gives a value. The number of tries is
   * capped: options build sub-expressions that can fail in turn, and an
   * exhaustive search multiplies at every level.
   */
  first<T>(options: readonly Option<T>[], tries = 4): T | null {
    const weights = options.map(([w]) => Math.max(0, w));
    let total = weights.reduce((a, b) => a + b, 0);
    for (let t = 0; t < tries && total > 0; t++) {
      let r = this.rng.next() * total;
      let i = -1;
      for (let j = 0; j < weights.length; j++) {
        if (weights[j] === 0) continue;
        i = j;
        if (r < weights[j]!) break;
        r -= weights[j]!;
      }
      // Subtracting weights can leave a rounding residue in `total` after the last one.
      if (i < 0) break;
      const x = options[i]![1]();
      if (x !== null) return x;
      total -= weights[i]!;
      weights[i] = 0;
    }
    return null;
  }

  /** An expression of type `ty` at most `d` operators deep; `fresh` avoids a bare literal. */
  expr(ty: Ty, d: number, fresh = false): Expr {
    return this.first(this.exprOptions(ty, d, fresh)) ?? this.literal(ty);
  }

  /** A non-literal expression, or null when nothing in scope gives one (so `4 // 9` never appears). */
  live(ty: Ty, d: number): Expr | null {
    return this.first(this.exprOptions(ty, d, true));
  }

  /** The type's expression options; at depth 0 most types offer only a variable, a literal or a helper call. */
  private exprOptions(ty: Ty, d: number, fresh: boolean): Option<Expr>[] {
    const t = VALUE_TYPES[ty];
    if (d <= 0 && !t.anyDepth) return [[4, () => this.readVar(ty)], [fresh ? 0 : 1, () => this.literal(ty)], this.helperOption(ty)];
    return t.exprs(this, d, fresh);
  }

  helperOption(ty: Ty): Option<Expr> {
    const uncalled = this.helpers.some((h) => !h.called && h.ret === ty) ? 6 : 0.2;
    return [uncalled, () => this.helperCall(ty)];
  }

  private helperCall(ty: Ty): Expr | null {
    const hs = this.helpers.filter((h) => h.ret === ty);
    if (hs.length === 0 || this.inCall) return null;
    const h = this.rng.pick(hs);
    this.inCall = true;
    const args = h.args();
    this.inCall = false;
    if (!args) return null;
    h.called = true;
    return call(h.name, ...args);
  }

  ifExp(ty: Ty, d: number): Expr | null {
    const a = this.live(ty, d - 1);
    const b = this.expr(ty, 0);
    if (!a || printExpr(a) === printExpr(b)) return null;
    return { k: 'ifexp', cond: this.expr('bool', d - 1, true), a, b };
  }

  /** `make(l, r)` unless both sides print the same (`text == text`, `min(low, low)`). */
  distinctPair(l: Expr, r: Expr, make: (l: Expr, r: Expr) => Expr): Expr | null {
    return printExpr(l) === printExpr(r) ? null : make(l, r);
  }

  /** A condition that is not a constant, or null. */
  private cond(d: number): Expr | null {
    return this.live('bool', d);
  }

  binLive(op: BinOp, ty: Ty, d: number, right: () => Expr): Expr | null {
    const l = this.live(ty, d - 1);
    if (!l) return null;
    let r = right();
    // `x + -3` reads as `x - 3`.
    if ((op === '+' || op === '-') && r.k === 'lit' && typeof r.v === 'number' && r.v < 0) {
      op = op === '+' ? '-' : '+';
      r = lit(-r.v);
    }
    // `k - k`, `k % k`: always the same value, so no execution to learn; nor in `x + 0`, `x * 1`.
    if (op !== '+' && op !== '*' && printExpr(l) === printExpr(r)) return null;
    if (r.k === 'lit' && ((r.v === 0 && (op === '+' || op === '-')) || (r.v === 1 && (op === '*' || op === '//')))) return null;
    return bin(op, l, r);
  }

  fromVar(ty: Ty | 'text', make: (x: Expr) => Expr | null): Expr | null {
    const x = this.readVar(ty);
    return x && make(x);
  }

  collectionLen(): Expr | null {
    const tys = (['ilist', 'text', 'slist', 'dict'] as const).filter((t) => this.varsOf(t).length > 0);
    if (tys.length === 0) return null;
    return call('len', this.readVar(this.rng.pick(tys))!);
  }

  someSlice(x: Expr): Expr {
    const n = (): Expr => lit(this.rng.between(1, 3));
    return this.rng.weighted<() => Expr>([
      [2, () => ({ k: 'slice', obj: x, lo: n(), hi: null, step: null })],
      [2, () => ({ k: 'slice', obj: x, lo: null, hi: n(), step: null })],
      [1, () => ({ k: 'slice', obj: x, lo: lit(-this.rng.between(1, 3)), hi: null, step: null })],
      [1, () => ({ k: 'slice', obj: x, lo: null, hi: null, step: lit(2) })],
    ])();
  }

  /** A comprehension over a list, string or range in scope; its variable is local to it. */
  listComp(ty: 'ilist' | 'slist'): Expr | null {
    const src = this.iterSource(false);
    if (!src) return null;
    return this.nested(() => {
      for (const [name, t] of src.targets) this.declare(name, t, { loopVar: true });
      const elt = this.expr(ty === 'ilist' ? 'int' : 'str', 1, true);
      if (!mentionsAny(elt, src.targets)) return null;
      const cond = this.rng.chance(0.5) && this.has('compare') ? this.cond(1) : null;
      return { k: 'listcomp', elt, targets: src.targets.map(([n]) => n), iter: src.iter, cond } satisfies Expr;
    });
  }

  dictComp(): Expr | null {
    const src = this.iterSource(false);
    if (!src || !src.targets.some(([, t]) => t === 'str')) return null;
    return this.nested(() => {
      for (const [name, t] of src.targets) this.declare(name, t, { loopVar: true });
      const key = this.expr('str', 0, true);
      const value = this.expr('int', 1, true);
      if (!mentionsAny(key, src.targets)) return null;
      return { k: 'dictcomp', key, value, targets: src.targets.map(([n]) => n), iter: src.iter, cond: null } satisfies Expr;
    });
  }

  /**
   * Something to loop over and the loop targets with their types. Iterated
   * containers are returned so the caller can lock them against resizing.
   */
  private iterSource(allowRange = true): { iter: Expr; targets: [string, Ty][]; locks: string[] } | null {
    const pickVar = (ty: Ty | 'text'): Var | null => {
      const vs = this.varsOf(ty);
      if (vs.length === 0) return null;
      const x = this.rng.weighted(vs.map((y) => [1 + (y.reads === 0 ? 2 : 0), y] as const));
      x.reads++;
      return x;
    };
    const target = (ty: Ty, pool: readonly string[]): [string, Ty] => [this.freshName(ty, pool, true), ty];
    const options: Option<{ iter: Expr; targets: [string, Ty][]; locks: string[] }>[] = [
      [this.has('list') ? 4 : 0, () => {
        const x = pickVar('ilist');
        return x && { iter: v(x.name), targets: [target('int', ['x', 'n', 'v', 'num', 'item', 'val'])], locks: [x.name] };
      }],
      [this.has('str') ? 2 : 0, () => {
        const x = pickVar('slist');
        return x && { iter: v(x.name), targets: [target('str', ['w', 'word', 'name', 'token', 'part'])], locks: [x.name] };
      }],
      [this.has('str') ? 2 : 0, () => {
        const x = pickVar('text');
        return x && { iter: v(x.name), targets: [target('str', ['ch', 'c', 'letter'])], locks: [] };
      }],
      [allowRange ? 2.5 : 1, () => {
        const n = this.readVar('int');
        const hi = n && this.rng.chance(0.6) ? (this.rng.chance(0.5) ? n : bin('+', n, lit(1))) : lit(this.rng.between(2, 8));
        const lo = this.rng.chance(0.3) ? [lit(this.rng.between(1, 2))] : [];
        return { iter: call('range', ...lo, hi), targets: [target('int', ['i', 'j', 'k', 'step_no'])], locks: [] };
      }],
      [this.has('list') ? 1.2 : 0, () => {
        const x = pickVar('ilist') ?? pickVar('slist');
        return x && { iter: call('range', call('len', v(x.name))), targets: [target('int', ['i', 'j', 'idx'])], locks: [x.name] };
      }],
      [this.has('list') && this.has('tuple') ? 1 : 0, () => {
        const x = pickVar('ilist') ?? pickVar('slist');
        return x && { iter: call('enumerate', v(x.name)), targets: [target('int', ['i', 'idx', 'pos']), target(x.ty === 'ilist' ? 'int' : 'str', x.ty === 'ilist' ? ['x', 'v', 'num'] : ['w', 'word'])], locks: [x.name] };
      }],
      [this.has('dict') ? 1.5 : 0, () => {
        const x = pickVar('dict');
        return x && { iter: meth(v(x.name), 'items'), targets: [target('str', ['key', 'name', 'k', 'w']), target('int', ['val', 'cnt', 'amount', 'c'])], locks: [x.name] };
      }],
      [this.has('list') && this.has('str') ? 0.6 : 0, () => {
        const a = pickVar('slist');
        const b = a && pickVar('ilist');
        return a && b && { iter: call('zip', v(a.name), v(b.name)), targets: [target('str', ['w', 'name', 'label']), target('int', ['x', 'n', 'amount'])], locks: [a.name, b.name] };
      }],
    ];
    return this.first(options);
  }

  // --- statements ----------------------------------------------------------

  /** `n` statements; `extra` (when given) is built in place of statement `at`, after those before it. */
  private block(n: number, depth: number, extra?: { at: number; make: () => Stmt[] }): Stmt[] {
    const out: Stmt[] = [];
    for (let i = 0; i <= n; i++) {
      if (extra && extra.at === i) out.push(...extra.make());
      if (i < n) out.push(...this.stmt(depth));
    }
    return out;
  }

  /** Runs a statement builder; when it gives up, names it declared are forgotten. */
  private attempt(fn: () => Stmt[] | null): Stmt[] | null {
    const scope = this.scope.size;
    const bound = this.bound.size;
    const loops = this.loops;
    const result = fn();
    if (result === null) {
      truncate(this.scope, scope);
      truncate(this.bound, bound);
      this.loops = loops;
    }
    return result;
  }

  private stmt(depth: number): Stmt[] {
    const canNest = depth < this.depthLimit;
    const canLoop = canNest && this.loops < this.knobs.maxLoops;
    const inLoop = this.loopKinds.length > 0;
    const helperPending = this.helpers.some((h) => !h.called);
    const options: Option<Stmt[]>[] = [
      [3, () => this.assignNew()],
      [3, () => this.update()],
      [helperPending ? 6 : 0, () => {
        // An earlier failed option may have used the helper meanwhile.
        const pending = this.helpers.filter((h) => !h.called);
        return pending.length > 0 ? this.assignNew(this.rng.pick(pending).ret) : null;
      }],
      [canNest && this.has('if') ? 2 : 0, () => {
        const s = this.ifStmt(depth);
        return s && [s];
      }],
      [canLoop && this.has('for') ? 3 : 0, () => this.forLoop(depth)],
      [canLoop && this.has('while') ? 1.5 : 0, () => this.whileLoop(depth)],
      [this.has('tuple') ? 0.7 : 0, () => this.unpack()],
      [this.has('comprehension') ? 1 : 0, () => this.comprehension()],
      [inLoop && this.has('break') && this.has('if') ? 0.6 : 0, () => this.breakOrContinue()],
    ];
    const s = this.first<Stmt[]>(options.map(([w, fn]) => [w, () => this.attempt(fn)] as const));
    return s ?? [assign(this.freshName('int', VALUE_TYPES.int.names), this.literal('int'))];
  }

  private assignNew(forced?: Ty): Stmt[] {
    const ty = forced ?? this.rng.weighted(this.typesInUse().map((t) => [VALUE_TYPES[t].newVar, t] as const));
    const calls = this.helpers.filter((h) => h.called).length;
    const value = this.expr(ty, 2, true);
    const name = this.freshName(ty, VALUE_TYPES[ty].names);
    this.declare(name, ty);
    if (this.helpers.filter((h) => h.called).length > calls) this.scope.get(name)!.hint = true;
    return [assign(name, value)];
  }

  /** `squares = [x * x for x in nums if x > 0]` and the like; the result is what the function is about. */
  private comprehension(): Stmt[] | null {
    const kinds: [number, Ty][] = [[2, 'ilist']];
    if (this.has('str')) kinds.push([1, 'slist']);
    if (this.has('dict') && this.has('str')) kinds.push([1, 'dict']);
    const ty = this.rng.weighted(kinds);
    const value = ty === 'dict' ? this.dictComp() : this.listComp(ty as 'ilist' | 'slist');
    if (!value) return null;
    const name = this.freshName(ty, VALUE_TYPES[ty].names);
    this.declare(name, ty);
    this.scope.get(name)!.hint = true;
    return [assign(name, value)];
  }

  /** Changes a variable already in scope (never a parameter, loop target or locked one). */
  private update(): Stmt[] | null {
    const candidates = this.typesInUse().flatMap((ty) => this.varsOf(ty, true));
    if (candidates.length === 0) return null;
    const x = this.rng.pick(candidates);
    return this.excluding(x.name, () => VALUE_TYPES[x.ty].update(this, x.name));
  }

  /** `if items: last = items.pop(); <use last>` — pops only from a non-empty list. */
  guardedPop(name: string, el: Ty): Stmt[] {
    return this.withLocked([name], () =>
      this.nested(() => {
        const popped = this.freshName(el, el === 'int' ? ['last', 'top', 'popped'] : ['last_word', 'top_word']);
        const pop = assign(popped, meth(v(name), 'pop', ...(this.rng.chance(0.3) ? [lit(0)] : [])));
        this.declare(popped, el, { loopVar: true });
        const use = this.update() ?? [];
        return [ifs(v(name), [pop, ...use])];
      }),
    );
  }

  private ifStmt(depth: number): Stmt | null {
    const branch = (): { cond: Expr; body: Stmt[] } | null => {
      const cond = this.cond(2);
      if (!cond) return null;
      const body = this.nested(() => this.block(this.rng.between(1, 2), depth + 1));
      return { cond, body };
    };
    const first = branch();
    if (!first) return null;
    const branches = [first];
    const second = this.rng.chance(0.25) ? branch() : null;
    if (second) branches.push(second);
    const orelse = this.rng.chance(0.45) ? this.nested(() => this.block(this.rng.between(1, 2), depth + 1)) : null;
    return { k: 'if', branches, orelse };
  }

  private breakOrContinue(): Stmt[] | null {
    // `continue` in a while loop could skip the counter's decrement.
    const kind = this.loopKinds[this.loopKinds.length - 1] === 'for' && this.rng.chance(0.5) ? 'continue' : 'break';
    const c = this.cond(1);
    return c && [ifs(c, [{ k: kind }])];
  }

  private unpack(): Stmt[] | null {
    const value = this.expr('tuple', 2, true);
    const names = [this.freshName('int', ['q', 'lo', 'a', 'first_val']), ''];
    this.declare(names[0]!, 'int');
    names[1] = this.freshName('int', ['r', 'hi', 'b', 'second_val']);
    this.declare(names[1], 'int');
    return [{ k: 'unpack', names, value }];
  }

  /** Body of a loop: a few statements, plus an update of `acc` so the loop does visible work. */
  private loopBody(depth: number, acc: string | null): Stmt[] {
    const n = this.rng.between(1, 3);
    const x = acc ? this.scope.get(acc) : undefined;
    if (!x) return this.block(n, depth + 1);
    return this.block(n - 1, depth + 1, {
      at: this.rng.between(0, n - 1),
      make: () => {
        const upd = this.accUpdate(x);
        const guard = this.has('if') && this.rng.chance(0.5) ? this.cond(1) : null;
        return guard ? [ifs(guard, upd)] : upd;
      },
    });
  }

  private accUpdate(x: Var): Stmt[] {
    return this.excluding(x.name, () => VALUE_TYPES[x.ty].accumulator?.update(this, x.name) ?? []);
  }

  /** A fresh accumulator initialised before a loop (`total = 0`, `out = ''`, `seen = []`, `counts = {}`). */
  private accumulator(): { init: Stmt; name: string } {
    const inUse = this.typesInUse();
    const ty = this.rng.weighted(ACCUMULATOR_TYPES.filter((t) => inUse.includes(t)).map((t) => [VALUE_TYPES[t].accumulator!.weight, t] as const));
    const name = this.freshName(ty, VALUE_TYPES[ty].names);
    const init = VALUE_TYPES[ty].accumulator!.init(this);
    this.declare(name, ty);
    this.scope.get(name)!.hint = true;
    return { init: assign(name, init), name };
  }

  /** What goes before most loops: an accumulator the body may update (`pre` holds its initialisation), or nothing. */
  private loopPrelude(): { pre: Stmt[]; acc: string | null } {
    if (!this.rng.chance(0.6)) return { pre: [], acc: null };
    const a = this.accumulator();
    return { pre: [a.init], acc: a.name };
  }

  private forLoop(depth: number): Stmt[] | null {
    const src = this.iterSource();
    if (!src) return null;
    this.loops++;
    const { pre, acc } = this.loopPrelude();
    this.loopKinds.push('for');
    const body = this.withLocked(src.locks, () =>
      this.nested(() => {
        for (const [name, ty] of src.targets) this.declare(name, ty, { loopVar: true });
        return this.loopBody(depth, acc);
      }),
    );
    this.loopKinds.pop();
    return [...pre, { k: 'for', targets: src.targets.map(([n]) => n), iter: src.iter, body }];
  }

  /** While loops whose counter provably decreases: the counter is locked and changed only at the end of the body. */
  private whileLoop(depth: number): Stmt[] | null {
    this.loops++;
    const kind = this.rng.weighted<'countdown' | 'halve' | 'index' | 'drain'>([
      [2, 'countdown'],
      [1.5, 'halve'],
      [this.has('list') ? 1.5 : 0, 'index'],
      [this.has('list') ? 1 : 0, 'drain'],
    ]);
    const { pre, acc } = this.loopPrelude();
    this.loopKinds.push('while');
    let loop: Stmt | null = null;
    if (kind === 'countdown' || kind === 'halve') {
      const name = this.freshName('int', kind === 'halve' ? ['n', 'num', 'rest'] : ['remaining', 'left', 'budget', 'countdown']);
      const start = this.loopStart();
      // The start may be a negative input: the loop then simply does not run.
      pre.push(assign(name, kind === 'halve' ? start : bin('%', start, lit(this.rng.between(5, 9)))));
      this.declare(name, 'int', { locked: true });
      const body = this.nested(() => this.loopBody(depth, acc));
      const dec: Stmt = kind === 'halve' ? aug(name, '//', lit(this.rng.pick([2, 2, 3, 10]))) : aug(name, '-', lit(this.rng.between(1, 2)));
      loop = { k: 'while', cond: cmp('>', v(name), lit(0)), body: [...body, dec] };
    } else if (kind === 'index') {
      const coll = this.varsOf('ilist').concat(this.varsOf('slist'), this.varsOf('text'));
      if (coll.length > 0) {
        const c = this.rng.pick(coll);
        c.reads++;
        const i = this.freshName('int', ['i', 'idx', 'pos', 'j']);
        pre.push(assign(i, lit(0)));
        this.declare(i, 'int', { locked: true });
        const body = this.withLocked([c.name], () =>
          this.nested(() => {
            const el: Ty = c.ty === 'ilist' ? 'int' : 'str';
            const item = this.freshName(el, el === 'int' ? ['x', 'cur', 'item'] : c.ty === 'str' ? ['ch', 'c', 'letter'] : ['w', 'word', 'piece']);
            const get = assign(item, { k: 'index', obj: v(c.name), idx: v(i) });
            this.declare(item, el, { loopVar: true });
            return [get, ...this.loopBody(depth, acc)];
          }),
        );
        loop = { k: 'while', cond: cmp('<', v(i), call('len', v(c.name))), body: [...body, aug(i, '+', lit(this.rng.chance(0.8) ? 1 : 2))] };
      }
    } else {
      const src = this.readVar('ilist');
      if (src) {
        const stack = this.freshName('ilist', ['stack', 'queue', 'pending', 'todo']);
        pre.push(assign(stack, this.rng.chance(0.5) ? call('list', src) : { k: 'slice', obj: src, lo: null, hi: null, step: null }));
        this.declare(stack, 'ilist', { locked: true });
        const body = this.nested(() => {
          const item = this.freshName('int', ['top', 'item', 'cur']);
          const pop = assign(item, meth(v(stack), 'pop', ...(this.rng.chance(0.4) ? [lit(0)] : [])));
          this.declare(item, 'int', { loopVar: true });
          return [pop, ...this.loopBody(depth, acc)];
        });
        loop = { k: 'while', cond: v(stack), body };
      }
    }
    this.loopKinds.pop();
    if (!loop) return null;
    this.unlockAll(pre);
    return [...pre, loop];
  }

  /** Where a counter starts: an input-derived int (a parameter, a length) so the loop usually runs. */
  private loopStart(): Expr {
    const params = [...this.scope.values()].filter((x) => x.param && x.ty === 'int');
    const colls = [...this.scope.values()].filter((x) => x.param && (x.ty === 'ilist' || x.ty === 'str' || x.ty === 'slist'));
    const e = this.first<Expr>([
      [params.length > 0 ? 3 : 0, () => v(this.rng.pick(params).name)],
      [colls.length > 0 ? 2 : 0, () => call('len', v(this.rng.pick(colls).name))],
      [colls.some((x) => x.ty === 'ilist') && this.has('list') ? 1 : 0, () => call('sum', v(this.rng.pick(colls.filter((x) => x.ty === 'ilist')).name))],
      [1, () => this.live('int', 1)],
    ]);
    return e ?? lit(this.rng.between(3, 12));
  }

  /** After its loop, a counter is an ordinary variable again. */
  private unlockAll(pre: Stmt[]): void {
    for (const s of pre) if (s.k === 'assign' && s.target.k === 'name') {
      const x = this.scope.get(s.target.name);
      if (x) x.locked = false;
    }
  }

  /**
   * The result: computed values, preferring loop accumulators and helper
   * results, then values nothing has read yet; alone, as a pair, or combined.
   * Whatever it does not depend on is pruned afterwards.
   */
  private returnExpr(): Expr {
    const pool = [...this.scope.values()].filter((x) => !x.param && !x.loopVar);
    if (pool.length === 0) return this.expr(this.rng.pick(this.typesInUse()), 2, true);
    const weight = (x: Var): number => 1 + (x.hint ? 10 : 0) + (x.reads === 0 ? 2 : 0);
    const a = this.rng.weighted(pool.map((x) => [weight(x), x] as const));
    const others = pool.filter((x) => x !== a);
    if (others.length > 0 && this.has('tuple') && this.rng.chance(0.35)) {
      return { k: 'tuple', items: [v(a.name), v(this.rng.weighted(others.map((x) => [weight(x), x] as const)).name)] };
    }
    if (a.ty === 'int' && this.has('arith')) {
      const b = others.find((x) => x.ty === 'int');
      if (b && this.rng.chance(0.4)) return bin(this.rng.pick(['+', '-'] as const), v(a.name), v(b.name));
    }
    return v(a.name);
  }
}
