/**
 * The value types the generator builds, one entry each: names for its
 * variables, its literals and inputs, the expressions that give a value of
 * it, the statements that change a variable of it, and whether it can be a
 * parameter or a loop accumulator. The program builder (./builder.ts) knows
 * statements, scopes and loops; everything that depends on a value's type is
 * here.
 *
 * The order of {@link TYPES} (and of {@link ACCUMULATOR_TYPES}) is the order in
 * which draws choose among types, so it is part of what a seed means.
 */
import type { Draws } from '../../src/rng.js';
import { assign, aug, bin, call, cmp, ifs, lit, meth, v, type BinOp, type CmpOp, type Expr, type PyValue, type Stmt } from './ast.js';
import type { Feature, Knobs } from './knobs.js';
import { list } from './values.js';

/** Static types the builder tracks; lists and dicts are homogeneous. */
export const TYPES = ['int', 'bool', 'ilist', 'str', 'slist', 'dict', 'tuple'] as const;

export type Ty = (typeof TYPES)[number];

/** The types that can hold a loop's running result, in draw order. */
export const ACCUMULATOR_TYPES: readonly Ty[] = ['int', 'str', 'ilist', 'dict'];

/** A weighted choice: how likely, and how to build it (null when it does not fit). */
export type Option<T> = readonly [number, () => T | null];

/** What a value type's entry may ask of the program builder. */
export interface Builder {
  readonly rng: Draws;
  readonly knobs: Knobs;
  has(f: Feature): boolean;
  /** Tries weighted options until one gives a value. */
  first<T>(options: readonly Option<T>[]): T | null;
  /** An expression of type `ty` at most `d` operators deep; `fresh` avoids a bare literal. */
  expr(ty: Ty, d: number, fresh?: boolean): Expr;
  /** A non-literal expression, or null. */
  live(ty: Ty, d: number): Expr | null;
  literal(ty: Ty): Expr;
  /** An int in [lo, valueRange], or from -valueRange when lo < 0 and the knobs allow negatives. */
  smallInt(lo?: number): number;
  /** Reads a variable of the type; `'text'` is a string that is not a single character. */
  readVar(ty: Ty | 'text'): Expr | null;
  /** `make` applied to a variable of the type, or null when there is none. */
  fromVar(ty: Ty | 'text', make: (x: Expr) => Expr | null): Expr | null;
  /** A call of a helper function returning the type. */
  helperOption(ty: Ty): Option<Expr>;
  /** `l op right()` with a live `l`, unless it computes nothing (`x - x`, `x * 1`). */
  binLive(op: BinOp, ty: Ty, d: number, right: () => Expr): Expr | null;
  /** `make(l, r)` unless both sides print the same. */
  distinctPair(l: Expr, r: Expr, make: (l: Expr, r: Expr) => Expr): Expr | null;
  ifExp(ty: Ty, d: number): Expr | null;
  /** `len(...)` of a collection in scope. */
  collectionLen(): Expr | null;
  someSlice(x: Expr): Expr;
  listComp(ty: 'ilist' | 'slist'): Expr | null;
  dictComp(): Expr | null;
  /** `if items: last = items.pop(); <use last>`. */
  guardedPop(name: string, el: Ty): Stmt[];
}

/** Everything the generator knows about one value type. */
export interface ValueType {
  /** Whether programs with these features may use the type. */
  enabled(has: (f: Feature) => boolean): boolean;
  /** Names for variables of the type. */
  names: readonly string[];
  /**
   * As a parameter of f: its names, its copies in the pool a parameter's type
   * is picked from, the chance the type joins that pool for one program, and
   * a random argument. Absent: never a parameter.
   */
  param?: { names: readonly string[]; copies: number; chance?: number; input(b: Builder): PyValue };
  /** Weight of the type when a statement binds a new variable. */
  newVar: number;
  literal(b: Builder): Expr;
  /**
   * Set when the type's options build on other types even at depth 0 (a
   * comparison, a pair); otherwise an expression at depth 0 is a variable, a
   * literal or a helper call.
   */
  anyDepth?: true;
  /** The ways to build an expression of the type at most `d` operators deep; `fresh` rules out a bare literal. */
  exprs(b: Builder, d: number, fresh: boolean): Option<Expr>[];
  /** A statement that changes the variable `name` of the type, or null. */
  update(b: Builder, name: string): Stmt[] | null;
  /** As a loop's accumulator: its weight among them, its start value and its update in the body. */
  accumulator?: { weight: number; init(b: Builder): Expr; update(b: Builder, name: string): Stmt[] };
}

