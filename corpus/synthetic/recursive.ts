/** Recursive helpers: classic shapes whose call sites bound the recursion depth. */
import { assign, bin, call, cmp, ifs, lit, ret, v, type Expr, type FuncDef } from './ast.js';
import type { Feature } from './knobs.js';
import type { Builder, Ty } from './value-types.js';

export interface RecursiveTemplate {
  need: Feature[];
  params: Ty[];
  ret: Ty;
  def: FuncDef;
  /** Arguments at a call site in f, built from f's scope; null when nothing fits. */
  args: (b: ArgBuilder) => Expr[] | null;
}

export type ArgBuilder = Pick<Builder, 'expr'>;

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

export const RECURSIVE: RecursiveTemplate[] = [
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
