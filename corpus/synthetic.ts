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
 * of the subset on its own entry before it is kept, so each emitted program is
 * valid Python, raises nothing, keeps its values bounded and finishes within
 * the preset's event window, far inside DEFAULT_LIMITS.maxSteps. Programs are
 * distinct by normalized source + entry, and the sequence for a seed does not
 * depend on `count`: asking for more programs extends the list.
 *
 * The parts, in ./synthetic/: knobs.ts (features, knobs, presets), ast.ts (the
 * subset's values and nodes), value-types.ts (one entry per value type),
 * builder.ts (functions, statements, loops), recursive.ts (recursive helper
 * templates), printer.ts, interpreter.ts, values.ts (Python semantics of the
 * values), dead-code.ts (pruning what the result does not depend on).
 *
 * Adding a value type (say, sets of ints):
 * 1. Name it in `TYPES` and give it an entry in `VALUE_TYPES`
 *    (./synthetic/value-types.ts): when it is enabled, variable names, literals,
 *    the expressions that build it, the updates that change it, and optionally
 *    its parameter and accumulator roles. Usually it has a feature of its own
 *    in `ALL_FEATURES` (./synthetic/knobs.ts) for `enabled` to test.
 * 2. If its runtime values are new, add them to `PyValue` (./synthetic/ast.ts)
 *    with their cases in ./synthetic/values.ts (`pyRepr`, `pyEq`, `pyCompare`,
 *    `truthy`, `asSeq`), and teach ./synthetic/interpreter.ts the builtins and
 *    methods its expressions call. A new kind of node also needs its case in
 *    `subExprs`, the printer and the interpreter.
 * 3. Run tests/corpus/synthetic.test.ts: it checks the interpreter against
 *    CPython on generated programs. A new type changes which programs a seed
 *    gives wherever it is enabled, since draws then choose among more types.
 */
import { createHash } from 'node:crypto';

import { SplitMix32, type Draws } from '../src/rng.js';
import type { Program } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { normalizeSource } from './splits.js';
import type { FuncDef, PyValue } from './synthetic/ast.js';
import { ProgramBuilder } from './synthetic/builder.js';
import { Interpreter } from './synthetic/interpreter.js';
import { resolveKnobs, type Knobs, type Preset } from './synthetic/knobs.js';
import { printProgram } from './synthetic/printer.js';
import { Rejected, pyRepr } from './synthetic/values.js';

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
