/**
 * One evaluation from files to report: load the checkpoint, read the corpus split,
 * predict (teacher-forced, optionally rollout, and output), score beside the
 * baselines, and build the report. The CLI (`execwm eval`) and the demo call these.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorpusError, manifestId, readCorpus, readManifest, type CorpusTrace, type Manifest, type Split } from '../corpus/index.js';
import type { Program, Trace } from '../src/schema.js';
import { setupBackend, type BackendName } from '../training/backend.js';
import { findCheckpoint, loadCheckpoint, type LoadedCheckpoint } from '../training/checkpoint.js';
import { SPECIAL_TOKEN_LIST, encodeTrace } from '../training/sequence.js';
import { Rng } from '../src/rng.js';
import { MostFrequentValues } from './baselines.js';
import { scoreOutputs, type ProgramRunner } from './equality.js';
import { EvalError } from './errors.js';
import { pct, scoreRollout, summarizeOutputs, summarizeRollouts, type OutputSummary, type RolloutScore } from './metrics.js';
import {
  contextIds,
  decodeGreedy,
  directOutputRequest,
  generateRollouts,
  parseDirectOutput,
  parseRolloutFrames,
  planFrames,
  predictFrames,
  rolloutOutput,
  specialIds,
  trueRolloutFrames,
} from './predict.js';
import { EVAL_DEFAULTS, type CorpusEvalOptions, type CruxevalEvalOptions, type EvalOptions, type EvalProgress } from './config.js';
import type { EvalReport, OutputSection } from './report.js';
import { taskFlags, taskPhase, type InputRunners, type TaskBaselineData, type TasksSection } from './tasks.js';
import { inputExample } from '../training/tasks.js';
import { TeacherForcedEvaluator, type TeacherForcedResult, type ViewerTrace } from './teacher.js';

export interface EvalResult {
  report: EvalReport;
  examples: ViewerTrace[];
}

const quiet: EvalProgress = { start: () => undefined, advance: () => undefined, stop: () => undefined };

/** A checkpoint ready to evaluate, with what the report says about it. */
export interface LoadedModel {
  ckpt: LoadedCheckpoint;
  /** The tfjs backend in use. */
  backend: string;
  /** First hex digits of the weights' sha256. */
  id: string;
  /** Manifest id of the training corpus. */
  trainedOn: string;
}

/** Loads the model after checking it exists and speaks this version's sequence format. */
export async function loadModel(dir: string, backend: BackendName): Promise<LoadedModel> {
  const found = findCheckpoint(dir);
  if (found === null) throw new EvalError(`no model at ${dir} (no checkpoint.json there or in ${join(dir, 'checkpoint')})`);
  let used: string;
  try {
    used = await setupBackend(backend);
  } catch (err) {
    throw new EvalError((err as Error).message);
  }
  const ckpt = await loadCheckpoint(found);
  const specials = ckpt.tokenizer.specialTokens;
  const missing = SPECIAL_TOKEN_LIST.filter((t) => !specials.includes(t));
  if (missing.length > 0 || specials.length !== SPECIAL_TOKEN_LIST.length) {
    ckpt.model.dispose();
    throw new EvalError(
      `tokenizer mismatch: the model's tokenizer has special tokens ${specials.join(' ')}, ` +
        `this execwm writes traces with ${SPECIAL_TOKEN_LIST.join(' ')}`,
    );
  }
  return { ckpt, backend: used, id: ckpt.weightsSha256.slice(0, 12), trainedOn: ckpt.manifestId };
}

/** How the model's training sequences wrote states (checkpoints from before `changedOnly` or `operands` read them as false). */
export function stateEncoding(ckpt: LoadedCheckpoint): { diff: boolean; changedOnly: boolean; operands: boolean } {
  return { diff: ckpt.trainConfig.diff, changedOnly: ckpt.trainConfig.changedOnly, operands: ckpt.trainConfig.operands };
}

