/**
 * Output scoring as CRUXEval does it: a predicted return value is right when it is
 * `==` to the true one as Python literals (`1.0 == 1`, `{1, 2} == {2, 1}`, `(1,) != [1]`).
 *
 * The comparison runs in the sandbox, through the tracer, never with `eval` on the
 * host: the two literals travel as JSON string literals (valid Python string
 * literals) and are read back by `ast.literal_eval`, so a prediction is data, not
 * code. Anything that is not a literal (`<function f>`, `Point(x=1)`) makes
 * `literal_eval` raise, and the pair counts as not equal unless the strings are
 * identical.
 */
import { DEFAULT_LIMITS, type Program, type Trace, type TraceLimits } from '../src/schema.js';
import { TracerPool } from '../tracer/index.js';
import type { OutputScore } from './metrics.js';

/** What the comparison needs from the tracer pool. */
export interface ProgramRunner {
  trace(program: Program): Promise<Trace>;
}

const EQUAL_SOURCE = 'import ast\ndef f(a, b):\n    return ast.literal_eval(a) == ast.literal_eval(b)\n';

/** The program that answers `a == b` for two Python literals. */
export function equalityProgram(a: string, b: string): Program {
  return { id: 'eval:python-equal', source: EQUAL_SOURCE, entry: `f(${JSON.stringify(a)}, ${JSON.stringify(b)})` };
}

/** Python `==` on two literals, run in the sandbox; identical strings are equal without running anything. */
export async function pythonEqual(runner: ProgramRunner, a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  const trace = await runner.trace(equalityProgram(a, b));
  return trace.status === 'ok' && trace.result?.repr === 'True';
}

/**
 * Scores output predictions (null = no return value produced). Without a runner,
 * equality falls back to identical strings (and the report says so).
 */
export async function scoreOutputs(
  runner: ProgramRunner | null,
  pairs: readonly { truth: string; predicted: string | null }[],
): Promise<OutputScore[]> {
  return Promise.all(
    pairs.map(async ({ truth, predicted }): Promise<OutputScore> => {
      const exact = predicted === truth;
      const equal = predicted === null ? false : exact || (runner !== null && (await pythonEqual(runner, predicted, truth)));
      return { truth, predicted, exact, equal };
    }),
  );
}

/** A runner that starts a one-sandbox tracer pool on first use (most outputs are compared as strings). */
export interface SandboxRunner extends ProgramRunner {
  close(): Promise<void>;
}

/** Limits for one comparison: literals are small, and a runaway comparison is a bug. */
const EQUALITY_LIMITS = { maxSteps: 1000, timeoutMs: 10_000 };

/**
 * Limits for running a program of the evaluated set with a generated input (or tracing a
 * CRUXEval function): those `execwm trace` uses by default, so a value cut at
 * `maxValueChars` is cut the same way in the truth and in the run.
 */
export const PROGRAM_LIMITS: TraceLimits = DEFAULT_LIMITS;

/** A one-sandbox runner, by default with the limits of a comparison. */
export function sandboxRunner(options: { limits?: Partial<TraceLimits> } = {}): SandboxRunner {
  let pool: Promise<TracerPool> | null = null;
  return {
    trace(program) {
      pool ??= TracerPool.create({ workers: 1, limits: options.limits ?? EQUALITY_LIMITS });
      return pool.then((p) => p.trace(program));
    },
    async close() {
      if (pool) await (await pool).close();
      pool = null;
    },
  };
}
