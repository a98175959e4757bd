/**
 * Scoring of predicted variable states and traces against the truth: pure functions,
 * no model and no I/O, so every figure in a report can be checked by hand.
 *
 * States are compared as strings: a variable is correct when its predicted value
 * string is identical to the true `Value.repr` (CWM's rule). A prediction that is not
 * a JSON object of strings is *undecodable*: it is kept as data (the frame counts,
 * all its variables are wrong), never an error.
 *
 * Example (truth `{x: '3', y: '4'}`, previous state `{x: '3'}`, diff encoding on):
 *
 *   '{"x": "..", "y": "4"}'  → both correct, exact match
 *   '{"x": "3"}'             → x correct, y missing (wrong), no exact match
 *   '{"x": "3", "y": "4", "z": "0"}' → both correct, extra z, no exact match
 *   '{"x": 3'                → undecodable, both wrong
 */
import type { Locals } from '../src/schema.js';

/** Variable name → value string (`Value.repr`): the form in which states are compared. */
export type StateStrings = Record<string, string>;

/** What diff encoding writes for a value unchanged since the previous frame. */
export const UNCHANGED = '..';

/** The comparable form of a trace's locals. */
export function stateStrings(locals: Locals): StateStrings {
  const out: StateStrings = {};
  for (const [name, value] of Object.entries(locals)) out[name] = value.repr;
  return out;
}

/** A predicted state after decoding: the values, or why the text is not a state. */
export type DecodedState = { ok: true; values: StateStrings } | { ok: false; error: string };

export interface DecodeOptions {
  /** The previous true state that a diff refers to (null when there is none). */
  previous: StateStrings | null;
  /** Whether the model was trained with diff encoding; without it `".."` is taken literally. */
  diff: boolean;
  /** Whether its diffs hold only the changed locals (`null` for a name gone); see training/sequence.ts. */
  changedOnly?: boolean;
}

/**
 * Decodes a generated locals text such as `{"x": "3", "y": ".."}`.
 *
 * With diff encoding, `".."` resolves to the previous state's value; a `".."` for a
 * variable the previous state does not hold stays `".."`, which no Python repr equals,
 * so it scores as wrong. With `changedOnly` and a previous state, the text lists
 * changes only: the previous state, then each name set to its new value or, for
 * `null`, removed.
 */
export function decodeState(text: string, options: DecodeOptions): DecodedState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `invalid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { ok: false, error: 'not a JSON object' };
  }
  const sparse = options.diff && options.changedOnly === true && options.previous !== null;
  const values: StateStrings = sparse ? { ...options.previous } : {};
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (sparse && value === null) {
      delete values[name];
      continue;
    }
    if (typeof value !== 'string') return { ok: false, error: `value of ${name} is not a string` };
    const base = options.previous?.[name];
    values[name] = options.diff && !sparse && value === UNCHANGED && base !== undefined ? base : value;
  }
  return { ok: true, values };
}

export interface VariableScore {
  name: string;
  truth: string;
  /** The predicted value string, null when missing (or the frame is undecodable). */
  predicted: string | null;
  correct: boolean;
}

export interface FrameScore {
  decodable: boolean;
  /** The whole state equals the truth: every variable correct, none missing, none extra. */
  exact: boolean;
  /** One entry per true variable, in the truth's order. */
  variables: VariableScore[];
  /** Predicted names the truth does not hold. */
  extra: string[];
}

/** Scores one predicted state against the true one. */
export function scoreState(truth: StateStrings, predicted: DecodedState): FrameScore {
  const values = predicted.ok ? predicted.values : {};
  const variables = Object.entries(truth).map(([name, value]): VariableScore => {
    const p = Object.hasOwn(values, name) ? values[name]! : null;
    return { name, truth: value, predicted: p, correct: p === value };
  });
  const extra = Object.keys(values).filter((name) => !Object.hasOwn(truth, name));
  const exact = predicted.ok && extra.length === 0 && variables.every((v) => v.correct);
  return { decodable: predicted.ok, exact, variables, extra };
}

/** Correct out of total; the unit every figure is built from. */
export interface Tally {
  correct: number;
  total: number;
}

export function rate(t: Tally): number | null {
  return t.total === 0 ? null : t.correct / t.total;
}

/** A rate as reports print it: `72.4%`, or `n/a` where nothing was counted. */
export function pct(x: number | null | undefined): string {
  return x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`;
}

/** Teacher-forced figures for one predictor (the model or a baseline). */
export interface StateSummary {
  frames: number;
  variables: number;
  /** Share of true variables predicted exactly; null when there were none. */
  variableAccuracy: number | null;
  /** Share of frames whose whole state matched. */
  stateExactMatch: number | null;
  /** Share of frames whose output was not a JSON object of strings. */
  undecodableShare: number | null;
}