/** The report's model section. */
function modelSection(dir: string, loaded: LoadedModel): EvalReport['model'] {
  const { ckpt, id, trainedOn } = loaded;
  return {
    dir,
    id,
    trainedOn,
    step: ckpt.step,
    params: ckpt.model.paramCount(),
    config: { ...ckpt.modelConfig },
    ...stateEncoding(ckpt),
    stateWeight: ckpt.trainConfig.stateWeight,
  };
}

/** The sections one kind of evaluation measured; {@link buildReport} adds what every report carries. */
interface Measured {
  /** The evaluation's own options (the equality used is added to them). */
  config: Record<string, unknown>;
  corpus: EvalReport['corpus'];
  coverage: EvalReport['coverage'];
  teacherForced: EvalReport['teacherForced'];
  rollout: EvalReport['rollout'];
  output: EvalReport['output'];
  rolloutOutput: EvalReport['rolloutOutput'];
  /** Derived tasks, with `--tasks`. */
  tasks?: TasksSection;
  /** Tokens the model generated, for the throughput figure. */
  generatedTokens: number;
}

/** A report of `measured`: format version, model section, every section's flags in one list, timing since `started`. */
function buildReport(options: EvalOptions, loaded: LoadedModel, started: number, measured: Measured): EvalReport {
  const seconds = (performance.now() - started) / 1000;
  const { config, corpus, coverage, teacherForced, rollout, output, rolloutOutput, tasks, generatedTokens } = measured;
  return {
    reportVersion: 1,
    execwm: options.execwmVersion,
    createdAt: new Date().toISOString(),
    config: { ...config, pythonEquality: options.runner ? 'sandbox' : 'identical strings only' },
    model: modelSection(options.modelDir, loaded),
    corpus,
    coverage,
    teacherForced,
    rollout,
    output,
    rolloutOutput,
    ...(tasks ? { tasks } : {}),
    flags: [...(teacherForced?.flags ?? []), ...(output?.flags ?? []), ...(rolloutOutput?.flags ?? []), ...(tasks ? taskFlags(tasks) : [])],
    timing: { seconds, backend: loaded.backend, generatedTokens, tokensPerSecond: seconds > 0 ? generatedTokens / seconds : null },
  };
}

/** A seeded uniform sample of `limit` items (reservoir sampling), in input order. */
export async function sample<T>(items: AsyncIterable<T> | Iterable<T>, limit: number | undefined, seed: number): Promise<T[]> {
  const rng = new Rng(seed);
  const kept: { i: number; item: T }[] = [];
  let n = 0;
  for await (const item of items) {
    if (limit === undefined || kept.length < limit) kept.push({ i: n, item });
    else {
      const j = rng.int(n + 1);
      if (j < limit) kept[j] = { i: n, item };
    }
    n += 1;
  }
  return kept.sort((a, b) => a.i - b.i).map((k) => k.item);
}

/** The most frequent of `values` (ties: the smallest), or null when there are none. */
function mostFrequentText(values: Iterable<string>): string | null {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: string | null = null;
  for (const [k, c] of counts) if (best === null || c > counts.get(best)! || (c === counts.get(best)! && k < best)) best = k;
  return best;
}

/** The most frequent return value (for the output baseline). */
function mostFrequentOutput(traces: readonly Trace[]): string | null {
  return mostFrequentText(traces.flatMap((t) => (t.result ? [t.result.repr] : [])));
}

/** The most frequent argument list among traces that have an input-prediction example (for its baseline). */
export function mostFrequentInput(traces: readonly Trace[]): string | null {
  const args: string[] = [];
  for (const t of traces) {
    const ex = inputExample(t);
    if (ex?.answer.kind === 'text') args.push(ex.answer.text);
  }
  return mostFrequentText(args);
}

