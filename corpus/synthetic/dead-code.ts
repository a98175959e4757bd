/**
 * Dead-code removal: drops every statement a function's return value does not
 * depend on, so each line of a generated function matters to its result.
 */
import { stmtExprs, subExprs, type Expr, type FuncDef, type Stmt } from './ast.js';

/** Methods that change their receiver in place. */
const MUTATORS = new Set(['append', 'extend', 'insert', 'pop', 'remove', 'sort', 'reverse']);

/** Variables `e` reads. */
function exprReads(e: Expr, out: Set<string>): void {
  if (e.k === 'var') out.add(e.name);
  for (const x of subExprs(e)) exprReads(x, out);
}

/** Variables whose list or dict a mutating method call inside `e` changes. */
function mutatedVars(e: Expr, out: Set<string>): void {
  if (e.k === 'method' && MUTATORS.has(e.name) && e.obj.k === 'var') out.add(e.obj.name);
  for (const x of subExprs(e)) mutatedVars(x, out);
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