/** Accumulates frame scores into a {@link StateSummary}. */
export class StateTally {
  readonly vars: Tally = { correct: 0, total: 0 };
  readonly frames: Tally = { correct: 0, total: 0 };
  undecodable = 0;

  add(score: FrameScore): void {
    this.frames.total += 1;
    if (score.exact) this.frames.correct += 1;
    if (!score.decodable) this.undecodable += 1;
    for (const v of score.variables) {
      this.vars.total += 1;
      if (v.correct) this.vars.correct += 1;
    }
  }

  summary(): StateSummary {
    return {
      frames: this.frames.total,
      variables: this.vars.total,
      variableAccuracy: rate(this.vars),
      stateExactMatch: rate(this.frames),
      undecodableShare: this.frames.total === 0 ? null : this.undecodable / this.frames.total,
    };
  }
}

/** One frame of a trace as rollout compares it: what happened, the state, the line, the value. */
export interface RolloutFrame {
  /** `call`, `line`, `return`, `exception`, or what the model wrote instead. */
  event: string;
  /** Resolved locals for call/line frames; null when absent or undecodable. */
  state: StateStrings | null;
  /** The source line text of the action. */
  action: string;
  /** The returned value (repr) or exception text; null when the frame carries none. */
  arg: string | null;
}

export function framesEqual(a: RolloutFrame, b: RolloutFrame): boolean {
  if (a.event !== b.event || a.action !== b.action || a.arg !== b.arg) return false;
  if (a.state === null || b.state === null) return a.state === b.state;
  const ka = Object.keys(a.state);
  if (ka.length !== Object.keys(b.state).length) return false;
  return ka.every((k) => Object.hasOwn(b.state!, k) && b.state![k] === a.state![k]);
}

export interface RolloutScore {
  /** Every frame equal and the same number of frames. */
  exact: boolean;
  /** Index of the first frame that differs (or is missing / extra); null when exact. */
  firstDivergence: number | null;
  /** Frames equal at the same index before the first divergence. */
  matchedPrefix: number;
  trueFrames: number;
  predictedFrames: number;
}

/**
 * Aligns a generated trace with the true one frame by frame. Frames are compared by
 * position: once the model skips or adds a frame, everything after is diverged, which
 * is what "first divergence" means for a trace generated left to right.
 */
export function scoreRollout(truth: RolloutFrame[], predicted: RolloutFrame[]): RolloutScore {
  const n = Math.min(truth.length, predicted.length);
  let i = 0;
  while (i < n && framesEqual(truth[i]!, predicted[i]!)) i += 1;
  const exact = i === truth.length && i === predicted.length;
  return {
    exact,
    firstDivergence: exact ? null : i,
    matchedPrefix: i,
    trueFrames: truth.length,
    predictedFrames: predicted.length,
  };
}

/** Rollout figures over many traces. */
export interface RolloutSummary {
  traces: number;
  /** Share of traces generated exactly. */
  traceExactMatch: number | null;
  /** Mean first-divergence frame index over diverged traces. */
  meanFirstDivergence: number | null;
  /** Mean share of the true frames matched before the first divergence. */
  meanMatchedShare: number | null;
}

export function summarizeRollouts(scores: RolloutScore[]): RolloutSummary {
  const diverged = scores.filter((s) => s.firstDivergence !== null);
  const mean = (xs: number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
  return {
    traces: scores.length,
    traceExactMatch: scores.length === 0 ? null : scores.filter((s) => s.exact).length / scores.length,
    meanFirstDivergence: mean(diverged.map((s) => s.firstDivergence!)),
    meanMatchedShare: mean(scores.map((s) => (s.trueFrames === 0 ? 1 : s.matchedPrefix / s.trueFrames))),
  };
}

/** One output prediction: the true return value, what was predicted, and how it scored. */
export interface OutputScore {
  truth: string;
  /** Null when the model produced no return value. */
  predicted: string | null;
  /** Identical strings. */
  exact: boolean;
  /** Python `==` on the two literals (CRUXEval's scoring); implied by `exact`. */
  equal: boolean;
}

export interface OutputSummary {
  programs: number;
  exactAccuracy: number | null;
  /** CRUXEval-style accuracy: Python `==` on the literals. */
  equalAccuracy: number | null;
  /** Share of programs where the model produced no return value at all. */
  missingShare: number | null;
}

export function summarizeOutputs(scores: OutputScore[]): OutputSummary {
  const n = scores.length;
  const share = (pred: (s: OutputScore) => boolean): number | null =>
    n === 0 ? null : scores.filter(pred).length / n;
  return {
    programs: n,
    exactAccuracy: share((s) => s.exact),
    equalAccuracy: share((s) => s.equal),
    missingShare: share((s) => s.predicted === null),
  };
}