/** Output predictions for programs with an entry: by rollout or directly (context → value). */
async function predictOutputs(
  ckpt: LoadedCheckpoint,
  programs: readonly Pick<Trace, 'source' | 'entry'>[],
  options: { mode: 'rollout' | 'direct'; batchSize: number; maxRolloutTokens: number; progress: EvalProgress },
): Promise<{ predicted: (string | null)[]; tokens: number }> {
  const { model, tokenizer } = ckpt;
  const block = model.config.blockSize;
  let tokens = 0;
  if (options.mode === 'rollout') {
    options.progress.start('rollout (outputs)', programs.length, 'programs');
    const rollouts = generateRollouts(
      model,
      tokenizer,
      programs.map((trace) => ({ trace, maxTokens: options.maxRolloutTokens })),
      { stopAtFirstReturn: true, batchSize: options.batchSize, onProgress: (n) => options.progress.advance(n) },
    );
    const predicted = rollouts.map((out) => {
      tokens += out.tokens;
      return rolloutOutput(parseRolloutFrames(out.text, stateEncoding(ckpt)));
    });
    options.progress.stop();
    return { predicted, tokens };
  }
  const sp = specialIds(tokenizer);
  const requests = programs.map((p) => directOutputRequest(p, tokenizer, 128));
  const fits = requests.map((r) => r.prompt.length < block);
  options.progress.start('output prediction', programs.length, 'programs');
  const results = decodeGreedy(
    model,
    requests.filter((_, i) => fits[i]),
    { isStop: (id) => id === sp.frameSep || id === sp.traceEnd, batchSize: options.batchSize, onProgress: (n) => options.progress.advance(n) },
  );
  options.progress.stop();
  let k = 0;
  const predicted = requests.map((_, i) => {
    if (!fits[i]) return null;
    const r = results[k++]!;
    tokens += r.ids.length + (r.stop === null ? 0 : 1);
    return parseDirectOutput(tokenizer.decode(r.ids));
  });
  return { predicted, tokens };
}

/** Says so when direct output prediction is asked of a model never trained on output examples. */
function untrainedDirectFlags(ckpt: LoadedCheckpoint, mode: 'rollout' | 'direct'): string[] {
  if (mode !== 'direct' || ckpt.trainConfig.outputExamples) return [];
  return ['direct output prediction was not a training task of this model (trained without output examples): expect near 0%'];
}

function outputFlags(model: OutputSummary, baseline: OutputSummary | null, mode: 'direct' | 'rollout'): string[] {
  if (!baseline || model.equalAccuracy === null || baseline.equalAccuracy === null) return [];
  return model.equalAccuracy > baseline.equalAccuracy
    ? []
    : [
        `model does not beat baseline most-frequent-output on output accuracy, ${mode} (Python ==) ` +
          `(${pct(model.equalAccuracy)} vs ${pct(baseline.equalAccuracy)})`,
      ];
}

/** Reads the corpus's manifest and checks the split has traces; a bad corpus is an EvalError. */
async function openCorpus(dir: string, split: Split): Promise<Manifest> {
  const manifest = await corpusErrors(() => readManifest(dir));
  if ((manifest.counts.bySplit[split] ?? 0) === 0) {
    const counts = Object.entries(manifest.counts.bySplit).map(([s, n]) => `${s} ${n}`).join(', ');
    throw new EvalError(`corpus ${dir} has no traces in split ${split} (${counts})`);
  }
  return manifest;
}

/** Runs `read`, turning a CorpusError into an EvalError (one line for the user). */
async function corpusErrors<T>(read: () => T | Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof CorpusError) throw new EvalError(err.message);
    throw err;
  }
}

/** The most-frequent baselines and the train traces they are fitted on. */
interface FittedBaselines extends TaskBaselineData {
  train: CorpusTrace[];
}

/** Fits the most-frequent baselines on the train split of `dir` (at most `limit` traces); none for null. */
async function fitBaselines(dir: string | null, limit: number): Promise<FittedBaselines> {
  const train: CorpusTrace[] = [];
  if (dir !== null) {
    await corpusErrors(async () => {
      for await (const t of readCorpus(dir, { split: 'train', limit })) train.push(t);
    });
  }
  return { train, mostFrequent: MostFrequentValues.fit(train), frequentOutput: mostFrequentOutput(train), frequentInput: mostFrequentInput(train) };
}

