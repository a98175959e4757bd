/**
 * Baselines every model figure is reported beside. A model that cannot beat them has
 * learned nothing about execution, however good its numbers look alone.
 *
 * - copy-previous-state: predict the previous frame's values (of the same call);
 *   variables that are new at this frame are missing. Strong on loops whose state
 *   changes one variable at a time.
 * - most-frequent-value: for each true variable, the value that name most often held
 *   in the train split (falling back to the most frequent value overall). It is told
 *   the variable names, so it measures value prediction alone.
 */
import type { Step } from '../src/schema.js';
import { stateStrings, type DecodedState, type StateStrings } from './metrics.js';

/** The predictors a report shows side by side. */
export const PREDICTORS = ['model', 'copyPrevious', 'mostFrequent'] as const;
export type Predictor = (typeof PREDICTORS)[number];
export type Baseline = Exclude<Predictor, 'model'>;
export const BASELINES: readonly Baseline[] = ['copyPrevious', 'mostFrequent'];

export const PREDICTOR_LABELS: Record<Predictor, string> = {
  model: 'model',
  copyPrevious: 'copy-previous-state',
  mostFrequent: 'most-frequent-value',
};

/** The step copy-previous-state copies: the encoder's rule, shared with `--diff changed`. */
export { previousFrameIndices } from '../training/sequence.js';

/** The copy-previous-state prediction: the previous state itself, or nothing. */
export function copyPreviousPrediction(previous: StateStrings | null): DecodedState {
  return { ok: true, values: { ...(previous ?? {}) } };
}

/** The most frequent value of each variable name in the train split. */
export class MostFrequentValues {
  private constructor(
    private readonly byName: Map<string, string>,
    /** The value most frequent over all names, used for names never seen in training. */
    readonly fallback: string,
  ) {}

  /** Counts every call/line frame's values in `steps` lists (usually the train split). */
  static fit(traces: Iterable<{ steps: readonly Step[] }>): MostFrequentValues {
    const counts = new Map<string, Map<string, number>>();
    const global = new Map<string, number>();
    for (const trace of traces) {
      for (const step of trace.steps) {
        if (step.locals === null) continue;
        for (const [name, value] of Object.entries(stateStrings(step.locals))) {
          let m = counts.get(name);
          if (!m) counts.set(name, (m = new Map()));
          m.set(value, (m.get(value) ?? 0) + 1);
          global.set(value, (global.get(value) ?? 0) + 1);
        }
      }
    }
    const byName = new Map<string, string>();
    for (const [name, m] of counts) byName.set(name, argmax(m)!);
    return new MostFrequentValues(byName, argmax(global) ?? 'None');
  }

  /** Builds the table from the JSON that {@link toJSON} wrote (report reuse, tests). */
  static fromJSON(json: { byName: Record<string, string>; fallback: string }): MostFrequentValues {
    return new MostFrequentValues(new Map(Object.entries(json.byName)), json.fallback);
  }

  toJSON(): { byName: Record<string, string>; fallback: string } {
    return { byName: Object.fromEntries(this.byName), fallback: this.fallback };
  }

  valueFor(name: string): string {
    return this.byName.get(name) ?? this.fallback;
  }

  /** Predicts a value for each of the true variable names. */
  predict(names: Iterable<string>): DecodedState {
    const values: StateStrings = {};
    for (const name of names) values[name] = this.valueFor(name);
    return { ok: true, values };
  }
}

/** The key with the highest count; ties go to the lexicographically smallest key (deterministic). */
function argmax(m: Map<string, number>): string | undefined {
  let best: string | undefined;
  let bestCount = -1;
  for (const [k, c] of m) {
    if (c > bestCount || (c === bestCount && best !== undefined && k < best)) {
      best = k;
      bestCount = c;
    }
  }
  return best;
}
