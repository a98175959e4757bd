/**
 * Program mutation (CodeExecutor-style augmentation): variants of a program that
 * differ by one operator, comparison or constant, so the model sees nearly the
 * same code with different executions.
 *
 *   mutateProgram(program, { count: 3, seed: 1 })
 *
 * Works on any Python source (CRUXEval records as well as synthetic programs)
 * through a small tokenizer: each edit replaces one token by another of the same
 * syntactic class (a binary operator by a binary operator, an int literal by an
 * int literal), so a variant parses whenever its parent does. Whether it still
 * runs is not known here: the caller traces the variants and keeps those that
 * finish ok.
 */
import { SplitMix32 } from '../src/rng.js';
import type { Program } from '../src/schema.js';
import { PYTHON_KEYWORDS } from './keywords.js';
import { programId } from './synthetic.js';

export interface MutateOptions {
  /** Variants wanted; fewer come back when the program has fewer distinct edits. */
  count: number;
  /** Same program and seed give the same variants. */
  seed: number;
}

/** What an edit changes; the variants spread across the kinds a program offers. */
export type EditKind = 'arith' | 'augassign' | 'compare' | 'constant' | 'boolean';

export interface Edit {
  kind: EditKind;
  /** Offset of the replaced token in the source. */
  start: number;
  end: number;
  /** The token as it was and its replacement. */
  from: string;
  to: string;
}

/** `count` distinct variants of `program`, each one edit away, with origin `mutation:of=<parent id>`. */
export function mutateProgram(program: Program, opts: MutateOptions): Program[] {
  if (!Number.isInteger(opts.count) || opts.count < 0) {
    throw new TypeError(`Expected \`count\` to be a non-negative integer, got ${String(opts.count)}`);
  }
  if (!Number.isInteger(opts.seed)) throw new TypeError(`Expected \`seed\` to be an integer, got ${String(opts.seed)}`);
  const pool = findEdits(program.source);
  const perKind = new Map<EditKind, number>();
  for (const e of pool) perKind.set(e.kind, (perKind.get(e.kind) ?? 0) + 1);
  // Kinds weigh the same however many sites each has; shallow lines weigh more
  // because they run on every call, so editing them changes the execution.
  const weights = pool.map((e) => indentWeight(program.source, e.start) / perKind.get(e.kind)!);
  // The parent's id seeds the choice, so each program gets its own edits for one run seed.
  const rng = new SplitMix32(opts.seed ^ parseInt(programId(program.source, program.entry).slice(0, 8), 16));
  const seen = new Set<string>([program.source]);
  const out: Program[] = [];
  while (out.length < opts.count && pool.length > 0) {
    const i = rng.weighted(weights.map((w, j) => [w, j] as const));
    const edit = pool.splice(i, 1)[0]!;
    weights.splice(i, 1);
    const source = applyEdit(program.source, edit);
    if (seen.has(source)) continue;
    seen.add(source);
    out.push({ id: programId(source, program.entry), source, entry: program.entry, origin: `mutation:of=${program.id}` });
  }
  return out;
}

/** 1 for a line indented one level (a function body), 1/2 for two levels, and so on. */
function indentWeight(source: string, offset: number): number {
  const lineStart = source.lastIndexOf('\n', offset - 1) + 1;
  let indent = 0;
  while (source[lineStart + indent] === ' ' || source[lineStart + indent] === '\t') indent++;
  return 4 / Math.max(4, indent);
}

export function applyEdit(source: string, edit: Edit): string {
  return source.slice(0, edit.start) + edit.to + source.slice(edit.end);
}

// ---------------------------------------------------------------------------
// Edits

const ARITH_SWAPS: Record<string, string[]> = {
  '+': ['-'],
  '-': ['+'],
  '*': ['+', '//'],
  '//': ['%', '*'],
  '%': ['//'],
  '/': ['*'],
};
const AUG_SWAPS: Record<string, string[]> = {
  '+=': ['-='],
  '-=': ['+='],
  '*=': ['+='],
  '//=': ['%='],
  '%=': ['//='],
};
const CMP_SWAPS: Record<string, string[]> = {
  '<': ['<=', '>'],
  '<=': ['<', '>='],
  '>': ['>=', '<'],
  '>=': ['>', '<='],
  '==': ['!='],
  '!=': ['=='],
};
const BOOL_SWAPS: Record<string, string[]> = {
  and: ['or'],
  or: ['and'],
  True: ['False'],
  False: ['True'],
};