/** The traces evaluated, and the train traces the most-frequent baselines are fitted on. */
interface EvalTraces extends FittedBaselines {
  traces: CorpusTrace[];
}

async function readEvalTraces(options: CorpusEvalOptions): Promise<EvalTraces> {
  const fitted = await fitBaselines(options.baselineCorpusDir ?? options.corpusDir, options.baselineTraces ?? EVAL_DEFAULTS.baselineTraces);
  const traces = await sample(readCorpus(options.corpusDir, { split: options.split }), options.limit, options.seed ?? EVAL_DEFAULTS.seed);
  return { ...fitted, traces };
}

/** The sandboxes input prediction runs in, or null without a program runner. */
function inputRunners(options: EvalOptions): InputRunners | null {
  return options.programRunner ? { programs: options.programRunner, equality: options.runner } : null;
}

/** Teacher-forced figures, the viewer's traces, and what could not be scored. */
interface TeacherForcedPhase {
  teacherForced: TeacherForcedResult;
  examples: ViewerTrace[];
  coverage: EvalReport['coverage'];
  generatedTokens: number;
}

/** Teacher-forced: plan every frame of a chunk of traces, decode them pooled, score per trace. */
function teacherForcedPhase(
  ckpt: LoadedCheckpoint,
  data: EvalTraces,
  options: { batchSize: number; examples: number; progress: EvalProgress },
): TeacherForcedPhase {
  const { model, tokenizer } = ckpt;
  const { traces } = data;
  const { progress } = options;
  const encoding = stateEncoding(ckpt);
  const evaluator = new TeacherForcedEvaluator({ ...encoding, mostFrequent: data.mostFrequent });
  const examples: ViewerTrace[] = [];
  let generatedTokens = 0;
  let framesSkipped = 0;
  let tracesSkipped = 0;
  const totalFrames = traces.reduce((n, t) => n + t.steps.filter((s) => s.locals !== null).length, 0);
  progress.start('teacher-forced', totalFrames, 'frames');
  // Big chunks give decoding full batches of similar prompt lengths.
  const chunk = 256;
  for (let c = 0; c < traces.length; c += chunk) {
    const part = traces.slice(c, c + chunk);
    const plans = part.map((t) => planFrames(t, tokenizer, { ...encoding, blockSize: model.config.blockSize }));
    const requests = plans.flatMap((p) => p.requests);
    const { texts, generatedTokens: g } = predictFrames(model, tokenizer, requests, {
      batchSize: options.batchSize,
      onProgress: (n) => progress.advance(n),
    });
    generatedTokens += g;
    let k = 0;
    let skippedHere = 0;
    part.forEach((trace, i) => {
      const plan = plans[i]!;
      skippedHere += plan.skipped;
      if (plan.requests.length === 0 && plan.skipped > 0) tracesSkipped += 1;
      const outputs = new Map<number, string>();
      for (const r of plan.requests) outputs.set(r.step, texts[k++]!);
      const view = evaluator.add(trace, outputs);
      if (examples.length < options.examples) examples.push(view);
    });
    framesSkipped += skippedHere;
    const acc = evaluator.result().model.variableAccuracy;
    progress.advance(skippedHere, { acc: acc === null ? 'n/a' : pct(acc) });
  }
  progress.stop();
  const teacherForced = evaluator.result();
  return { teacherForced, examples, coverage: { frames: teacherForced.model.frames, framesSkipped, tracesSkipped }, generatedTokens };
}

