/**
 * Synthetic Python programs: seeded, deterministic functions with inputs, in the
 * spirit of Zaremba & Sutskever's "Learning to Execute" but with the data types
 * and idioms of everyday code (lists, strings, dicts, tuples, loops, helpers,
 * recursion, comprehensions).
 *
 *   generatePrograms({ count: 1000, seed: 1, preset: 'hard' })
 *
 * Each program is `def f(...)` (plus helper functions for `hard`) and an entry
 * call with literal arguments. Every candidate is run by a reference interpreter
 * of the subset (./synthetic/interpreter.ts) on its own entry before it is kept, so each
 * emitted program is valid Python, raises nothing, keeps its values bounded and
 * finishes within the preset's event window, far inside DEFAULT_LIMITS.maxSteps.
 * Programs are distinct by normalized source + entry, and the sequence for a
 * seed does not depend on `count`: asking for more programs extends the list.
 */
import { createHash } from 'node:crypto';

import { SplitMix32, type Draws } from '../src/rng.js';
import type { Program } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { normalizeSource } from './splits.js';
import type { BinOp, CmpOp, Expr, FuncDef, PyValue, Stmt } from './synthetic/ast.js';
import { callees, eliminateDeadCode, namesRead } from './synthetic/dead-code.js';
import { Interpreter } from './synthetic/interpreter.js';
import { resolveKnobs, type Feature, type Knobs, type Preset } from './synthetic/knobs.js';
import { printExpr, printProgram } from './synthetic/printer.js';
import { Rejected, list, pyRepr } from './synthetic/values.js';

export { ALL_FEATURES, PRESETS, PRESET_NAMES, resolveKnobs, type Feature, type Knobs, type Preset } from './synthetic/knobs.js';

export interface SyntheticOptions extends Partial<Knobs> {
  /** Programs to produce. */
  count: number;
  /** Same seed and options give identical programs. */
  seed: number;
  /** Starting point for the knobs (default 'medium'). */
  preset?: Preset;
}

/** Stable program id: the first 16 hex digits of sha256(normalized source, entry). */
export function programId(source: string, entry: string | null): string {
  return createHash('sha256')
    .update(normalizeSource(source))
    .update('\0')
    .update(entry ?? '')
    .digest('hex')
    .slice(0, 16);
}

/** Candidates in a row that may fail to give a new program before the knobs are declared unsatisfiable. */
const MAX_STALL = 5000;

/** `count` distinct programs for `seed`; the list for a larger count extends the smaller one. */
export function generatePrograms(opts: SyntheticOptions): Program[] {
  if (!Number.isInteger(opts.count) || opts.count < 0) {
    throw new TypeError(`Expected \`count\` to be a non-negative integer, got ${String(opts.count)}`);
  }
  const out: Program[] = [];
  if (opts.count === 0) return out;
  for (const p of iteratePrograms(opts)) {
    out.push(p);
    if (out.length === opts.count) break;
  }
  return out;
}

/**
 * The same programs as {@link generatePrograms}, one at a time and without end,
 * for callers that trace while generating. Throws a {@link CorpusError} when the
 * knobs leave no room for new programs (say, no loops but a high `minEvents`).
 */
export function* iteratePrograms(opts: Omit<SyntheticOptions, 'count'>): Generator<Program, never> {
  if (!Number.isInteger(opts.seed)) throw new TypeError(`Expected \`seed\` to be an integer, got ${String(opts.seed)}`);
  const preset = opts.preset ?? 'medium';
  const knobs = resolveKnobs(opts);
  const rng = new SplitMix32(opts.seed);
  const seen = new Set<string>();
  for (let stall = 0; ; stall++) {
    if (stall >= MAX_STALL) {
      throw new CorpusError(
        `No new synthetic program in ${MAX_STALL} candidates after ${seen.size}; the knobs leave too little room (enable more features, raise statements or valueRange, or lower minEvents)`,
      );
    }
    const cand = generateOne(rng, knobs);
    if (!cand) continue;
    const id = programId(cand.source, cand.entry);
    if (seen.has(id)) continue;
    seen.add(id);
    stall = -1;
    yield { id, source: cand.source, entry: cand.entry, origin: `synthetic:${preset}` };
  }
}

/** Longest repr of a returned value. */
const MAX_RESULT_CHARS = 150;

/** One candidate with its reference run, or null when it was rejected. */
export interface Candidate {
  source: string;
  entry: string;
  /** Events the reference interpreter counted (call + line + return, comprehension items). */
  events: number;
  /** repr of the value f returned in the reference run. */
  result: string;
}