/** Every single-token edit the source allows. */
export function findEdits(source: string): Edit[] {
  const toks = tokenize(source);
  const edits: Edit[] = [];
  const add = (kind: EditKind, t: Token, tos: string[]): void => {
    for (const to of tos) edits.push({ kind, start: t.start, end: t.end, from: t.text, to });
  };
  toks.forEach((t, i) => {
    const prev = i > 0 ? toks[i - 1] : undefined;
    if (t.kind === 'op') {
      if (ARITH_SWAPS[t.text] && endsOperand(prev)) add('arith', t, ARITH_SWAPS[t.text]!);
      else if (AUG_SWAPS[t.text]) add('augassign', t, AUG_SWAPS[t.text]!);
      else if (CMP_SWAPS[t.text]) add('compare', t, CMP_SWAPS[t.text]!);
    } else if (t.kind === 'name' && BOOL_SWAPS[t.text]) {
      add('boolean', t, BOOL_SWAPS[t.text]!);
    } else if (t.kind === 'number' && /^(0|[1-9][0-9]*)$/.test(t.text)) {
      const n = Number(t.text);
      if (Number.isSafeInteger(n)) add('constant', t, n === 0 ? ['1'] : n === 1 ? ['2', '0'] : [String(n + 1), String(n - 1)]);
    }
  });
  return edits;
}

/** Whether a token ends an operand, so that a following `+`/`-`/`*` is a binary operator. */
function endsOperand(t: Token | undefined): boolean {
  if (!t) return false;
  if (t.kind === 'number' || t.kind === 'string') return true;
  // After a keyword, `+`, `-`, `*` are unary (or star-args), never binary.
  if (t.kind === 'name') return !PYTHON_KEYWORDS.has(t.text);
  return t.kind === 'op' && (t.text === ')' || t.text === ']' || t.text === '}');
}

// ---------------------------------------------------------------------------
// Tokenizer: enough of Python's lexical grammar to find operators, names and
// numbers outside strings and comments.

interface Token {
  kind: 'name' | 'number' | 'string' | 'op';
  text: string;
  start: number;
  end: number;
}

const OPERATORS = [
  '**=', '//=', '>>=', '<<=', '...',
  '->', ':=', '**', '//', '<<', '>>', '<=', '>=', '==', '!=', '+=', '-=', '*=', '/=', '%=', '&=', '|=', '^=', '@=',
  '+', '-', '*', '/', '%', '@', '<', '>', '=', '&', '|', '^', '~', '(', ')', '[', ']', '{', '}', ',', ':', '.', ';',
];

const STRING_PREFIX = /^(?:[rRbBuUfF]|[rR][bBfF]|[bBfF][rR])?(?:'''|"""|'|")/;

export function tokenize(source: string): Token[] {
  const toks: Token[] = [];
  let i = 0;
  const n = source.length;
  while (i < n) {
    const c = source[i]!;
    if (c === '#') {
      while (i < n && source[i] !== '\n') i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\\' || c === '\f') {
      i++;
      continue;
    }
    const rest = source.slice(i, i + 4);
    const sp = STRING_PREFIX.exec(rest);
    if (sp) {
      const end = scanString(source, i, sp[0]);
      toks.push({ kind: 'string', text: source.slice(i, end), start: i, end });
      i = end;
      continue;
    }
    if (/[\p{L}_]/u.test(c)) {
      let j = i + 1;
      while (j < n && /[\p{L}\p{N}_]/u.test(source[j]!)) j++;
      toks.push({ kind: 'name', text: source.slice(i, j), start: i, end: j });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(source[i + 1] ?? ''))) {
      const m = /^(?:0[xXoObB][0-9a-fA-F_]+|(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][+-]?[0-9_]+)?[jJ]?)/.exec(source.slice(i));
      const j = i + Math.max(1, m![0].length);
      toks.push({ kind: 'number', text: source.slice(i, j), start: i, end: j });
      i = j;
      continue;
    }
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    const len = op ? op.length : 1;
    toks.push({ kind: 'op', text: source.slice(i, i + len), start: i, end: i + len });
    i += len;
  }
  return toks;
}

/** End offset of the string literal starting at `start` whose prefix and opening quote are `head`. */
function scanString(source: string, start: number, head: string): number {
  const quote = head.endsWith('"""') || head.endsWith("'''") ? head.slice(-3) : head.slice(-1);
  let i = start + head.length;
  while (i < source.length) {
    const c = source[i]!;
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (source.startsWith(quote, i)) return i + quote.length;
    // An unterminated single-quoted string ends at the line end (the parser would reject it anyway).
    if (c === '\n' && quote.length === 1) return i;
    i++;
  }
  return source.length;
}
