/**
 * Task evaluation (`execwm eval --tasks`): the debugger actions, inverse steps and
 * REval-style questions of training/tasks.ts, decoded greedily and scored beside a
 * simple baseline each, plus REval's Incremental Consistency.
 *
 * Scores:
 * - debugger actions: *frame exact match* (event, source line and every local, or the
 *   value of a return frame) and *line accuracy* (event and source line only);
 * - questions: the answer text identical to the truth;
 * - input prediction: the generated argument list is run in the sandbox as
 *   `NAME(<args>)` on the program's source, and is right when it returns a value
 *   Python-`==` to the true return value (CRUXEval-I); one that does not close the
 *   call, does not parse, raises or runs out of budget is wrong. Beside it, the share
 *   whose text is identical to the true arguments.
 *
 * Baselines (no model): `step`/`next` the textually next line with the current state
 * copied; `out` the first `return` line at or after the current line, returning the
 * current value of the name it returns; `until L` line L with the current state
 * copied; `back` the textually previous line with the current state copied;
 * `coverage` always `yes`; `nextline` the textually next line; `value` the variable's
 * most frequent value in the train split (the line changes it, so copying its value
 * from before the line is never right); `output` the most frequent train return value;
 * `input` the most frequent train argument list, run and scored the same way.
 *
 * Incremental Consistency (REval): per trace one chain about a line L and its first
 * hit — coverage L, value of the variable L changes, the next line, the output — and
 * the share of the chain answered correctly before the first mistake, averaged.
 */
import type { Step, Trace } from '../src/schema.js';
import type { LoadedCheckpoint } from '../training/checkpoint.js';
import {
  DEBUGGER_TASKS,
  INPUT_TASK,
  afterFrame,
  changedVariable,
  deriveTaskExamples,
  encodeTaskExample,
  lineHits,
  splitEntryCall,
  type TaskExample,
  type TaskName,
} from '../training/tasks.js';
import { outputExampleSegments, sourceLine, SPECIAL_TOKENS } from '../training/sequence.js';
import type { MostFrequentValues } from './baselines.js';
import type { EvalProgress } from './config.js';
import { pythonEqual, type ProgramRunner } from './equality.js';
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
  /** Input prediction: the share of answers whose text is identical to the true arguments. */
  exactText?: { model: number | null; baseline: number | null };
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
  input: 'most frequent input',
};

/** The figure of input prediction: with a sandbox, the run's return value compared by Python `==`. */
const INPUT_METRIC = { sandbox: 'f(input) == output', text: 'input exact match (no sandbox)' };

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
  /** The most frequent train argument list of an entry call (input prediction), or null without one. */
  frequentInput: string | null;
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

/** The sandboxes input prediction uses: one runs programs at trace limits, the other compares values. */
export interface InputRunners {
  programs: ProgramRunner;
  /** Python `==` on two literals; null compares the return value's text only. */
  equality: ProgramRunner | null;
}

/**
 * Whether `args` is a right input for the trace's entry function: `NAME(args)` must be one
 * call (the text may not close it early) that returns a value `==` the trace's return value.
 * The true arguments are right without running (traces are deterministic).
 */
export async function inputIsRight(runners: InputRunners, trace: Trace, args: string): Promise<boolean> {
  const call = trace.entry === null ? null : splitEntryCall(trace.entry);
  if (call === null || trace.result === null) return false;
  if (args === call.args) return true;
  const entry = `${call.name}(${args})`;
  if (splitEntryCall(entry)?.args !== args) return false;
  const run = await runners.programs.trace({ id: `${trace.id}:input`, source: trace.source, entry });
  if (run.status !== 'ok' || run.result === null) return false;
  const [got, want] = [run.result.repr, trace.result.repr];
  return runners.equality === null ? got === want : pythonEqual(runners.equality, got, want);
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

/** Input-prediction answers scored: per example, the model's and the baseline's (null without one). */
interface InputTally {
  n: number;
  model: number;
  base: number | null;
  modelText: number;
  baseText: number | null;
}

/** Runs every generated input (and the baseline's) in the sandbox; without runners, compares texts only. */
async function scoreInputs(
  answers: readonly { trace: Trace; ex: TaskExample; text: string }[],
  frequentInput: string | null,
  runners: InputRunners | null,
  progress: EvalProgress,
): Promise<InputTally> {
  progress.start('input runs', answers.length, 'programs');
  const scored = await Promise.all(
    answers.map(async ({ trace, ex, text }) => {
      const truth = ex.answer.kind === 'text' ? ex.answer.text : '';
      const right = async (args: string): Promise<boolean> => (runners === null ? args === truth : inputIsRight(runners, trace, args));
      const [model, base] = await Promise.all([right(text), frequentInput === null ? false : right(frequentInput)]);
      progress.advance(1);
      return { model, base, modelText: text === truth, baseText: frequentInput === truth };
    }),
  );
  progress.stop();
  const count = (pick: (s: (typeof scored)[number]) => boolean) => scored.filter(pick).length;
  const withBaseline = frequentInput !== null;
  return {
    n: scored.length,
    model: count((s) => s.model),
    base: withBaseline ? count((s) => s.base) : null,
    modelText: count((s) => s.modelText),
    baseText: withBaseline ? count((s) => s.baseText) : null,
  };
}

/** Evaluates the chosen tasks on `traces`. */
export async function taskPhase(
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
    /** Sandboxes that run generated inputs; null scores input prediction by identical text only. */
    runners: InputRunners | null;
    progress: EvalProgress;
  },
): Promise<{ section: TasksSection; generatedTokens: number }> {
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
  const inputAnswers: { trace: Trace; ex: TaskExample; text: string }[] = [];
  items.forEach((it, j) => {
    const r = results[j]!;
    generatedTokens += r.ids.length + (r.stop === null ? 0 : 1);
    const text = tokenizer.decode(r.ids);
    if (it.ex.task === INPUT_TASK) {
      inputAnswers.push({ trace: it.trace, ex: it.ex, text });
      return;
    }
    const s = scoreExample(it.trace, it.ex, text, options.baselines);
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
  const inputs = inputAnswers.length === 0 ? null : await scoreInputs(inputAnswers, options.baselines.frequentInput, options.runners, options.progress);
  const tasks: Partial<Record<TaskName, TaskFigure>> = {};
  for (const task of options.tasks) {
    if (task === INPUT_TASK) {
      const t = inputs ?? { n: 0, model: 0, base: null, modelText: 0, baseText: null };
      const share = (correct: number | null) => (correct === null ? null : rate({ correct, total: t.n }));
      tasks[task] = {
        examples: t.n,
        metric: options.runners === null ? INPUT_METRIC.text : INPUT_METRIC.sandbox,
        model: share(t.model),
        baseline: { name: BASELINE_NAMES[task], value: share(t.base) },
        exactText: { model: share(t.modelText), baseline: share(t.baseText) },
      };
      continue;
    }
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
    if (f.examples > 0 && f.baseline.value !== null && (f.model ?? 0) <= f.baseline.value) {
      out.push(`task ${task}: the model's ${f.metric} does not beat the baseline (${f.baseline.name})`);
    }
  }
  return out;
}