/** Builds one candidate and runs it; null when it raised, left a bound, or missed the event window. */
export function generateOne(rng: Draws, knobs: Knobs): Candidate | null {
  const builder = new ProgramBuilder(rng, knobs);
  let built: { funcs: FuncDef[]; args: PyValue[] };
  try {
    built = builder.build();
  } catch (e) {
    if (e instanceof Rejected) return null;
    throw e;
  }
  const source = printProgram(built.funcs);
  const entry = `f(${built.args.map(pyRepr).join(', ')})`;
  const interp = new Interpreter(built.funcs, {
    maxEvents: knobs.maxEvents,
    maxInt: knobs.maxInt,
    maxStr: 50,
    maxLen: 20,
    maxDepth: 12,
  });
  try {
    const run = interp.run('f', built.args);
    if (run.events < knobs.minEvents) return null;
    const result = pyRepr(run.value);
    // Far below the tracer's maxValueChars (200), so results are never cut.
    if (result.length > MAX_RESULT_CHARS) return null;
    return { source, entry, events: run.events, result };
  } catch (e) {
    if (e instanceof Rejected) return null;
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Building programs

/** Static types the builder tracks; lists and dicts are homogeneous. */
type Ty = 'int' | 'bool' | 'str' | 'ilist' | 'slist' | 'dict' | 'tuple';

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

const NAMES: Record<Ty, readonly string[]> = {
  int: ['total', 'count', 'acc', 'result', 'best', 'diff', 'score', 'step', 'low', 'high', 'value', 'delta', 'steps', 'size', 'offset', 'cur', 'prev', 'carry', 'tally', 'largest', 'smallest', 'width', 'remaining', 'pos', 'gap', 'level'],
  bool: ['found', 'ok', 'flag', 'done', 'valid', 'seen_big', 'has_even', 'matched', 'is_small', 'changed'],
  str: ['out', 'label', 'word', 'prefix', 'suffix', 'key', 'line', 'msg', 'tag', 'joined', 'head', 'tail', 'code', 'first'],
  ilist: ['evens', 'odds', 'picked', 'squares', 'doubled', 'stack', 'queue', 'buf', 'sizes', 'diffs', 'kept', 'lengths', 'merged', 'window', 'seen', 'order'],
  slist: ['parts', 'tokens', 'names', 'chunks', 'pieces', 'kept_words', 'fields', 'labels', 'keys'],
  dict: ['counts', 'index', 'table', 'lookup', 'freq', 'groups', 'totals', 'last_seen', 'scores'],
  tuple: ['pair', 'bounds', 'span', 'qr', 'point', 'extremes'],
};

const PARAM_NAMES: Record<Ty, readonly string[]> = {
  int: ['n', 'k', 'x', 'limit', 'target', 'start', 'base', 'm'],
  bool: ['strict', 'flip'],
  str: ['text', 's', 'word', 'name', 'sentence'],
  ilist: ['nums', 'values', 'items', 'data', 'scores', 'xs'],
  slist: ['words', 'names', 'tokens', 'tags'],
  dict: ['prices', 'stock', 'ages', 'weights'],
  tuple: ['pair', 'span'],
};

/** Function names of the subset: never used as variables. */
const RESERVED = new Set(['f', 'len', 'sum', 'max', 'min', 'abs', 'sorted', 'str', 'list', 'set', 'range', 'enumerate', 'zip', 'divmod', 'reversed', 'dict']);

const WORDS = ['apple', 'banana', 'cherry', 'kiwi', 'lemon', 'mango', 'pear', 'plum', 'fig', 'grape', 'hello', 'world', 'code', 'data', 'node', 'tree', 'sun', 'moon', 'star', 'sky', 'red', 'blue', 'green', 'cat', 'dog', 'bird', 'fish', 'ab', 'abc', 'xyz', 'a', 'level', 'noon'];
const SUBSTRINGS = ['a', 'e', 'o', 'an', 'er', 'x', 'ee', 'ab', ' ', 'l'];
const CHARSETS = ['aeiou', 'xyz', 'abc', '0123456789', 'lmn'];
const SEPARATORS = ['-', ', ', ' ', '', '_', '/'];

// Shorthands for building nodes.
const v = (name: string): Expr => ({ k: 'var', name });
const lit = (x: PyValue): Expr => ({ k: 'lit', v: x });
const bin = (op: BinOp, l: Expr, r: Expr): Expr => ({ k: 'bin', op, l, r });
const cmp = (op: CmpOp, l: Expr, r: Expr): Expr => ({ k: 'cmp', op, l, r });
const call = (fn: string, ...args: Expr[]): Expr => ({ k: 'call', fn, args });
const meth = (obj: Expr, name: string, ...args: Expr[]): Expr => ({ k: 'method', obj, name, args });
const assign = (name: string, value: Expr): Stmt => ({ k: 'assign', target: { k: 'name', name }, value });
const aug = (name: string, op: BinOp, value: Expr): Stmt => ({ k: 'aug', target: { k: 'name', name }, op, value });
const ret = (e: Expr): Stmt => ({ k: 'return', e });
const ifs = (cond: Expr, body: Stmt[], orelse: Stmt[] | null = null): Stmt => ({ k: 'if', branches: [{ cond, body }], orelse });

type Option<T> = readonly [number, () => T | null];

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

const NEGATED: Record<CmpOp, CmpOp> = { '<': '>=', '<=': '>', '>': '<=', '>=': '<', '==': '!=', '!=': '==', in: 'not in', 'not in': 'in' };

class ProgramBuilder {
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
    private readonly rng: Draws,
    private readonly knobs: Knobs,
  ) {
    this.feats = new Set(knobs.features);
    this.depthLimit = knobs.maxDepth;
  }

  private has(f: Feature): boolean {
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
    const pool: Ty[] = ['int'];
    if (this.has('list')) pool.push('ilist', 'ilist');
    if (this.has('str')) pool.push('str', 'str');
    if (this.has('str') && this.has('list')) pool.push('slist');
    if (this.has('dict') && this.rng.chance(0.3)) pool.push('dict');
    const n = this.rng.between(1, this.knobs.maxParams);
    const tys: Ty[] = [];
    for (let i = 0; i < n; i++) tys.push(this.rng.pick(pool));
    return tys;
  }

  private addParam(ty: Ty): string {
    const name = this.freshName(ty, PARAM_NAMES[ty]);
    this.declare(name, ty, { param: true });
    return name;
  }

  private mainFunction(): { def: FuncDef; args: PyValue[] } {
    this.resetFunction();
    const tys = this.paramTypes();
    const params = tys.map((ty) => this.addParam(ty));
    const args = tys.map((ty) => this.inputValue(ty));
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
  private readVar(ty: Ty | 'text'): Expr | null {
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

  private smallInt(lo = 0): number {
    const r = this.knobs.valueRange;
    return this.rng.between(this.knobs.negatives && lo < 0 ? -r : lo, r);
  }

  private inputValue(ty: Ty): PyValue {
    const len = (min: number): number => this.rng.between(min, this.knobs.maxListLen);
    switch (ty) {
      case 'int':
        return this.rng.chance(0.8) ? this.rng.between(0, this.knobs.valueRange) : this.smallInt(-1);
      case 'bool':
        return this.rng.chance(0.5);
      case 'str':
        return this.rng.weighted<() => string>([
          [3, () => Array.from({ length: this.rng.between(1, Math.min(4, this.knobs.maxListLen)) }, () => this.rng.pick(WORDS)).join(' ')],
          [2, () => this.rng.pick(WORDS)],
          [1, () => Array.from({ length: this.rng.between(3, 8) }, () => this.rng.pick([...'abcde12345xyz'])).join('')],
        ])();
      case 'ilist':
        return list(Array.from({ length: len(this.rng.chance(0.05) ? 0 : 1) }, () => this.smallInt(-1)));
      case 'slist':
        return list(Array.from({ length: len(1) }, () => this.rng.pick(WORDS)));
      case 'dict': {
        const m = new Map<string | number, PyValue>();
        const n = len(1);
        for (let i = 0; i < n; i++) m.set(this.rng.pick(WORDS), this.rng.between(0, this.knobs.valueRange));
        return { t: 'dict', m };
      }
      case 'tuple':
        return { t: 'tuple', a: [this.smallInt(-1), this.smallInt(-1)] };
    }
  }

  private literal(ty: Ty): Expr {
    switch (ty) {
      case 'int':
        return lit(this.rng.chance(0.6) ? this.rng.between(0, Math.min(10, this.knobs.valueRange)) : this.smallInt(-1));
      case 'bool':
        return lit(this.rng.chance(0.5));
      case 'str':
        return lit(this.rng.chance(0.6) ? this.rng.pick(WORDS) : this.rng.pick(SUBSTRINGS));
      case 'ilist':
        return this.rng.chance(0.4) ? { k: 'list', items: [] } : { k: 'list', items: Array.from({ length: this.rng.between(1, 4) }, () => lit(this.smallInt(-1))) };
      case 'slist':
        return this.rng.chance(0.4) ? { k: 'list', items: [] } : { k: 'list', items: Array.from({ length: this.rng.between(1, 3) }, () => lit(this.rng.pick(WORDS))) };
      case 'dict':
        return this.rng.chance(0.6)
          ? { k: 'dict', entries: [] }
          : { k: 'dict', entries: Array.from({ length: this.rng.between(1, 3) }, (_, i) => [lit(WORDS[(i * 7 + this.rng.between(0, 6)) % WORDS.length]!), lit(this.rng.between(0, 9))] as [Expr, Expr]) };
      case 'tuple':
        return { k: 'tuple', items: [lit(this.smallInt(-1)), lit(this.smallInt(-1))] };
    }
  }

  private typesInUse(): Ty[] {
    const tys: Ty[] = ['int'];
    if (this.has('bool') || this.has('compare')) tys.push('bool');
    if (this.has('list')) tys.push('ilist');
    if (this.has('str')) tys.push('str');
    if (this.has('str') && this.has('list')) tys.push('slist');
    if (this.has('dict')) tys.push('dict');
    if (this.has('tuple')) tys.push('tuple');
    return tys;
  }

  // --- expressions ---------------------------------------------------------

  /**
   * Tries weighted options until one gives a value. The number of tries is
   * capped: options build sub-expressions that can fail in turn, and an
   * exhaustive search multiplies at every level.
   */
  private first<T>(options: readonly Option<T>[], tries = 4): T | null {
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
  private live(ty: Ty, d: number): Expr | null {
    return this.first(this.exprOptions(ty, d, true));
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

  private ifExp(ty: Ty, d: number): Expr | null {
    const a = this.live(ty, d - 1);
    const b = this.expr(ty, 0);
    if (!a || printExpr(a) === printExpr(b)) return null;
    return { k: 'ifexp', cond: this.expr('bool', d - 1, true), a, b };
  }

  /** `make(l, r)` unless both sides print the same (`text == text`, `min(low, low)`). */
  private distinctPair(l: Expr, r: Expr, make: (l: Expr, r: Expr) => Expr): Expr | null {
    return printExpr(l) === printExpr(r) ? null : make(l, r);
  }

  /** `not x` where people write it: on a name or a call; a negated comparison flips its operator instead. */
  private negation(d: number): Expr | null {
    const e = this.live('bool', d - 1);
    if (!e) return null;
    if (e.k === 'cmp') return { ...e, op: NEGATED[e.op] };
    return e.k === 'var' || e.k === 'method' || e.k === 'call' ? { k: 'not', e } : null;
  }

  /** A condition that is not a constant, or null. */
  private cond(d: number): Expr | null {
    return this.live('bool', d);
  }

  private binLive(op: BinOp, ty: Ty, d: number, right: () => Expr): Expr | null {
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

  private exprOptions(ty: Ty, d: number, fresh: boolean): Option<Expr>[] {
    const deep = d > 0;
    const litW = fresh ? 0 : 1;
    const uncalled = this.helpers.some((h) => !h.called && h.ret === ty) ? 6 : 0.2;
    const helper: Option<Expr> = [uncalled, () => this.helperCall(ty)];
    // Leaves: the full lists below gate everything else on `deep` (and allocate a closure each).
    if (!deep && ty !== 'bool' && ty !== 'tuple') {
      return [[4, () => this.readVar(ty)], [litW, () => this.literal(ty)], helper];
    }
    switch (ty) {
      case 'int':
        return [
          [4, () => this.readVar('int')],
          [litW, () => this.literal('int')],
          helper,
          [deep && this.has('arith') ? 3 : 0, () => this.binLive(this.rng.pick(['+', '-', '+'] as const), 'int', d, () => this.expr('int', d - 1))],
          [deep && this.has('arith') ? 1 : 0, () => this.binLive('*', 'int', d, () => lit(this.rng.between(2, 5)))],
          [deep && this.has('arith') ? 1.2 : 0, () => this.binLive(this.rng.pick(['//', '%'] as const), 'int', d, () => lit(this.rng.between(2, 9)))],
          [deep ? 1.5 : 0, () => this.collectionLen()],
          [deep && this.has('list') ? 1 : 0, () => this.fromVar('ilist', (x) => call('sum', x))],
          [deep && this.has('list') ? 0.8 : 0, () => this.fromVar('ilist', (x) => call(this.rng.pick(['max', 'min']), x))],
          [deep ? 0.5 : 0, () => {
            const l = this.live('int', d - 1);
            return l && this.distinctPair(l, this.expr('int', d - 1), (a, b) => call(this.rng.pick(['max', 'min']), a, b));
          }],
          [deep && this.knobs.negatives ? 0.4 : 0, () => call('abs', this.expr('int', d - 1, true))],
          [deep && this.has('list') ? 0.8 : 0, () => this.fromVar('ilist', (x) => ({ k: 'index', obj: x, idx: lit(this.rng.pick([0, -1, 1])) }))],
          [deep && this.has('str') ? 0.6 : 0, () => this.fromVar('text', (x) => meth(x, this.rng.pick(['find', 'count']), lit(this.rng.pick(SUBSTRINGS))))],
          [deep && this.has('list') ? 0.3 : 0, () => this.fromVar('ilist', (x) => meth(x, 'count', this.expr('int', 0)))],
          [deep && this.has('dict') ? 1 : 0, () => this.fromVar('dict', (x) => meth(x, 'get', this.expr('str', 0), lit(0)))],
          [deep && this.has('if') && this.has('compare') ? 0.5 : 0, () => this.ifExp('int', d)],
          [deep && this.has('list') ? 0.3 : 0, () => this.fromVar('ilist', (x) => call('set_len', x))],
          [deep && this.has('tuple') ? 0.4 : 0, () => this.fromVar('tuple', (x) => ({ k: 'index', obj: x, idx: lit(this.rng.between(0, 1)) }))],
        ];
      case 'bool':
        return [
          [2, () => this.readVar('bool')],
          [fresh ? 0 : 0.1, () => this.literal('bool')],
          helper,
          [this.has('compare') ? 4 : 1, () => {
            const l = this.live('int', d - 1);
            let r = l && this.expr('int', Math.min(d - 1, 0));
            // A length is never negative: compare it with something it could equal.
            if (l?.k === 'call' && l.fn === 'len' && r?.k === 'lit' && typeof r.v === 'number') r = lit(Math.abs(r.v) % 6);
            return l && r && printExpr(l) !== printExpr(r) ? cmp(this.rng.pick(['<', '<=', '>', '>=', '==', '!='] as const), l, r) : null;
          }],
          [this.has('arith') ? 1.2 : 0, () => {
            const l = this.live('int', 0);
            return l && cmp(this.rng.pick(['==', '!='] as const), bin('%', l, lit(this.rng.between(2, 3))), lit(0));
          }],
          [this.has('list') ? 0.8 : 0, () => this.fromVar('ilist', (x) => cmp(this.rng.pick(['in', 'not in'] as const), this.expr('int', 0), x))],
          [this.has('dict') ? 1 : 0, () => this.fromVar('dict', (x) => cmp(this.rng.pick(['in', 'not in'] as const), this.expr('str', 0, true), x))],
          [this.has('str') ? 1 : 0, () => this.fromVar('str', (x) => cmp('in', x, lit(this.rng.pick(CHARSETS))))],
          [this.has('str') ? 1 : 0, () => this.fromVar('str', (x) => meth(x, this.rng.pick(['startswith', 'endswith']), lit(this.rng.pick(SUBSTRINGS))))],
          [this.has('str') ? 0.6 : 0, () => this.fromVar('str', (x) => meth(x, this.rng.pick(['isdigit', 'isalpha'])))],
          [this.has('str') ? 0.4 : 0, () => this.fromVar('str', (x) => this.distinctPair(x, this.expr('str', 0), (l, r) => cmp(this.rng.pick(['==', '!='] as const), l, r)))],
          [deep && this.has('bool') ? 0.5 : 0, () => this.negation(d)],
          [deep && this.has('bool') ? 1 : 0, () => {
            const l = this.live('bool', d - 1);
            const r = l && this.live('bool', d - 1);
            return l && r && this.distinctPair(l, r, (a, b) => ({ k: this.rng.pick(['and', 'or'] as const), l: a, r: b }));
          }],
          [this.has('compare') ? 0.6 : 0, () => {
            const n = this.collectionLen();
            return n && cmp(this.rng.pick(['>', '<', '>=', '=='] as const), n, lit(this.rng.between(0, 4)));
          }],
        ];
      case 'str':
        return [
          [4, () => this.readVar('str')],
          [litW, () => this.literal('str')],
          helper,
          [deep ? 1.5 : 0, () => this.binLive('+', 'str', d, () => this.expr('str', d - 1))],
          [deep ? 1.5 : 0, () => this.fromVar('str', (x) => meth(x, this.rng.pick(['upper', 'lower', 'capitalize', 'strip'])))],
          [deep ? 1 : 0, () => this.fromVar('text', (x) => meth(x, 'replace', lit(this.rng.pick(SUBSTRINGS)), lit(this.rng.pick(['', '-', '*', 'o', 'A']))))],
          [deep ? 0.7 : 0, () => this.fromVar('text', (x) => ({ k: 'slice', obj: x, lo: null, hi: null, step: lit(-1) }))],
          [deep ? 1 : 0, () => this.fromVar('text', (x) => this.someSlice(x))],
          [deep && this.has('list') ? 1 : 0, () => this.fromVar('slist', (x) => meth(lit(this.rng.pick(SEPARATORS)), 'join', x))],
          [deep ? 0.8 : 0, () => {
            const n = this.live('int', d - 1);
            return n && call('str', n);
          }],
          [deep ? 0.3 : 0, () => this.binLive('*', 'str', 1, () => lit(this.rng.between(2, 3)))],
          [deep && this.has('list') ? 0.5 : 0, () => this.fromVar('slist', (x) => ({ k: 'index', obj: x, idx: lit(this.rng.pick([0, -1])) }))],
          [deep ? 0.5 : 0, () => this.fromVar('text', (x) => ({ k: 'index', obj: x, idx: lit(this.rng.pick([0, -1])) }))],
          [deep && this.has('if') ? 0.4 : 0, () => this.ifExp('str', d)],
        ];
      case 'ilist':
        return [
          [4, () => this.readVar('ilist')],
          [litW, () => this.literal('ilist')],
          helper,
          [deep ? 1 : 0, () => this.fromVar('ilist', (x) => call('sorted', x))],
          [deep ? 0.4 : 0, () => this.fromVar('ilist', (x) => ({ k: 'call', fn: 'sorted', args: [x], reverse: true }))],
          [deep ? 1 : 0, () => this.fromVar('ilist', (x) => this.someSlice(x))],
          [deep ? 0.5 : 0, () => this.fromVar('ilist', (x) => ({ k: 'slice', obj: x, lo: null, hi: null, step: lit(-1) }))],
          [deep && this.has('comprehension') ? 3.5 : 0, () => this.listComp('ilist')],
          [deep ? 0.6 : 0, () => call('list', call('range', lit(this.rng.between(0, 3)), lit(this.rng.between(3, 8))))],
          [deep ? 0.5 : 0, () => this.fromVar('ilist', (x) => bin('+', x, { k: 'list', items: [this.expr('int', 0)] }))],
        ];
      case 'slist':
        return [
          [4, () => this.readVar('slist')],
          [litW, () => this.literal('slist')],
          [deep ? 2 : 0, () => this.fromVar('text', (x) => (this.rng.chance(0.8) ? meth(x, 'split') : meth(x, 'split', lit(this.rng.pick(['a', 'e', ' '])))))],
          [deep ? 1 : 0, () => this.fromVar('slist', (x) => call('sorted', x))],
          [deep ? 0.7 : 0, () => this.fromVar('slist', (x) => this.someSlice(x))],
          [deep ? 0.5 : 0, () => this.fromVar('text', (x) => call('list', x))],
          [deep && this.has('dict') ? 0.8 : 0, () => this.fromVar('dict', (x) => (this.rng.chance(0.5) ? call('sorted', x) : call('list', meth(x, 'keys'))))],
          [deep && this.has('comprehension') ? 2.5 : 0, () => this.listComp('slist')],
        ];
      case 'dict':
        return [
          [4, () => this.readVar('dict')],
          [litW, () => this.literal('dict')],
          [deep && this.has('comprehension') ? 3 : 0, () => this.dictComp()],
          [deep && this.has('list') ? 0.5 : 0, () => {
            const a = this.readVar('slist');
            const b = a && this.readVar('ilist');
            return a && b && call('dict', call('zip', a, b));
          }],
        ];
      case 'tuple':
        return [
          [3, () => this.readVar('tuple')],
          [deep ? 2 : 1, () => {
            const a = this.live('int', d - 1);
            const b = a && this.live('int', d - 1);
            return a && b && this.distinctPair(a, b, (x, y) => ({ k: 'tuple', items: [x, y] }));
          }],
          [deep && this.has('arith') ? 1 : 0, () => {
            const a = this.live('int', d - 1);
            return a && call('divmod', a, lit(this.rng.between(2, 9)));
          }],
          [deep && this.has('list') ? 0.7 : 0, () => this.fromVar('ilist', (x) => ({ k: 'tuple', items: [call('min', x), call('max', x)] }))],
        ];
    }
  }

  private fromVar(ty: Ty | 'text', make: (x: Expr) => Expr | null): Expr | null {
    const x = this.readVar(ty);
    return x && make(x);
  }

  private collectionLen(): Expr | null {
    const tys = (['ilist', 'text', 'slist', 'dict'] as const).filter((t) => this.varsOf(t).length > 0);
    if (tys.length === 0) return null;
    return call('len', this.readVar(this.rng.pick(tys))!);
  }

  private someSlice(x: Expr): Expr {
    const n = (): Expr => lit(this.rng.between(1, 3));
    return this.rng.weighted<() => Expr>([
      [2, () => ({ k: 'slice', obj: x, lo: n(), hi: null, step: null })],
      [2, () => ({ k: 'slice', obj: x, lo: null, hi: n(), step: null })],
      [1, () => ({ k: 'slice', obj: x, lo: lit(-this.rng.between(1, 3)), hi: null, step: null })],
      [1, () => ({ k: 'slice', obj: x, lo: null, hi: null, step: lit(2) })],
    ])();
  }

  /** A comprehension over a list, string or range in scope; its variable is local to it. */
  private listComp(ty: 'ilist' | 'slist'): Expr | null {
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

  private dictComp(): Expr | null {
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
    return s ?? [assign(this.freshName('int', NAMES.int), this.literal('int'))];
  }

  private assignNew(forced?: Ty): Stmt[] {
    const ty = forced ?? this.rng.weighted(this.typesInUse().map((t) => [t === 'int' ? 3 : t === 'bool' || t === 'tuple' ? 0.7 : 1, t] as const));
    const calls = this.helpers.filter((h) => h.called).length;
    const value = this.expr(ty, 2, true);
    const name = this.freshName(ty, NAMES[ty]);
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
    const name = this.freshName(ty, NAMES[ty]);
    this.declare(name, ty);
    this.scope.get(name)!.hint = true;
    return [assign(name, value)];
  }

  /** Changes a variable already in scope (never a parameter, loop target or locked one). */
  private update(): Stmt[] | null {
    const candidates = this.typesInUse().flatMap((ty) => this.varsOf(ty, true));
    if (candidates.length === 0) return null;
    const x = this.rng.pick(candidates);
    return this.excluding(x.name, () => this.updateOf(x));
  }

  private updateOf(x: Var): Stmt[] | null {
    const name = x.name;
    switch (x.ty) {
      case 'int':
        return this.first<Stmt[]>([
          [3, () => [aug(name, this.rng.pick(['+', '-', '+'] as const), this.expr('int', 1, true))]],
          [this.has('arith') ? 1 : 0, () => [aug(name, '*', lit(this.rng.between(2, 3)))]],
          [this.has('arith') ? 1 : 0, () => [aug(name, this.rng.pick(['//', '%'] as const), lit(this.rng.between(2, 7)))]],
          [1, () => {
            const e = this.live('int', 1);
            return e && [assign(name, call(this.rng.pick(['max', 'min']), v(name), e))];
          }],
          [1, () => [assign(name, this.expr('int', 2, true))]],
        ]);
      case 'bool':
        return [assign(name, this.has('bool') && this.rng.chance(0.5) ? { k: this.rng.pick(['and', 'or'] as const), l: v(name), r: this.expr('bool', 1, true) } : this.expr('bool', 1, true))];
      case 'str':
        return this.first<Stmt[]>([
          [3, () => [aug(name, '+', this.expr('str', 1, true))]],
          [1, () => [assign(name, this.expr('str', 2, true))]],
        ]);
      case 'tuple':
        return [assign(name, this.expr('tuple', 2, true))];
      case 'ilist':
      case 'slist': {
        const el: Ty = x.ty === 'ilist' ? 'int' : 'str';
        return this.first<Stmt[]>([
          [4, () => [{ k: 'expr', e: meth(v(name), 'append', this.expr(el, 1, true)) }]],
          [1, () => [{ k: 'expr', e: meth(v(name), 'insert', lit(0), this.expr(el, 1, true)) }]],
          [0.7, () => [{ k: 'expr', e: meth(v(name), 'extend', this.expr(x.ty, 1, true)) }]],
          [1, () => [{ k: 'expr', e: meth(v(name), this.rng.pick(['sort', 'reverse'])) }]],
          [this.has('if') ? 1 : 0, () => this.guardedPop(name, el)],
          [this.has('if') ? 0.5 : 0, () => {
            const item = this.expr(el, 0, true);
            return [ifs(cmp('in', item, v(name)), [{ k: 'expr', e: meth(v(name), 'remove', item) }])];
          }],
        ]);
      }
      case 'dict': {
        const key = (): Expr => this.expr('str', 1, true);
        return this.first<Stmt[]>([
          [3, () => {
            const k = key();
            return [{ k: 'assign', target: { k: 'item', obj: name, idx: k }, value: bin('+', meth(v(name), 'get', k, lit(0)), this.expr('int', 1, true)) }];
          }],
          [2, () => [{ k: 'assign', target: { k: 'item', obj: name, idx: key() }, value: this.expr('int', 1, true) }]],
          [this.has('if') ? 1 : 0, () => {
            const k = key();
            return [ifs(cmp('in', k, v(name)), [{ k: 'aug', target: { k: 'item', obj: name, idx: k }, op: '+', value: this.expr('int', 1, true) }])];
          }],
        ]);
      }
    }
  }

  /** `if items: last = items.pop(); <use last>` — pops only from a non-empty list. */
  private guardedPop(name: string, el: Ty): Stmt[] {
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
    return this.excluding(x.name, () => this.accUpdateOf(x));
  }

  private accUpdateOf(x: Var): Stmt[] {
    switch (x.ty) {
      case 'int':
        return [aug(x.name, this.rng.pick(['+', '+', '-'] as const), this.expr('int', 1, true))];
      case 'str':
        return [aug(x.name, '+', this.expr('str', 1, true))];
      case 'ilist':
        return [{ k: 'expr', e: meth(v(x.name), 'append', this.expr('int', 1, true)) }];
      case 'slist':
        return [{ k: 'expr', e: meth(v(x.name), 'append', this.expr('str', 1, true)) }];
      case 'dict': {
        const k = this.expr('str', 1, true);
        return [{ k: 'assign', target: { k: 'item', obj: x.name, idx: k }, value: bin('+', meth(v(x.name), 'get', k, lit(0)), lit(1)) }];
      }
      default:
        return [];
    }
  }

  /** A fresh accumulator initialised before a loop (`total = 0`, `out = ''`, `seen = []`, `counts = {}`). */
  private accumulator(): { init: Stmt; name: string } {
    const tys: [number, Ty][] = [[4, 'int']];
    if (this.has('str')) tys.push([1.5, 'str']);
    if (this.has('list')) tys.push([1.5, 'ilist']);
    if (this.has('dict')) tys.push([1, 'dict']);
    const ty = this.rng.weighted(tys);
    const name = this.freshName(ty, NAMES[ty]);
    const init: Expr = ty === 'int' ? lit(this.rng.chance(0.8) ? 0 : 1) : ty === 'str' ? lit('') : ty === 'ilist' ? { k: 'list', items: [] } : { k: 'dict', entries: [] };
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

// ---------------------------------------------------------------------------
// Recursive helpers: classic shapes whose call sites bound the recursion depth.

interface RecursiveTemplate {
  need: Feature[];
  params: Ty[];
  ret: Ty;
  def: FuncDef;
  /** Arguments at a call site in f, built from f's scope; null when nothing fits. */
  args: (b: ArgBuilder) => Expr[] | null;
}

type ArgBuilder = { expr(ty: Ty, d: number, fresh?: boolean): Expr };

/** `abs(e)`, unless `e` cannot be negative anyway (a length, a literal). */
const absOf = (e: Expr): Expr => {
  if (e.k === 'lit' && typeof e.v === 'number') return lit(Math.abs(e.v));
  return e.k === 'call' && (e.fn === 'len' || e.fn === 'abs') ? e : call('abs', e);
};

/** An int argument in [0, mod). */
const boundedInt = (b: ArgBuilder, mod: number): Expr => {
  const e = absOf(b.expr('int', 1, true));
  return e.k === 'lit' && typeof e.v === 'number' ? lit(e.v % mod) : bin('%', e, lit(mod));
};

const RECURSIVE: RecursiveTemplate[] = [
  {
    need: [],
    params: ['int'],
    ret: 'int',
    def: { name: 'fact', params: ['n'], body: [ifs(cmp('<=', v('n'), lit(1)), [ret(lit(1))]), ret(bin('*', v('n'), call('fact', bin('-', v('n'), lit(1)))))] },
    args: (b) => [boundedInt(b, 7)],
  },
  {
    need: [],
    params: ['int'],
    ret: 'int',
    def: { name: 'sum_to', params: ['n'], body: [ifs(cmp('<=', v('n'), lit(0)), [ret(lit(0))]), ret(bin('+', v('n'), call('sum_to', bin('-', v('n'), lit(1)))))] },
    args: (b) => [boundedInt(b, 9)],
  },
  {
    need: [],
    params: ['int'],
    ret: 'int',
    def: { name: 'digit_sum', params: ['n'], body: [ifs(cmp('<', v('n'), lit(10)), [ret(v('n'))]), ret(bin('+', bin('%', v('n'), lit(10)), call('digit_sum', bin('//', v('n'), lit(10)))))] },
    args: (b) => [absOf(b.expr('int', 2, true))],
  },
  {
    need: [],
    params: ['int', 'int'],
    ret: 'int',
    def: { name: 'gcd', params: ['a', 'b'], body: [ifs(cmp('==', v('b'), lit(0)), [ret(v('a'))]), ret(call('gcd', v('b'), bin('%', v('a'), v('b'))))] },
    args: (b) => [absOf(b.expr('int', 1, true)), absOf(b.expr('int', 1, true))],
  },
  {
    need: [],
    params: ['int', 'int'],
    ret: 'int',
    def: { name: 'power', params: ['base', 'exp'], body: [ifs(cmp('==', v('exp'), lit(0)), [ret(lit(1))]), ret(bin('*', v('base'), call('power', v('base'), bin('-', v('exp'), lit(1)))))] },
    args: (b) => [bin('%', b.expr('int', 1, true), lit(5)), bin('%', absOf(b.expr('int', 1, true)), lit(6))],
  },
  {
    need: [],
    params: ['int'],
    ret: 'int',
    def: { name: 'fib', params: ['n'], body: [ifs(cmp('<', v('n'), lit(2)), [ret(v('n'))]), ret(bin('+', call('fib', bin('-', v('n'), lit(1))), call('fib', bin('-', v('n'), lit(2)))))] },
    args: (b) => [boundedInt(b, 7)],
  },
  {
    need: ['str'],
    params: ['int'],
    ret: 'str',
    def: { name: 'to_binary', params: ['n'], body: [ifs(cmp('<', v('n'), lit(2)), [ret(call('str', v('n')))]), ret(bin('+', call('to_binary', bin('//', v('n'), lit(2))), call('str', bin('%', v('n'), lit(2)))))] },
    args: (b) => [absOf(b.expr('int', 1, true))],
  },
  {
    need: ['str'],
    params: ['str'],
    ret: 'str',
    def: { name: 'reverse_str', params: ['s'], body: [ifs(cmp('<=', call('len', v('s')), lit(1)), [ret(v('s'))]), ret(bin('+', call('reverse_str', { k: 'slice', obj: v('s'), lo: lit(1), hi: null, step: null }), { k: 'index', obj: v('s'), idx: lit(0) }))] },
    args: (b) => [{ k: 'slice', obj: b.expr('str', 1, true), lo: null, hi: lit(8), step: null }],
  },
  {
    need: ['str', 'bool'],
    params: ['str'],
    ret: 'bool',
    def: {
      name: 'is_palindrome',
      params: ['s'],
      body: [
        ifs(cmp('<', call('len', v('s')), lit(2)), [ret(lit(true))]),
        ifs(cmp('!=', { k: 'index', obj: v('s'), idx: lit(0) }, { k: 'index', obj: v('s'), idx: lit(-1) }), [ret(lit(false))]),
        ret(call('is_palindrome', { k: 'slice', obj: v('s'), lo: lit(1), hi: lit(-1), step: null })),
      ],
    },
    args: (b) => [b.expr('str', 1, true)],
  },
  {
    need: ['list'],
    params: ['ilist'],
    ret: 'int',
    def: { name: 'total_of', params: ['items'], body: [ifs({ k: 'not', e: v('items') }, [ret(lit(0))]), ret(bin('+', { k: 'index', obj: v('items'), idx: lit(0) }, call('total_of', { k: 'slice', obj: v('items'), lo: lit(1), hi: null, step: null })))] },
    args: (b) => [b.expr('ilist', 1, true)],
  },
  {
    need: ['list', 'if'],
    params: ['ilist', 'int'],
    ret: 'int',
    def: {
      name: 'count_of',
      params: ['items', 'target'],
      body: [
        ifs({ k: 'not', e: v('items') }, [ret(lit(0))]),
        assign('rest', call('count_of', { k: 'slice', obj: v('items'), lo: lit(1), hi: null, step: null }, v('target'))),
        ret(bin('+', v('rest'), { k: 'ifexp', cond: cmp('==', { k: 'index', obj: v('items'), idx: lit(0) }, v('target')), a: lit(1), b: lit(0) })),
      ],
    },
    args: (b) => [b.expr('ilist', 1, true), b.expr('int', 0)],
  },
  {
    need: ['list', 'compare'],
    params: ['ilist'],
    ret: 'int',
    def: {
      name: 'largest',
      params: ['items'],
      body: [
        ifs(cmp('==', call('len', v('items')), lit(1)), [ret({ k: 'index', obj: v('items'), idx: lit(0) })]),
        assign('rest', call('largest', { k: 'slice', obj: v('items'), lo: lit(1), hi: null, step: null })),
        ifs(cmp('>', { k: 'index', obj: v('items'), idx: lit(0) }, v('rest')), [ret({ k: 'index', obj: v('items'), idx: lit(0) })]),
        ret(v('rest')),
      ],
    },
    args: (b) => [b.expr('ilist', 1, true)],
  },
];
