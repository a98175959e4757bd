/**
 * The trace schema: the one contract every stage of execwm imports.
 *
 * A *program* is Python source plus an *entry*: a call expression such as
 * `f([1, 2], 3)` (a function program), or `null` for a script, which is traced
 * as the frame `<module>`. Only frames whose code comes from the program's own
 * source are traced.
 *
 * A *trace* is the list of *steps* the tracer saw, one per event:
 *
 * | event       | when                                        | `locals`                      | `arg`              |
 * | ----------- | ------------------------------------------- | ----------------------------- | ------------------ |
 * | `call`      | a traced frame is entered                   | the arguments                 | null               |
 * | `line`      | a line is *about to* execute                | the frame's locals before it  | null               |
 * | `return`    | the frame returns                           | null                          | the returned value |
 * | `exception` | an exception is raised in / passes through  | null                          | `TypeName: message`|
 *
 * Example: `def f(x):\n    y = x + 1\n    return y` with entry `f(3)` gives
 *
 *   call   line 1  f  {x: '3'}
 *   line   line 2  f  {x: '3'}
 *   line   line 3  f  {x: '3', y: '4'}
 *   return line 3  f  arg '4'
 *
 * Values are strings (see {@link Value}). A program that fails or is cut off is
 * still a trace: its steps so far, a non-`ok` status and a message.
 */

/** What happened at a step (settrace semantics). */
export type TraceEvent = 'call' | 'line' | 'return' | 'exception';

/**
 * How a trace ended.
 * - `ok`: the program (and its entry call) finished normally.
 * - `exception`: an exception escaped the entry call or the script.
 * - `timeout`: the wall-clock limit was hit; the sandbox was killed from outside.
 * - `step_limit`: the event budget was spent.
 * - `memory_limit`: the WebAssembly heap cap was hit (or Python raised MemoryError).
 * - `output_limit`: the program printed more than the stdout budget.
 * - `syntax_error`: the source (or the entry) did not compile.
 * - `crashed`: the sandbox died for another reason, or the tracer was tampered with.
 */
export const TRACE_STATUSES = [
  'ok',
  'exception',
  'timeout',
  'step_limit',
  'memory_limit',
  'output_limit',
  'syntax_error',
  'crashed',
] as const;

export type TraceStatus = (typeof TRACE_STATUSES)[number];

/**
 * An encoded Python value.
 *
 * `repr` is exactly Python's `repr` for builtin types:
 *   `[1, 2]`, `'a'`, `{'k': (1, 2.5)}`, `{1, 2}`, `None`, `b'x'`, `range(0, 3)`.
 * Instances of user classes are encoded structurally, never by calling user code:
 *   `Point(x=1, y=2)` (from `__dict__` or slots).
 * Functions, classes, modules and generators are tags:
 *   `<function f>`, `<class Point>`, `<module math>`, `<generator gen>`.
 * Cycles print as repr does: `[1, [...]]`, `{'a': {...}}`.
 * A value longer than `maxValueChars` is cut and ends with {@link TRUNCATION_MARKER}.
 *
 * `type` is the Python type name (`int`, `list`, `Point`).
 * `id` is a small per-trace object id, present for mutable containers and user
 * objects only (so `b = a` shares an id with `a`, `b = list(a)` does not).
 */
export interface Value {
  repr: string;
  type: string;
  id?: number;
}

/** Appended to a value cut at `maxValueChars`. */
export const TRUNCATION_MARKER = '…<truncated>';

/** Variable name → encoded value, in the frame's own insertion order. */
export type Locals = Record<string, Value>;

export interface Step {
  event: TraceEvent;
  /** 1-based line in the program source. */
  line: number;
  /** Name of the function (`<module>` for the script body, `<lambda>`, `<listcomp>` …). */
  func: string;
  /** Call depth among traced frames; the first traced frame has depth 0. */
  depth: number;
  /** For `call` and `line` steps; null for `return` and `exception`. */
  locals: Locals | null;
  /** The returned value for `return`, `TypeName: message` for `exception`, otherwise null. */
  arg: Value | null;
  /** Text printed since the previous step. */
  stdout: string;
}

/** A program to trace. */
export interface Program {
  /** Stable id (assigned by the source: synthetic generator, importer…). */
  id: string;
  /** Python source code. */
  source: string;
  /** Entry call expression such as `f([1, 2], 3)`, or null for a script. */
  entry: string | null;
  /** Free-form origin labels: `synthetic:medium`, `jsonl:progs.jsonl:12`, `mutation:of=…`. */
  origin?: string;
}

/** Limits applied to one traced run; every field is configurable. */
export interface TraceLimits {
  /** Maximum number of events (steps) recorded before the run stops with `step_limit`. */
  maxSteps: number;
  /** Wall-clock budget per program in milliseconds, enforced by killing the sandbox. */
  timeoutMs: number;
  /** Cap on the WebAssembly heap in bytes. */
  memoryBytes: number;
  /** Maximum bytes of stdout before the run stops with `output_limit`. */
  maxStdoutBytes: number;
  /** Encoded values longer than this are cut with {@link TRUNCATION_MARKER}. */
  maxValueChars: number;
}

export const DEFAULT_LIMITS: TraceLimits = {
  maxSteps: 10_000,
  timeoutMs: 10_000,
  memoryBytes: 512 * 1024 * 1024,
  maxStdoutBytes: 64 * 1024,
  maxValueChars: 200,
};

export interface Trace {
  /** The program's id. */
  id: string;
  source: string;
  entry: string | null;
  status: TraceStatus;
  /** Why the trace ended when not `ok`, e.g. `ZeroDivisionError: division by zero`. */
  message: string | null;
  /** The entry call's return value (null for scripts and failed runs). */
  result: Value | null;
  steps: Step[];
  /** All text printed by the program. */
  stdout: string;
}

/** Version of the trace schema; bump when a field changes meaning. */
export const SCHEMA_VERSION = 1;
