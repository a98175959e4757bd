/**
 * Teacher-forced evaluation: given, for each call/line frame of a trace, the text the
 * model generated for its locals, score it beside the baselines, accumulate the
 * breakdowns, and keep what the report's trace viewer shows.
 *
 * The model side is plain strings, so this file runs without a model (tests feed it
 * hand-made outputs; `predict.ts` feeds it real ones).
 */
import type { Step, Trace } from '../src/schema.js';
import { diffReferenceIndices } from '../training/sequence.js';
import {
  BASELINES,
  PREDICTORS,
  PREDICTOR_LABELS,
  copyPreviousPrediction,
  previousFrameIndices,
  type Baseline,
  type MostFrequentValues,
  type Predictor,
} from './baselines.js';
import {
  BreakdownTally,
  difficultyOf,
  inferRoles,
  positionOf,
  type Breakdowns,
  type VariableRole,
} from './breakdowns.js';
import {
  StateTally,
  decodeState,
  pct,
  scoreState,
  stateStrings,
  type FrameScore,
  type StateStrings,
  type StateSummary,
} from './metrics.js';

/** A trace as eval sees it: the schema's trace plus where the program came from. */
export type EvalTrace = Trace & { origin?: string | null };

/** One step as the report's trace viewer shows it. */
export interface ViewerStep {
  event: Step['event'];
  line: number;
  func: string;
  depth: number;
  /** True locals (call/line) or null. */
  truth: StateStrings | null;
  /** The model's resolved locals; null when not evaluated or undecodable. */
  predicted: StateStrings | null;
  /** The raw generated text when it could not be decoded. */
  undecodable: string | null;
  /** Names whose predicted value is wrong or missing, plus extra predicted names. */
  mismatches: string[];
  /** Return value or exception text. */
  arg: string | null;
}

export interface ViewerTrace {
  id: string;
  source: string;
  entry: string | null;
  origin: string | null;
  status: Trace['status'];
  steps: ViewerStep[];
}

/** Whether the model beats one baseline on one figure; `null` when either figure is missing. */
export interface BaselineComparison {
  metric: 'variableAccuracy' | 'stateExactMatch';
  baseline: Baseline;
  model: number | null;
  baselineValue: number | null;
  beats: boolean | null;
}

export interface TeacherForcedResult {
  model: StateSummary;
  baselines: Record<Baseline, StateSummary>;
  comparisons: BaselineComparison[];
  /** One sentence per figure where the model does not beat a baseline. */
  flags: string[];
  breakdowns: Breakdowns;
}

export interface TeacherForcedOptions {
  /** Whether the model's sequences used diff encoding (`".."` for unchanged values). */
  diff: boolean;
  /** Whether its diffs list only the changed locals. */
  changedOnly?: boolean;
  /** The most-frequent-value baseline, fitted on the train split. */
  mostFrequent: MostFrequentValues;
}

export class TeacherForcedEvaluator {
  private readonly tallies: Record<Predictor, StateTally> = {
    model: new StateTally(),
    copyPrevious: new StateTally(),
    mostFrequent: new StateTally(),
  };
  private readonly breakdown = new BreakdownTally(PREDICTORS);

  constructor(private readonly options: TeacherForcedOptions) {}

  /**
   * Scores the model's outputs on one trace. `outputs` maps a step index to the raw
   * locals text generated at that call/line step; steps without an output are not
   * evaluated (for example beyond the model's context). Returns the viewer's data.
   */
  add(trace: EvalTrace, outputs: ReadonlyMap<number, string>): ViewerTrace {
    const steps = trace.steps;
    const base = diffReferenceIndices(steps, { changedOnly: this.options.changedOnly });
    const prevFrame = previousFrameIndices(steps);
    const roles = inferRoles(trace.source, steps);
    const difficulty = difficultyOf(trace.origin);
    const frameSteps = steps.flatMap((s, i) => (s.locals !== null ? [i] : []));
    const viewerSteps: ViewerStep[] = steps.map((s) => ({
      event: s.event,
      line: s.line,
      func: s.func,
      depth: s.depth,
      truth: s.locals === null ? null : stateStrings(s.locals),
      predicted: null,
      undecodable: null,
      mismatches: [],
      arg: s.arg?.repr ?? null,
    }));
    frameSteps.forEach((i, frameIndex) => {
      const text = outputs.get(i);
      const step = steps[i]!;
      if (text === undefined || step.locals === null) return;
      const truth = stateStrings(step.locals);
      const stateAt = (j: number | null): StateStrings | null => {
        const l = j === null ? null : steps[j]!.locals;
        return l ? stateStrings(l) : null;
      };
      const decoded = decodeState(text, { previous: stateAt(base[i]!), diff: this.options.diff, changedOnly: this.options.changedOnly });
      const scores: Record<Predictor, FrameScore> = {
        model: scoreState(truth, decoded),
        copyPrevious: scoreState(truth, copyPreviousPrediction(stateAt(prevFrame[i]!))),
        mostFrequent: scoreState(truth, this.options.mostFrequent.predict(Object.keys(truth))),
      };
      for (const p of PREDICTORS) this.tallies[p].add(scores[p]);
      const variables: Record<string, { valueType: string; role: VariableRole }> = {};
      for (const [name, value] of Object.entries(step.locals)) {
        variables[name] = { valueType: value.type, role: roles.get(name) ?? 'other' };
      }
      this.breakdown.add({
        frame: { event: step.event, difficulty, position: positionOf(frameIndex, frameSteps.length) },
        variables,
        scores,
      });
      const v = viewerSteps[i]!;
      v.predicted = decoded.ok ? decoded.values : null;
      v.undecodable = decoded.ok ? null : text;
      v.mismatches = [...scores.model.variables.filter((x) => !x.correct).map((x) => x.name), ...scores.model.extra];
    });
    return {
      id: trace.id,
      source: trace.source,
      entry: trace.entry,
      origin: trace.origin ?? null,
      status: trace.status,
      steps: viewerSteps,
    };
  }

  result(): TeacherForcedResult {
    const model = this.tallies.model.summary();
    const baselines = {
      copyPrevious: this.tallies.copyPrevious.summary(),
      mostFrequent: this.tallies.mostFrequent.summary(),
    };
    const comparisons = compareWithBaselines(model, baselines);
    return { model, baselines, comparisons, flags: baselineFlags(comparisons), breakdowns: this.breakdown.result() };
  }
}

export function compareWithBaselines(
  model: StateSummary,
  baselines: Record<Baseline, StateSummary>,
): BaselineComparison[] {
  const out: BaselineComparison[] = [];
  for (const metric of ['variableAccuracy', 'stateExactMatch'] as const) {
    for (const baseline of BASELINES) {
      const m = model[metric];
      const b = baselines[baseline][metric];
      out.push({ metric, baseline, model: m, baselineValue: b, beats: m === null || b === null ? null : m > b });
    }
  }
  return out;
}

const METRIC_LABELS = { variableAccuracy: 'variable accuracy', stateExactMatch: 'state exact match' } as const;

export function baselineFlags(comparisons: readonly BaselineComparison[]): string[] {
  return comparisons
    .filter((c) => c.beats === false)
    .map(
      (c) =>
        `model does not beat baseline ${PREDICTOR_LABELS[c.baseline]} on ${METRIC_LABELS[c.metric]} ` +
        `(${pct(c.model)} vs ${pct(c.baselineValue)})`,
    );
}
