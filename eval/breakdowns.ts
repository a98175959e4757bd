/**
 * Breakdowns of the teacher-forced figures: where a model is right and where it is not.
 *
 * Frame dimensions (event, program difficulty, step position) split frames, so both
 * variable accuracy and state exact match are reported; variable dimensions (value
 * type, variable role) split variables, so only variable accuracy is.
 *
 * Variable roles are inferred from the source and the trace, and only where they can
 * be told: a `for` target (or a `while`-condition name stepped by a constant) is a
 * loop counter; a name updated from itself (`s += x`, `s = s * x`, `out.append(x)`) is
 * an accumulator; a name that holds a list/dict/set/tuple is a container; anything
 * else is `other`. The first that applies wins, in that order.
 */
import type { Step } from '../src/schema.js';
import type { Predictor } from './baselines.js';
import { rate, type FrameScore, type Tally } from './metrics.js';

export const FRAME_DIMENSIONS = ['event', 'difficulty', 'position'] as const;
export const VARIABLE_DIMENSIONS = ['valueType', 'role'] as const;
export type FrameDimension = (typeof FRAME_DIMENSIONS)[number];
export type VariableDimension = (typeof VARIABLE_DIMENSIONS)[number];
export type Dimension = FrameDimension | VariableDimension;
export const DIMENSIONS: readonly Dimension[] = [...FRAME_DIMENSIONS, ...VARIABLE_DIMENSIONS];

export const DIMENSION_LABELS: Record<Dimension, string> = {
  event: 'event',
  difficulty: 'program difficulty',
  position: 'step position',
  valueType: 'value type',
  role: 'variable role',
};

export type VariableRole = 'loop counter' | 'accumulator' | 'container' | 'other';

export type FrameTags = Record<FrameDimension, string>;

/** Value types the container role covers (the tracer's Python type names). */
const CONTAINER_TYPES = new Set(['list', 'dict', 'set', 'frozenset', 'tuple', 'deque', 'bytearray', 'defaultdict', 'OrderedDict', 'Counter']);

/** `synthetic:hard` → `hard`; other origins by their source kind (`jsonl:a.jsonl:3` → `jsonl`). */
export function difficultyOf(origin: string | undefined | null): string {
  if (!origin) return 'unknown';
  const parts = origin.split(':');
  if (parts[0] === 'synthetic' && parts[1]) return parts[1];
  return parts[0] || 'unknown';
}

/** Early: the first half of a trace's state frames; late: the rest. */
export function positionOf(frameIndex: number, frameCount: number): 'early' | 'late' {
  return frameIndex < frameCount / 2 ? 'early' : 'late';
}

const IDENT = '[A-Za-z_][A-Za-z0-9_]*';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Names bound by `for ... in` (statements and comprehensions). */
function forTargets(source: string): Set<string> {
  const names = new Set<string>();
  const re = /\bfor\s+\(?\s*([A-Za-z_][\w\s,()]*?)\s*\)?\s+in\b/g;
  for (const m of source.matchAll(re)) {
    for (const n of m[1]!.split(/[\s,()]+/)) if (/^[A-Za-z_]\w*$/.test(n)) names.add(n);
  }
  return names;
}

/** Names updated from themselves: augmented assignment, `x = x op ...`, or in-place growth. */
function selfUpdated(source: string): Map<string, string> {
  const how = new Map<string, string>();
  for (const m of source.matchAll(new RegExp(`^\\s*(${IDENT})\\s*(\\+|-|\\*|/|//|%|\\||&|\\^|<<|>>|\\*\\*)=`, 'gm'))) {
    how.set(m[1]!, m[2]!);
  }
  for (const m of source.matchAll(new RegExp(`^\\s*(${IDENT})\\s*=\\s*(.*)$`, 'gm'))) {
    const [name, rhs] = [m[1]!, m[2]!];
    if (new RegExp(`(^|[^\\w.])${escapeRegExp(name)}\\s*[-+*/%|&^]`).test(rhs)) how.set(name, 'expr');
  }
  for (const m of source.matchAll(new RegExp(`\\b(${IDENT})\\.(append|extend|add|insert|update|appendleft)\\(`, 'g'))) {
    if (!how.has(m[1]!)) how.set(m[1]!, m[2]!);
  }
  return how;
}

