/**
 * Task evaluation (`execwm eval --tasks`): the debugger actions, inverse steps and
 * REval-style questions of training/tasks.ts, decoded greedily and scored beside a
 * simple baseline each, plus REval's Incremental Consistency.
 *
 * Scores:
 * - debugger actions: *frame exact match* (event, source line and every local, or the
 *   value of a return frame) and *line accuracy* (event and source line only);
 * - questions: the answer text identical to the truth.
 *
 * Baselines (no model): `step`/`next` the textually next line with the current state
 * copied; `out` the first `return` line at or after the current line, returning the
 * current value of the name it returns; `until L` line L with the current state
 * copied; `back` the textually previous line with the current state copied;
 * `coverage` always `yes`; `nextline` the textually next line; `value` the variable's
 * most frequent value in the train split (the line changes it, so copying its value
 * from before the line is never right); `output` the most frequent train return value.
 *
 * Incremental Consistency (REval): per trace one chain about a line L and its first
 * hit — coverage L, value of the variable L changes, the next line, the output — and
 * the share of the chain answered correctly before the first mistake, averaged.
 */
import type { Step, Trace } from '../src/schema.js';
import type { LoadedCheckpoint } from '../training/checkpoint.js';
import {
  DEBUGGER_TASKS,
  afterFrame,
  changedVariable,
  deriveTaskExamples,
  encodeTaskExample,
  lineHits,
  type TaskExample,
  type TaskName,
} from '../training/tasks.js';
import { outputExampleSegments, sourceLine, SPECIAL_TOKENS } from '../training/sequence.js';
import type { MostFrequentValues } from './baselines.js';
import type { EvalProgress } from './config.js';
import { framesEqual, rate, stateStrings, type RolloutFrame, type StateStrings } from './metrics.js';
import { decodeGreedy, parseDirectOutput, parseRolloutFrames, specialIds, trueRolloutFrames, type DecodeRequest } from './predict.js';

/** One task's figures: the model beside its baseline. */
export interface TaskFigure {
  /** Examples scored (those that fit the model's context). */
  examples: number;
  /** `frame exact match` for debugger actions, `answer exact match` for questions. */
  metric: string;
  model: number | null;
  /** What the baseline does, and its figure. */
  baseline: { name: string; value: number | null };
  /** Debugger actions: event and source line right, locals aside. */
  lineAccuracy?: { model: number | null; baseline: number | null };
}

export interface TasksSection {
  tasks: Partial<Record<TaskName, TaskFigure>>;
  /** Examples that did not fit the model's context. */
  skipped: number;
  /** REval's Incremental Consistency over coverage → value → next line → output; null without chains. */
  incrementalConsistency: { chains: number; model: number | null; baseline: number | null; modelAllCorrect: number | null } | null;
}

export const BASELINE_NAMES: Record<TaskName, string> = {
  step: 'next line, state copied',
  next: 'next line, state copied',
  out: 'next return line, current value',
  until: 'line L, state copied',
  back: 'previous line, state copied',
  coverage: 'always executed',
  nextline: 'textually next line',
  value: 'most frequent value',
  output: 'most frequent output',
};

/** The latest state at or before step i (a return frame has none of its own). */
function stateAt(steps: readonly Step[], i: number): StateStrings {
  for (let k = i; k >= 0; k--) if (steps[k]!.locals !== null) return stateStrings(steps[k]!.locals!);
  return {};
}

/** The baseline's stop frame for a debugger action at step i. */
export function baselineFrame(trace: Trace, task: TaskName, i: number, command: string): RolloutFrame {
  const lines = trace.source.split('\n');
  const here = trace.steps[i]!;
  const state = stateAt(trace.steps, i);
  const lineFrame = (line: number): RolloutFrame => ({ event: 'line', state, action: sourceLine(lines, line), arg: null });
  if (task === 'until') return lineFrame(Number(command.split(' ')[1]));
  if (task === 'back') return lineFrame(here.line - 1);
  if (task === 'out') {
    for (let l = here.line; l <= lines.length; l++) {
      const m = /^\s*return\b\s*(.*)$/.exec(sourceLine(lines, l));
      if (m) return { event: 'return', state: null, action: sourceLine(lines, l), arg: state[m[1]!.trim()] ?? (m[1]!.trim() === '' ? 'None' : '') };
    }
    return { event: 'return', state: null, action: sourceLine(lines, here.line), arg: '' };
  }
  return lineFrame(here.line + 1);
}