/** Rollout: each whole trace generated from the context alone, scored frame by frame, and its return value. */
function rolloutPhase(
  ckpt: LoadedCheckpoint,
  traces: readonly CorpusTrace[],
  options: { batchSize: number; maxRolloutTokens: number; progress: EvalProgress },
): { scores: RolloutScore[]; outputs: (string | null)[]; generatedTokens: number } {
  const { model, tokenizer } = ckpt;
  const encoding = stateEncoding(ckpt);
  const scores: RolloutScore[] = [];
  const outputs: (string | null)[] = [];
  let generatedTokens = 0;
  options.progress.start('rollout', traces.length, 'traces');
  const requests = traces.map((trace) => {
    const trueLength = encodeTrace(trace, tokenizer, encoding).ids.length - contextIds(trace, tokenizer).length;
    return { trace, maxTokens: Math.min(options.maxRolloutTokens, 2 * trueLength + 32) };
  });
  const rollouts = generateRollouts(model, tokenizer, requests, { batchSize: options.batchSize, onProgress: (n) => options.progress.advance(n) });
  traces.forEach((trace, i) => {
    const out = rollouts[i]!;
    generatedTokens += out.tokens;
    const frames = parseRolloutFrames(out.text, encoding);
    scores.push(scoreRollout(trueRolloutFrames(trace), frames));
    outputs.push(rolloutOutput(frames));
  });
  options.progress.stop();
  return { scores, outputs, generatedTokens };
}

/**
 * Output accuracy on traces that returned a value: always direct (context → value), and from
 * the rollouts when there are any (CWM's route: the trace first, then its return value).
 */
async function outputPhase(
  ckpt: LoadedCheckpoint,
  data: EvalTraces,
  rolloutOutputs: (string | null)[] | null,
  options: { runner: ProgramRunner | null; batchSize: number; maxRolloutTokens: number; progress: EvalProgress },
): Promise<{ output: OutputSection | null; rolloutOutput: OutputSection | null; generatedTokens: number }> {
  const withResult = data.traces.map((t, i) => ({ t, i })).filter(({ t }) => t.entry !== null && t.status === 'ok' && t.result !== null);
  if (withResult.length === 0) return { output: null, rolloutOutput: null, generatedTokens: 0 };
  const truths = withResult.map(({ t }) => t.result!.repr);
  const { frequentOutput } = data;
  const baselineScores =
    frequentOutput === null ? null : await scoreOutputs(options.runner, truths.map((truth) => ({ truth, predicted: frequentOutput })));
  const baseline = baselineScores && summarizeOutputs(baselineScores);
  const section = async (mode: 'direct' | 'rollout', predicted: (string | null)[]): Promise<OutputSection> => {
    const modelScores = await scoreOutputs(options.runner, truths.map((truth, j) => ({ truth, predicted: predicted[j]! })));
    const modelSummary = summarizeOutputs(modelScores);
    return { mode, model: modelSummary, baseline, flags: [...untrainedDirectFlags(ckpt, mode), ...outputFlags(modelSummary, baseline, mode)] };
  };
  const { batchSize, maxRolloutTokens, progress } = options;
  const direct = await predictOutputs(ckpt, withResult.map(({ t }) => t), { mode: 'direct', batchSize, maxRolloutTokens, progress });
  const output = await section('direct', direct.predicted);
  const byRollout = rolloutOutputs ? await section('rollout', withResult.map(({ i }) => rolloutOutputs[i]!)) : null;
  return { output, rolloutOutput: byRollout, generatedTokens: direct.tokens };
}

