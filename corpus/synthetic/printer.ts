/** Python source for the subset's nodes, parenthesized by Python's operator precedence. */
import type { Expr, FuncDef, Stmt, Target } from './ast.js';
import { pyRepr } from './values.js';

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