const WORDS = ['apple', 'banana', 'cherry', 'kiwi', 'lemon', 'mango', 'pear', 'plum', 'fig', 'grape', 'hello', 'world', 'code', 'data', 'node', 'tree', 'sun', 'moon', 'star', 'sky', 'red', 'blue', 'green', 'cat', 'dog', 'bird', 'fish', 'ab', 'abc', 'xyz', 'a', 'level', 'noon'];
const SUBSTRINGS = ['a', 'e', 'o', 'an', 'er', 'x', 'ee', 'ab', ' ', 'l'];
const CHARSETS = ['aeiou', 'xyz', 'abc', '0123456789', 'lmn'];
const SEPARATORS = ['-', ', ', ' ', '', '_', '/'];

const NEGATED: Record<CmpOp, CmpOp> = { '<': '>=', '<=': '>', '>': '<=', '>=': '<', '==': '!=', '!=': '==', in: 'not in', 'not in': 'in' };

/** A collection input's length: between `min` and the knobs' longest. */
const inputLen = (b: Builder, min: number): number => b.rng.between(min, b.knobs.maxListLen);

/** `not x` where people write it: on a name or a call; a negated comparison flips its operator instead. */
function negation(b: Builder, d: number): Expr | null {
  const e = b.live('bool', d - 1);
  if (!e) return null;
  if (e.k === 'cmp') return { ...e, op: NEGATED[e.op] };
  return e.k === 'var' || e.k === 'method' || e.k === 'call' ? { k: 'not', e } : null;
}

/** Changes to a list of `el` items: add, reorder, or remove one. */
function listUpdate(b: Builder, name: string, ty: 'ilist' | 'slist', el: Ty): Stmt[] | null {
  return b.first<Stmt[]>([
    [4, () => [{ k: 'expr', e: meth(v(name), 'append', b.expr(el, 1, true)) }]],
    [1, () => [{ k: 'expr', e: meth(v(name), 'insert', lit(0), b.expr(el, 1, true)) }]],
    [0.7, () => [{ k: 'expr', e: meth(v(name), 'extend', b.expr(ty, 1, true)) }]],
    [1, () => [{ k: 'expr', e: meth(v(name), b.rng.pick(['sort', 'reverse'])) }]],
    [b.has('if') ? 1 : 0, () => b.guardedPop(name, el)],
    [b.has('if') ? 0.5 : 0, () => {
      const item = b.expr(el, 0, true);
      return [ifs(cmp('in', item, v(name)), [{ k: 'expr', e: meth(v(name), 'remove', item) }])];
    }],
  ]);
}