/** What the question baselines know of the train split. */
export interface TaskBaselineData {
  mostFrequent: MostFrequentValues;
  /** The most frequent train return value, or null without one. */
  frequentOutput: string | null;
}

/** The baseline's answer to a question. */
export function baselineAnswer(ex: Pick<TaskExample, 'task' | 'command'>, data: TaskBaselineData): string {
  const parts = ex.command.split(' ');
  switch (ex.task) {
    case 'coverage':
      return 'yes';
    case 'nextline':
      return String(Number(parts[1]) + 1);
    case 'value':
      return JSON.stringify(data.mostFrequent.valueFor(parts[1]!));
    default:
      return data.frequentOutput === null ? '' : JSON.stringify(data.frequentOutput);
  }
}

const sameLine = (a: RolloutFrame, b: RolloutFrame): boolean => a.event === b.event && a.action === b.action;

/** The model's stop frame from its continuation (up to `<|frame_sep|>`), or a frame matching nothing. */
export function parseStopFrame(text: string): RolloutFrame {
  return parseRolloutFrames(`${text}${SPECIAL_TOKENS.frameSep}`, { diff: false })[0] ?? { event: 'malformed', state: null, action: '', arg: null };
}

/** The model's answer to a question from its continuation. */
function parseAnswer(task: TaskName, text: string): string {
  if (task !== 'output') return text;
  const v = parseDirectOutput(text);
  return v === null ? '' : JSON.stringify(v);
}

/** The four questions of a trace's Incremental Consistency chain, or null when it has no line that changes a variable. */
export function consistencyChain(trace: Trace): TaskExample[] | null {
  const steps = trace.steps;
  if (outputExampleSegments(trace) === null) return null;
  for (let h = 0; h < steps.length; h++) {
    if (steps[h]!.event !== 'line') continue;
    const after = afterFrame(steps, h);
    const name = after === null ? null : changedVariable(steps, h, after);
    if (after === null || name === null) continue;
    const line = steps[h]!.line;
    const k = lineHits(steps, line).indexOf(h) + 1;
    const find = (task: TaskName, command: string) =>
      deriveTaskExamples(trace, { tasks: [task], diff: false, perTrace: Infinity }).find((e) => e.command === command)!;
    const chain = [
      find('coverage', `coverage ${line}`),
      find('value', `value ${name} ${line} ${k}`),
      find('nextline', `nextline ${line} ${k}`),
      find('output', ''),
    ];
    return chain.every(Boolean) ? chain : null;
  }
  return null;
}

/** Scores one example's continuation (and the baseline) as correct or not. */
function scoreExample(trace: Trace, ex: TaskExample, text: string, data: TaskBaselineData): { model: boolean; baseline: boolean; modelLine?: boolean; baselineLine?: boolean } {
  if (ex.answer.kind === 'frame') {
    const truth = trueRolloutFrames(trace)[ex.answer.step]!;
    const predicted = parseStopFrame(text);
    const base = baselineFrame(trace, ex.task, ex.step!, ex.command);
    return { model: framesEqual(truth, predicted), baseline: framesEqual(truth, base), modelLine: sameLine(truth, predicted), baselineLine: sameLine(truth, base) };
  }
  return { model: parseAnswer(ex.task, text) === ex.answer.text, baseline: baselineAnswer(ex, data) === ex.answer.text };
}