/** `while` loops whose condition names a variable stepped by a constant (`i += 1`). */
function whileCounters(source: string, updates: Map<string, string>): Set<string> {
  const names = new Set<string>();
  for (const m of source.matchAll(/^\s*while\s+(.*):\s*$/gm)) {
    for (const n of m[1]!.match(/[A-Za-z_]\w*/g) ?? []) {
      const stepped = new RegExp(`^\\s*${escapeRegExp(n)}\\s*[-+]=\\s*\\d+\\s*$`, 'm').test(source);
      if (stepped && updates.has(n)) names.add(n);
    }
  }
  return names;
}

/** Infers each traced variable's role from the source and the types it held in the trace. */
export function inferRoles(source: string, steps: readonly Step[]): Map<string, VariableRole> {
  const updates = selfUpdated(source);
  const counters = new Set([...forTargets(source), ...whileCounters(source, updates)]);
  const containers = new Set<string>();
  const names = new Set<string>();
  for (const step of steps) {
    for (const [name, value] of Object.entries(step.locals ?? {})) {
      names.add(name);
      if (CONTAINER_TYPES.has(value.type)) containers.add(name);
    }
  }
  const roles = new Map<string, VariableRole>();
  for (const name of names) {
    if (counters.has(name)) roles.set(name, 'loop counter');
    else if (updates.has(name)) roles.set(name, 'accumulator');
    else if (containers.has(name)) roles.set(name, 'container');
    else roles.set(name, 'other');
  }
  return roles;
}

interface Cell {
  vars: Tally;
  frames: Tally;
}

/** One row of a breakdown: a key (e.g. `int`) and each predictor's figures on it. */
export interface BreakdownRow {
  key: string;
  variables: number;
  /** Frames in this row; 0 for variable dimensions. */
  frames: number;
  /** Per predictor: variable accuracy and (frame dimensions only) state exact match. */
  figures: Record<Predictor, { variableAccuracy: number | null; stateExactMatch: number | null }>;
}

export type Breakdowns = Record<Dimension, BreakdownRow[]>;

/** Accumulates the breakdowns for every predictor at once. */
export class BreakdownTally {
  private readonly cells = new Map<Dimension, Map<string, Map<Predictor, Cell>>>();

  constructor(private readonly predictors: readonly Predictor[]) {}

  private cell(dim: Dimension, key: string, predictor: Predictor): Cell {
    let byKey = this.cells.get(dim);
    if (!byKey) this.cells.set(dim, (byKey = new Map()));
    let byPred = byKey.get(key);
    if (!byPred) byKey.set(key, (byPred = new Map()));
    let c = byPred.get(predictor);
    if (!c) byPred.set(predictor, (c = { vars: { correct: 0, total: 0 }, frames: { correct: 0, total: 0 } }));
    return c;
  }

  /**
   * Adds one frame scored by every predictor. `variables` gives each true variable's
   * value type and role, by name.
   */
  add(options: {
    frame: FrameTags;
    variables: Record<string, { valueType: string; role: VariableRole }>;
    scores: Record<Predictor, FrameScore>;
  }): void {
    for (const predictor of this.predictors) {
      const score = options.scores[predictor];
      for (const dim of FRAME_DIMENSIONS) {
        const c = this.cell(dim, options.frame[dim], predictor);
        c.frames.total += 1;
        if (score.exact) c.frames.correct += 1;
        for (const v of score.variables) {
          c.vars.total += 1;
          if (v.correct) c.vars.correct += 1;
        }
      }
      for (const v of score.variables) {
        const tags = options.variables[v.name] ?? { valueType: 'unknown', role: 'other' as const };
        for (const dim of VARIABLE_DIMENSIONS) {
          const c = this.cell(dim, tags[dim], predictor);
          c.vars.total += 1;
          if (v.correct) c.vars.correct += 1;
        }
      }
    }
  }

  /** Rows per dimension, most variables first (ties by key), so charts lead with what matters. */
  result(): Breakdowns {
    const out = {} as Breakdowns;
    for (const dim of DIMENSIONS) {
      const rows: BreakdownRow[] = [];
      for (const [key, byPred] of this.cells.get(dim) ?? []) {
        const first = byPred.get(this.predictors[0]!)!;
        const figures = {} as BreakdownRow['figures'];
        for (const p of this.predictors) {
          const c = byPred.get(p)!;
          figures[p] = { variableAccuracy: rate(c.vars), stateExactMatch: rate(c.frames) };
        }
        rows.push({ key, variables: first.vars.total, frames: first.frames.total, figures });
      }
      rows.sort((a, b) => b.variables - a.variables || b.frames - a.frames || a.key.localeCompare(b.key));
      out[dim] = rows;
    }
    return out;
  }
}
