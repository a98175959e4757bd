/**
 * The options of an evaluation and their defaults, in one place: `evaluateCorpus` and
 * `evaluateCruxeval` fill what a caller leaves unset from {@link EVAL_DEFAULTS}, and the
 * CLI prints the same values in its help. Types only besides the defaults, so the help
 * loads no model code.
 */
import type { Split } from '../corpus/splits.js';
import type { BackendName } from '../training/backend.js';
import type { TaskName } from '../training/tasks.js';
import type { ProgramRunner } from './equality.js';

export interface EvalProgress {
  /** A phase starts: what is counted and how many. */
  start(label: string, total: number, unit: string): void;
  advance(delta: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export interface EvalOptions {
  /** Run folder or checkpoint folder of the model. */
  modelDir: string;
  /** tfjs backend. */
  backend?: BackendName;
  /** Requests decoded together (equal prompt lengths). */
  batchSize?: number;
  /** Generate whole traces as well (slow: one token at a time per trace). */
  rollout?: boolean;
  /** Cap on tokens generated per rollout. */
  maxRolloutTokens?: number;
  /** Sandbox for Python `==`; null compares outputs as strings only. */
  runner: ProgramRunner | null;
  /**
   * Sandbox that runs programs at trace limits: the generated inputs of `--tasks input`
   * and, for tasks on CRUXEval, its functions. Without it input prediction is scored by
   * identical text only, and tasks on CRUXEval are refused.
   */
  programRunner?: ProgramRunner | null;
  /** Written into the report. */
  execwmVersion: string;
  progress?: EvalProgress;
}

export interface CorpusEvalOptions extends EvalOptions {
  corpusDir: string;
  split: Split;
  /** Evaluate a seeded random sample of this many traces; default all. */
  limit?: number;
  /** Seeds the sample. */
  seed?: number;
  /** Train traces read to fit the most-frequent-value baselines. */
  baselineTraces?: number;
  /**
   * Fit the most-frequent baselines on the train split of this corpus instead (e.g. the model's
   * training corpus, for an evaluation-only set that has no train split); default `corpusDir`.
   */
  baselineCorpusDir?: string;
  /** Traces shown in the report's viewer. */
  examples?: number;
  /** Also evaluate these derived tasks (training/tasks.ts); default none. */
  tasks?: readonly TaskName[];
  /** At most this many examples per task and trace. */
  tasksPerTrace?: number;
}

export interface CruxevalEvalOptions extends EvalOptions {
  /** CRUXEval JSONL (code, input, output). */
  file: string;
  /** The first this many problems; default all. */
  limit?: number;
  /** Output prediction by rollout or directly; default direct unless `rollout`. */
  mode?: 'rollout' | 'direct';
  /** Also evaluate these derived tasks on the problems, traced in the sandbox first; default none. */
  tasks?: readonly TaskName[];
  /** At most this many examples per task and problem. */
  tasksPerTrace?: number;
  /** Seeds which task examples are drawn. */
  seed?: number;
  /** Fit the tasks' most-frequent baselines on this corpus's train split (the problems have none). */
  baselineCorpusDir?: string;
  /** Train traces read to fit them. */
  baselineTraces?: number;
}

/** What an unset option means. */
export const EVAL_DEFAULTS = {
  split: 'test' as Split,
  seed: 0,
  backend: 'auto' as BackendName,
  batchSize: 32,
  rollout: false,
  maxRolloutTokens: 2048,
  baselineTraces: 2000,
  examples: 20,
  tasks: [] as readonly TaskName[],
  tasksPerTrace: 4,
} satisfies Required<Omit<CorpusEvalOptions, 'modelDir' | 'runner' | 'programRunner' | 'execwmVersion' | 'progress' | 'corpusDir' | 'limit' | 'baselineCorpusDir'>>;