/** Evaluates the chosen tasks on `traces`. */
export function taskPhase(
  ckpt: LoadedCheckpoint,
  traces: readonly Trace[],
  options: {
    tasks: readonly TaskName[];
    diff: boolean;
    changedOnly: boolean;
    seed: number;
    perTrace: number;
    batchSize: number;
    baselines: TaskBaselineData;
    progress: EvalProgress;
  },
): { section: TasksSection; generatedTokens: number } {
  const { model, tokenizer } = ckpt;
  const block = model.config.blockSize;
  const sp = specialIds(tokenizer);
  type Item = { trace: Trace; ex: TaskExample; request: DecodeRequest; chain: number | null };
  const items: Item[] = [];
  let skipped = 0;
  const add = (trace: Trace, ex: TaskExample, chain: number | null): void => {
    const enc = encodeTaskExample(ex, tokenizer, block);
    if (enc === null) {
      skipped += 1;
      return;
    }
    const budget = Math.max(8, enc.ids.length - enc.promptLength + 8);
    items.push({ trace, ex, request: { prompt: Array.from(enc.ids.subarray(0, enc.promptLength)), maxNewTokens: budget }, chain });
  };
  let chains = 0;
  for (const trace of traces) {
    for (const ex of deriveTaskExamples(trace, { tasks: options.tasks, diff: options.diff, changedOnly: options.changedOnly, seed: options.seed, perTrace: options.perTrace })) {
      add(trace, ex, null);
    }
    const chain = consistencyChain(trace);
    if (chain !== null) {
      const before = items.length;
      chain.forEach((ex) => add(trace, ex, chains));
      if (items.length - before === chain.length) chains += 1;
      else items.length = before;
    }
  }
  options.progress.start('tasks', items.length, 'examples');
  const results = decodeGreedy(
    model,
    items.map((it) => it.request),
    { isStop: (id) => id === sp.frameSep || id === sp.traceEnd, batchSize: options.batchSize, onProgress: (n) => options.progress.advance(n) },
  );
  options.progress.stop();
  let generatedTokens = 0;
  const tallies = new Map<TaskName, { n: number; model: number; base: number; modelLine: number; baseLine: number }>();
  const chainScores: { model: boolean[]; baseline: boolean[] }[] = Array.from({ length: chains }, () => ({ model: [], baseline: [] }));
  items.forEach((it, j) => {
    const r = results[j]!;
    generatedTokens += r.ids.length + (r.stop === null ? 0 : 1);
    const s = scoreExample(it.trace, it.ex, tokenizer.decode(r.ids), options.baselines);
    if (it.chain !== null) {
      chainScores[it.chain]!.model.push(s.model);
      chainScores[it.chain]!.baseline.push(s.baseline);
      return;
    }
    const t = tallies.get(it.ex.task) ?? { n: 0, model: 0, base: 0, modelLine: 0, baseLine: 0 };
    t.n += 1;
    t.model += Number(s.model);
    t.base += Number(s.baseline);
    t.modelLine += Number(s.modelLine ?? false);
    t.baseLine += Number(s.baselineLine ?? false);
    tallies.set(it.ex.task, t);
  });
  const tasks: Partial<Record<TaskName, TaskFigure>> = {};
  for (const task of options.tasks) {
    const t = tallies.get(task) ?? { n: 0, model: 0, base: 0, modelLine: 0, baseLine: 0 };
    const frame = (DEBUGGER_TASKS as readonly string[]).includes(task);
    tasks[task] = {
      examples: t.n,
      metric: frame ? 'frame exact match' : 'answer exact match',
      model: rate({ correct: t.model, total: t.n }),
      baseline: { name: BASELINE_NAMES[task], value: rate({ correct: t.base, total: t.n }) },
      ...(frame ? { lineAccuracy: { model: rate({ correct: t.modelLine, total: t.n }), baseline: rate({ correct: t.baseLine, total: t.n }) } } : {}),
    };
  }
  const prefix = (xs: boolean[]): number => {
    const k = xs.indexOf(false);
    return (k < 0 ? xs.length : k) / xs.length;
  };
  const mean = (xs: number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
  const incrementalConsistency =
    chains === 0
      ? null
      : {
          chains,
          model: mean(chainScores.map((c) => prefix(c.model))),
          baseline: mean(chainScores.map((c) => prefix(c.baseline))),
          modelAllCorrect: mean(chainScores.map((c) => Number(c.model.every(Boolean)))),
        };
  return { section: { tasks, skipped, incrementalConsistency }, generatedTokens };
}

/** A flag per task whose model figure does not beat its baseline. */
export function taskFlags(section: TasksSection): string[] {
  const out: string[] = [];
  for (const [task, f] of Object.entries(section.tasks)) {
    if (f.examples > 0 && (f.model ?? 0) <= (f.baseline.value ?? 0)) {
      out.push(`task ${task}: the model's ${f.metric} does not beat the baseline (${f.baseline.name})`);
    }
  }
  return out;
}