export const VALUE_TYPES: Record<Ty, ValueType> = {
  int: {
    enabled: () => true,
    names: ['total', 'count', 'acc', 'result', 'best', 'diff', 'score', 'step', 'low', 'high', 'value', 'delta', 'steps', 'size', 'offset', 'cur', 'prev', 'carry', 'tally', 'largest', 'smallest', 'width', 'remaining', 'pos', 'gap', 'level'],
    param: {
      names: ['n', 'k', 'x', 'limit', 'target', 'start', 'base', 'm'],
      copies: 1,
      input: (b) => (b.rng.chance(0.8) ? b.rng.between(0, b.knobs.valueRange) : b.smallInt(-1)),
    },
    newVar: 3,
    literal: (b) => lit(b.rng.chance(0.6) ? b.rng.between(0, Math.min(10, b.knobs.valueRange)) : b.smallInt(-1)),
    exprs: (b, d, fresh) => [
      [4, () => b.readVar('int')],
      [fresh ? 0 : 1, () => b.literal('int')],
      b.helperOption('int'),
      [b.has('arith') ? 3 : 0, () => b.binLive(b.rng.pick(['+', '-', '+'] as const), 'int', d, () => b.expr('int', d - 1))],
      [b.has('arith') ? 1 : 0, () => b.binLive('*', 'int', d, () => lit(b.rng.between(2, 5)))],
      [b.has('arith') ? 1.2 : 0, () => b.binLive(b.rng.pick(['//', '%'] as const), 'int', d, () => lit(b.rng.between(2, 9)))],
      [1.5, () => b.collectionLen()],
      [b.has('list') ? 1 : 0, () => b.fromVar('ilist', (x) => call('sum', x))],
      [b.has('list') ? 0.8 : 0, () => b.fromVar('ilist', (x) => call(b.rng.pick(['max', 'min']), x))],
      [0.5, () => {
        const l = b.live('int', d - 1);
        return l && b.distinctPair(l, b.expr('int', d - 1), (x, y) => call(b.rng.pick(['max', 'min']), x, y));
      }],
      [b.knobs.negatives ? 0.4 : 0, () => call('abs', b.expr('int', d - 1, true))],
      [b.has('list') ? 0.8 : 0, () => b.fromVar('ilist', (x) => ({ k: 'index', obj: x, idx: lit(b.rng.pick([0, -1, 1])) }))],
      [b.has('str') ? 0.6 : 0, () => b.fromVar('text', (x) => meth(x, b.rng.pick(['find', 'count']), lit(b.rng.pick(SUBSTRINGS))))],
      [b.has('list') ? 0.3 : 0, () => b.fromVar('ilist', (x) => meth(x, 'count', b.expr('int', 0)))],
      [b.has('dict') ? 1 : 0, () => b.fromVar('dict', (x) => meth(x, 'get', b.expr('str', 0), lit(0)))],
      [b.has('if') && b.has('compare') ? 0.5 : 0, () => b.ifExp('int', d)],
      [b.has('list') ? 0.3 : 0, () => b.fromVar('ilist', (x) => call('set_len', x))],
      [b.has('tuple') ? 0.4 : 0, () => b.fromVar('tuple', (x) => ({ k: 'index', obj: x, idx: lit(b.rng.between(0, 1)) }))],
    ],
    update: (b, name) =>
      b.first<Stmt[]>([
        [3, () => [aug(name, b.rng.pick(['+', '-', '+'] as const), b.expr('int', 1, true))]],
        [b.has('arith') ? 1 : 0, () => [aug(name, '*', lit(b.rng.between(2, 3)))]],
        [b.has('arith') ? 1 : 0, () => [aug(name, b.rng.pick(['//', '%'] as const), lit(b.rng.between(2, 7)))]],
        [1, () => {
          const e = b.live('int', 1);
          return e && [assign(name, call(b.rng.pick(['max', 'min']), v(name), e))];
        }],
        [1, () => [assign(name, b.expr('int', 2, true))]],
      ]),
    accumulator: {
      weight: 4,
      init: (b) => lit(b.rng.chance(0.8) ? 0 : 1),
      update: (b, name) => [aug(name, b.rng.pick(['+', '+', '-'] as const), b.expr('int', 1, true))],
    },
  },

  bool: {
    enabled: (has) => has('bool') || has('compare'),
    names: ['found', 'ok', 'flag', 'done', 'valid', 'seen_big', 'has_even', 'matched', 'is_small', 'changed'],
    newVar: 0.7,
    literal: (b) => lit(b.rng.chance(0.5)),
    anyDepth: true,
    exprs: (b, d, fresh) => {
      const deep = d > 0;
      return [
        [2, () => b.readVar('bool')],
        [fresh ? 0 : 0.1, () => b.literal('bool')],
        b.helperOption('bool'),
        [b.has('compare') ? 4 : 1, () => {
          const l = b.live('int', d - 1);
          let r = l && b.expr('int', Math.min(d - 1, 0));
          // A length is never negative: compare it with something it could equal.
          if (l?.k === 'call' && l.fn === 'len' && r?.k === 'lit' && typeof r.v === 'number') r = lit(Math.abs(r.v) % 6);
          return l && r && b.distinctPair(l, r, (x, y) => cmp(b.rng.pick(['<', '<=', '>', '>=', '==', '!='] as const), x, y));
        }],
        [b.has('arith') ? 1.2 : 0, () => {
          const l = b.live('int', 0);
          return l && cmp(b.rng.pick(['==', '!='] as const), bin('%', l, lit(b.rng.between(2, 3))), lit(0));
        }],
        [b.has('list') ? 0.8 : 0, () => b.fromVar('ilist', (x) => cmp(b.rng.pick(['in', 'not in'] as const), b.expr('int', 0), x))],
        [b.has('dict') ? 1 : 0, () => b.fromVar('dict', (x) => cmp(b.rng.pick(['in', 'not in'] as const), b.expr('str', 0, true), x))],
        [b.has('str') ? 1 : 0, () => b.fromVar('str', (x) => cmp('in', x, lit(b.rng.pick(CHARSETS))))],
        [b.has('str') ? 1 : 0, () => b.fromVar('str', (x) => meth(x, b.rng.pick(['startswith', 'endswith']), lit(b.rng.pick(SUBSTRINGS))))],
        [b.has('str') ? 0.6 : 0, () => b.fromVar('str', (x) => meth(x, b.rng.pick(['isdigit', 'isalpha'])))],
        [b.has('str') ? 0.4 : 0, () => b.fromVar('str', (x) => b.distinctPair(x, b.expr('str', 0), (l, r) => cmp(b.rng.pick(['==', '!='] as const), l, r)))],
        [deep && b.has('bool') ? 0.5 : 0, () => negation(b, d)],
        [deep && b.has('bool') ? 1 : 0, () => {
          const l = b.live('bool', d - 1);
          const r = l && b.live('bool', d - 1);
          return l && r && b.distinctPair(l, r, (x, y) => ({ k: b.rng.pick(['and', 'or'] as const), l: x, r: y }));
        }],
        [b.has('compare') ? 0.6 : 0, () => {
          const n = b.collectionLen();
          return n && cmp(b.rng.pick(['>', '<', '>=', '=='] as const), n, lit(b.rng.between(0, 4)));
        }],
      ];
    },
    update: (b, name) => [assign(name, b.has('bool') && b.rng.chance(0.5) ? { k: b.rng.pick(['and', 'or'] as const), l: v(name), r: b.expr('bool', 1, true) } : b.expr('bool', 1, true))],
  },

  ilist: {
    enabled: (has) => has('list'),
    names: ['evens', 'odds', 'picked', 'squares', 'doubled', 'stack', 'queue', 'buf', 'sizes', 'diffs', 'kept', 'lengths', 'merged', 'window', 'seen', 'order'],
    param: {
      names: ['nums', 'values', 'items', 'data', 'scores', 'xs'],
      copies: 2,
      input: (b) => list(Array.from({ length: inputLen(b, b.rng.chance(0.05) ? 0 : 1) }, () => b.smallInt(-1))),
    },
    newVar: 1,
    literal: (b) => (b.rng.chance(0.4) ? { k: 'list', items: [] } : { k: 'list', items: Array.from({ length: b.rng.between(1, 4) }, () => lit(b.smallInt(-1))) }),
    exprs: (b, _d, fresh) => [
      [4, () => b.readVar('ilist')],
      [fresh ? 0 : 1, () => b.literal('ilist')],
      b.helperOption('ilist'),
      [1, () => b.fromVar('ilist', (x) => call('sorted', x))],
      [0.4, () => b.fromVar('ilist', (x) => ({ k: 'call', fn: 'sorted', args: [x], reverse: true }))],
      [1, () => b.fromVar('ilist', (x) => b.someSlice(x))],
      [0.5, () => b.fromVar('ilist', (x) => ({ k: 'slice', obj: x, lo: null, hi: null, step: lit(-1) }))],
      [b.has('comprehension') ? 3.5 : 0, () => b.listComp('ilist')],
      [0.6, () => call('list', call('range', lit(b.rng.between(0, 3)), lit(b.rng.between(3, 8))))],
      [0.5, () => b.fromVar('ilist', (x) => bin('+', x, { k: 'list', items: [b.expr('int', 0)] }))],
    ],
    update: (b, name) => listUpdate(b, name, 'ilist', 'int'),
    accumulator: {
      weight: 1.5,
      init: () => ({ k: 'list', items: [] }),
      update: (b, name) => [{ k: 'expr', e: meth(v(name), 'append', b.expr('int', 1, true)) }],
    },
  },

  str: {
    enabled: (has) => has('str'),
    names: ['out', 'label', 'word', 'prefix', 'suffix', 'key', 'line', 'msg', 'tag', 'joined', 'head', 'tail', 'code', 'first'],
    param: {
      names: ['text', 's', 'word', 'name', 'sentence'],
      copies: 2,
      input: (b) =>
        b.rng.weighted<() => string>([
          [3, () => Array.from({ length: b.rng.between(1, Math.min(4, b.knobs.maxListLen)) }, () => b.rng.pick(WORDS)).join(' ')],
          [2, () => b.rng.pick(WORDS)],
          [1, () => Array.from({ length: b.rng.between(3, 8) }, () => b.rng.pick([...'abcde12345xyz'])).join('')],
        ])(),
    },
    newVar: 1,
    literal: (b) => lit(b.rng.chance(0.6) ? b.rng.pick(WORDS) : b.rng.pick(SUBSTRINGS)),
    exprs: (b, d, fresh) => [
      [4, () => b.readVar('str')],
      [fresh ? 0 : 1, () => b.literal('str')],
      b.helperOption('str'),
      [1.5, () => b.binLive('+', 'str', d, () => b.expr('str', d - 1))],
      [1.5, () => b.fromVar('str', (x) => meth(x, b.rng.pick(['upper', 'lower', 'capitalize', 'strip'])))],
      [1, () => b.fromVar('text', (x) => meth(x, 'replace', lit(b.rng.pick(SUBSTRINGS)), lit(b.rng.pick(['', '-', '*', 'o', 'A']))))],
      [0.7, () => b.fromVar('text', (x) => ({ k: 'slice', obj: x, lo: null, hi: null, step: lit(-1) }))],
      [1, () => b.fromVar('text', (x) => b.someSlice(x))],
      [b.has('list') ? 1 : 0, () => b.fromVar('slist', (x) => meth(lit(b.rng.pick(SEPARATORS)), 'join', x))],
      [0.8, () => {
        const n = b.live('int', d - 1);
        return n && call('str', n);
      }],
      [0.3, () => b.binLive('*', 'str', 1, () => lit(b.rng.between(2, 3)))],
      [b.has('list') ? 0.5 : 0, () => b.fromVar('slist', (x) => ({ k: 'index', obj: x, idx: lit(b.rng.pick([0, -1])) }))],
      [0.5, () => b.fromVar('text', (x) => ({ k: 'index', obj: x, idx: lit(b.rng.pick([0, -1])) }))],
      [b.has('if') ? 0.4 : 0, () => b.ifExp('str', d)],
    ],
    update: (b, name) =>
      b.first<Stmt[]>([
        [3, () => [aug(name, '+', b.expr('str', 1, true))]],
        [1, () => [assign(name, b.expr('str', 2, true))]],
      ]),
    accumulator: {
      weight: 1.5,
      init: () => lit(''),
      update: (b, name) => [aug(name, '+', b.expr('str', 1, true))],
    },
  },

  slist: {
    enabled: (has) => has('str') && has('list'),
    names: ['parts', 'tokens', 'names', 'chunks', 'pieces', 'kept_words', 'fields', 'labels', 'keys'],
    param: {
      names: ['words', 'names', 'tokens', 'tags'],
      copies: 1,
      input: (b) => list(Array.from({ length: inputLen(b, 1) }, () => b.rng.pick(WORDS))),
    },
    newVar: 1,
    literal: (b) => (b.rng.chance(0.4) ? { k: 'list', items: [] } : { k: 'list', items: Array.from({ length: b.rng.between(1, 3) }, () => lit(b.rng.pick(WORDS))) }),
    exprs: (b, _d, fresh) => [
      [4, () => b.readVar('slist')],
      [fresh ? 0 : 1, () => b.literal('slist')],
      [2, () => b.fromVar('text', (x) => (b.rng.chance(0.8) ? meth(x, 'split') : meth(x, 'split', lit(b.rng.pick(['a', 'e', ' '])))))],
      [1, () => b.fromVar('slist', (x) => call('sorted', x))],
      [0.7, () => b.fromVar('slist', (x) => b.someSlice(x))],
      [0.5, () => b.fromVar('text', (x) => call('list', x))],
      [b.has('dict') ? 0.8 : 0, () => b.fromVar('dict', (x) => (b.rng.chance(0.5) ? call('sorted', x) : call('list', meth(x, 'keys'))))],
      [b.has('comprehension') ? 2.5 : 0, () => b.listComp('slist')],
    ],
    update: (b, name) => listUpdate(b, name, 'slist', 'str'),
  },

  dict: {
    enabled: (has) => has('dict'),
    names: ['counts', 'index', 'table', 'lookup', 'freq', 'groups', 'totals', 'last_seen', 'scores'],
    param: {
      names: ['prices', 'stock', 'ages', 'weights'],
      copies: 1,
      chance: 0.3,
      input: (b) => {
        const m = new Map<string | number, PyValue>();
        const n = inputLen(b, 1);
        for (let i = 0; i < n; i++) m.set(b.rng.pick(WORDS), b.rng.between(0, b.knobs.valueRange));
        return { t: 'dict', m };
      },
    },
    newVar: 1,
    literal: (b) =>
      b.rng.chance(0.6)
        ? { k: 'dict', entries: [] }
        : { k: 'dict', entries: Array.from({ length: b.rng.between(1, 3) }, (_, i) => [lit(WORDS[(i * 7 + b.rng.between(0, 6)) % WORDS.length]!), lit(b.rng.between(0, 9))] as [Expr, Expr]) },
    exprs: (b, _d, fresh) => [
      [4, () => b.readVar('dict')],
      [fresh ? 0 : 1, () => b.literal('dict')],
      [b.has('comprehension') ? 3 : 0, () => b.dictComp()],
      [b.has('list') ? 0.5 : 0, () => {
        const keys = b.readVar('slist');
        const values = keys && b.readVar('ilist');
        return keys && values && call('dict', call('zip', keys, values));
      }],
    ],
    update: (b, name) => {
      const key = (): Expr => b.expr('str', 1, true);
      return b.first<Stmt[]>([
        [3, () => {
          const k = key();
          return [{ k: 'assign', target: { k: 'item', obj: name, idx: k }, value: bin('+', meth(v(name), 'get', k, lit(0)), b.expr('int', 1, true)) }];
        }],
        [2, () => [{ k: 'assign', target: { k: 'item', obj: name, idx: key() }, value: b.expr('int', 1, true) }]],
        [b.has('if') ? 1 : 0, () => {
          const k = key();
          return [ifs(cmp('in', k, v(name)), [{ k: 'aug', target: { k: 'item', obj: name, idx: k }, op: '+', value: b.expr('int', 1, true) }])];
        }],
      ]);
    },
    accumulator: {
      weight: 1,
      init: () => ({ k: 'dict', entries: [] }),
      update: (b, name) => {
        const k = b.expr('str', 1, true);
        return [{ k: 'assign', target: { k: 'item', obj: name, idx: k }, value: bin('+', meth(v(name), 'get', k, lit(0)), lit(1)) }];
      },
    },
  },

  tuple: {
    enabled: (has) => has('tuple'),
    names: ['pair', 'bounds', 'span', 'qr', 'point', 'extremes'],
    newVar: 0.7,
    literal: (b) => ({ k: 'tuple', items: [lit(b.smallInt(-1)), lit(b.smallInt(-1))] }),
    anyDepth: true,
    exprs: (b, d) => {
      const deep = d > 0;
      return [
        [3, () => b.readVar('tuple')],
        [deep ? 2 : 1, () => {
          const x = b.live('int', d - 1);
          const y = x && b.live('int', d - 1);
          return x && y && b.distinctPair(x, y, (l, r) => ({ k: 'tuple', items: [l, r] }));
        }],
        [deep && b.has('arith') ? 1 : 0, () => {
          const x = b.live('int', d - 1);
          return x && call('divmod', x, lit(b.rng.between(2, 9)));
        }],
        [deep && b.has('list') ? 0.7 : 0, () => b.fromVar('ilist', (x) => ({ k: 'tuple', items: [call('min', x), call('max', x)] }))],
      ];
    },
    update: (b, name) => [assign(name, b.expr('tuple', 2, true))],
  },
};