/** Evaluates a model on one split of a corpus. */
export async function evaluateCorpus(options: CorpusEvalOptions): Promise<EvalResult> {
  const started = performance.now();
  const progress = options.progress ?? quiet;
  const batchSize = options.batchSize ?? EVAL_DEFAULTS.batchSize;
  const maxRolloutTokens = options.maxRolloutTokens ?? EVAL_DEFAULTS.maxRolloutTokens;
  const rollout = options.rollout ?? EVAL_DEFAULTS.rollout;
  const manifest = await openCorpus(options.corpusDir, options.split);
  const loaded = await loadModel(options.modelDir, options.backend ?? EVAL_DEFAULTS.backend);
  const { ckpt } = loaded;
  try {
    const data = await readEvalTraces(options);
    const taught = teacherForcedPhase(ckpt, data, { batchSize, examples: options.examples ?? EVAL_DEFAULTS.examples, progress });
    const rolled = rollout ? rolloutPhase(ckpt, data.traces, { batchSize, maxRolloutTokens, progress }) : null;
    const outputs = await outputPhase(ckpt, data, rolled?.outputs ?? null, { runner: options.runner, batchSize, maxRolloutTokens, progress });
    const taskNames = options.tasks ?? EVAL_DEFAULTS.tasks;
    const tasksPerTrace = options.tasksPerTrace ?? EVAL_DEFAULTS.tasksPerTrace;
    const tasks =
      taskNames.length === 0
        ? null
        : await taskPhase(ckpt, data.traces, {
            ...stateEncoding(ckpt),
            tasks: taskNames,
            seed: options.seed ?? EVAL_DEFAULTS.seed,
            perTrace: tasksPerTrace,
            batchSize,
            baselines: data,
            runners: inputRunners(options),
            progress,
          });
    const report = buildReport(options, loaded, started, {
      config: {
        split: options.split,
        limit: options.limit ?? null,
        seed: options.seed ?? EVAL_DEFAULTS.seed,
        rollout,
        batchSize,
        maxRolloutTokens,
        baselineTrainTraces: data.train.length,
        ...(tasks ? { tasks: taskNames, tasksPerTrace } : {}),
      },
      corpus: {
        dir: options.corpusDir,
        // The id training records for its corpus, so a report shows whether model and corpus belong together.
        id: manifestId(manifest),
        split: options.split,
        traces: data.traces.length,
      },
      coverage: taught.coverage,
      teacherForced: taught.teacherForced,
      rollout: rolled ? { summary: summarizeRollouts(rolled.scores) } : null,
      output: outputs.output,
      rolloutOutput: outputs.rolloutOutput,
      ...(tasks ? { tasks: tasks.section } : {}),
      generatedTokens: taught.generatedTokens + (rolled?.generatedTokens ?? 0) + outputs.generatedTokens + (tasks?.generatedTokens ?? 0),
    });
    return { report, examples: taught.examples };
  } finally {
    ckpt.model.dispose();
  }
}

/** One CRUXEval problem: `f` defined in `code`, called with `input`, returns `output`. */
export interface CruxevalProblem {
  id: string;
  code: string;
  input: string;
  output: string;
}

/** Reads CRUXEval's JSONL (fields code, input, output, id); a bad line is a one-line error. */
export function readCruxeval(path: string): CruxevalProblem[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new EvalError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line, i) => {
      let row: Partial<CruxevalProblem>;
      try {
        row = JSON.parse(line) as Partial<CruxevalProblem>;
      } catch {
        throw new EvalError(`${path}:${i + 1}: not JSON`);
      }
      for (const k of ['code', 'input', 'output'] as const) {
        if (typeof row[k] !== 'string') throw new EvalError(`${path}:${i + 1}: missing string field ${k}`);
      }
      return { id: typeof row.id === 'string' ? row.id : `line-${i + 1}`, code: row.code!, input: row.input!, output: row.output! };
    });
}

/** The program a CRUXEval problem runs. */
export function cruxevalProgram(p: CruxevalProblem): Program {
  return { id: p.id, source: p.code, entry: `f(${p.input})`, origin: 'cruxeval' };
}

/**
 * The CRUXEval problems traced in the sandbox (at trace limits), so the derived tasks can be
 * asked of them as of a corpus; none is written to disk.
 */
async function traceCruxeval(problems: readonly CruxevalProblem[], runner: ProgramRunner, progress: EvalProgress): Promise<Trace[]> {
  progress.start('trace CRUXEval', problems.length, 'programs');
  const traces = await Promise.all(
    problems.map(async (p) => {
      const t = await runner.trace(cruxevalProgram(p));
      progress.advance(1);
      return t;
    }),
  );
  progress.stop();
  return traces;
}

/**
 * CRUXEval output prediction: for each function and input, the model's return value scored by
 * Python `==`. With `tasks`, the functions are traced in the sandbox and the derived tasks
 * (input prediction among them: CRUXEval-I, checked by running the model's input) are scored
 * on their traces as on a corpus.
 */
