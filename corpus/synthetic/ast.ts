/**
 * The small Python subset the synthetic generator builds: runtime values,
 * expression and statement nodes, their children, and shorthands for building
 * them. The printer (./printer.ts), the reference interpreter
 * (./interpreter.ts) and dead-code removal (./dead-code.ts) work on these nodes.
 */

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

// Shorthands for building nodes.
export const v = (name: string): Expr => ({ k: 'var', name });
export const lit = (x: PyValue): Expr => ({ k: 'lit', v: x });
export const bin = (op: BinOp, l: Expr, r: Expr): Expr => ({ k: 'bin', op, l, r });
export const cmp = (op: CmpOp, l: Expr, r: Expr): Expr => ({ k: 'cmp', op, l, r });
export const call = (fn: string, ...args: Expr[]): Expr => ({ k: 'call', fn, args });
export const meth = (obj: Expr, name: string, ...args: Expr[]): Expr => ({ k: 'method', obj, name, args });
export const assign = (name: string, value: Expr): Stmt => ({ k: 'assign', target: { k: 'name', name }, value });
export const aug = (name: string, op: BinOp, value: Expr): Stmt => ({ k: 'aug', target: { k: 'name', name }, op, value });
export const ret = (e: Expr): Stmt => ({ k: 'return', e });
export const ifs = (cond: Expr, body: Stmt[], orelse: Stmt[] | null = null): Stmt => ({ k: 'if', branches: [{ cond, body }], orelse });

/** The direct sub-expressions of `e`. */
export function subExprs(e: Expr): Expr[] {
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

/** Every expression in `s`, nested blocks included. */
export function stmtExprs(s: Stmt): Expr[] {
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