export async function evaluateCruxeval(
  options: CruxevalEvalOptions,
): Promise<EvalResult & { perProblem: { id: string; predicted: string | null; equal: boolean }[] }> {
  const started = performance.now();
  const progress = options.progress ?? quiet;
  const problems = readCruxeval(options.file).slice(0, options.limit);
  const taskNames = options.tasks ?? EVAL_DEFAULTS.tasks;
  if (taskNames.length > 0 && !options.programRunner) throw new EvalError('tasks on CRUXEval need a sandbox to trace its functions in (programRunner)');
  const loaded = await loadModel(options.modelDir, options.backend ?? EVAL_DEFAULTS.backend);
  const { ckpt } = loaded;
  try {
    const mode = options.mode ?? (options.rollout ? 'rollout' : 'direct');
    const programs = problems.map((p) => ({ source: p.code, entry: `f(${p.input})` }));
    const maxRolloutTokens = options.maxRolloutTokens ?? EVAL_DEFAULTS.maxRolloutTokens;
    const batchSize = options.batchSize ?? EVAL_DEFAULTS.batchSize;
    const { predicted, tokens } = await predictOutputs(ckpt, programs, { mode, batchSize, maxRolloutTokens, progress });
    const scores = await scoreOutputs(options.runner, problems.map((p, i) => ({ truth: p.output, predicted: predicted[i]! })));
    let tasks: { section: TasksSection; generatedTokens: number; traced: number; notOk: number; flags: string[] } | null = null;
    const tasksPerTrace = options.tasksPerTrace ?? EVAL_DEFAULTS.tasksPerTrace;
    if (taskNames.length > 0) {
      const baselineDir = options.baselineCorpusDir ?? null;
      const baselines = await fitBaselines(baselineDir, options.baselineTraces ?? EVAL_DEFAULTS.baselineTraces);
      const traces = await traceCruxeval(problems, options.programRunner!, progress);
      const phase = await taskPhase(ckpt, traces, {
        ...stateEncoding(ckpt),
        tasks: taskNames,
        seed: options.seed ?? EVAL_DEFAULTS.seed,
        perTrace: tasksPerTrace,
        batchSize,
        baselines,
        runners: inputRunners(options),
        progress,
      });
      const fitted = taskNames.some((t) => t === 'value' || t === 'output' || t === 'input');
      const flags =
        baselineDir === null && fitted
          ? ['tasks on CRUXEval: no train split to fit the most-frequent baselines (value, output, input) on; give --baselines-from the training corpus']
          : [];
      tasks = { ...phase, traced: traces.length, notOk: traces.filter((t) => t.status !== 'ok').length, flags };
    }
    const report = buildReport(options, loaded, started, {
      config: {
        cruxeval: options.file,
        problems: problems.length,
        mode,
        maxRolloutTokens,
        ...(tasks
          ? {
              tasks: taskNames,
              tasksPerTrace,
              seed: options.seed ?? EVAL_DEFAULTS.seed,
              baselinesFrom: options.baselineCorpusDir ?? null,
              traced: { programs: tasks.traced, notOk: tasks.notOk },
            }
          : {}),
      },
      corpus: null,
      coverage: { frames: 0, framesSkipped: 0, tracesSkipped: 0 },
      teacherForced: null,
      rollout: null,
      output: { mode, model: summarizeOutputs(scores), baseline: null, flags: untrainedDirectFlags(ckpt, mode) },
      rolloutOutput: null,
      ...(tasks ? { tasks: tasks.section } : {}),
      generatedTokens: tokens + (tasks?.generatedTokens ?? 0),
    });
    if (tasks) report.flags.push(...tasks.flags);
    return {
      report,
      examples: [],
      perProblem: problems.map((p, i) => ({ id: p.id, predicted: predicted[i]!, equal: scores[i]!.equal })),
    };
  } finally {
    ckpt.model.dispose();
  }
}
