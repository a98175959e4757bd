/**
 * Builds a corpus from an input stream: partition (`--shard i/N`), skip what a
 * previous run already stored and still verifies (`--resume`), expand each program with its
 * mutants, trace everything through one pipelined pool call, and hand each
 * input's rows to the writer in input order.
 */
import type { Program, Step, Trace } from '../src/schema.js';
import type { CorpusTrace } from './format.js';
import type { CorpusConfig, CorpusErrorEntry, Manifest } from './manifest.js';
import type { InputItem } from './sources.js';
import { splitOf } from './splits.js';
import { CorpusWriter, type InputResult } from './writer.js';

/** The part of the tracer pool the build uses (TracerPool satisfies it). */
export interface TraceRunner {
  /** Traces programs and yields their traces in input order. */
  traceAll(programs: Iterable<Program> | AsyncIterable<Program>): AsyncIterable<Trace>;
}

export interface BuildOptions {
  /** The corpus folder. */
  dir: string;
  config: CorpusConfig;
  /** The whole input stream, before partitioning (read twice: ids first, then programs). */
  inputs: readonly InputItem[];
  tracer: TraceRunner;
  /**
   * Makes the mutants of a program (none when absent). Mutants are kept only if they trace
   * `ok` and behave differently from their parent on its input.
   */
  mutate?: (program: Program) => Program[];
  resume?: boolean;
  overwrite?: boolean;
  /** Called after each input is stored or skipped, with the count of inputs done in this partition. */
  onProgress?: (done: number) => void;
  /** Called once before tracing with the lines of {@link BuildResult.repairs}, when there are any. */
  onRepairs?: (repairs: readonly string[]) => void;
}

export interface BuildResult {
  manifest: Manifest;
  /** Inputs found complete from an earlier run and not traced again. */
  resumedInputs: number;
  /** Shards of the earlier run that were not kept, one line each saying why (their inputs were traced again). */
  repairs: string[];
  /** Milliseconds spent encoding and writing shards. */
  writeMs: number;
}

/** The inputs of partition `index` of `count`: positions p with p % count === index. */
export function* partitionInputs(
  inputs: Iterable<InputItem>,
  partition: CorpusConfig['partition'],
): Generator<{ position: number; item: InputItem }> {
  let position = 0;
  for (const item of inputs) {
    if (partition === null || position % partition.count === partition.index) yield { position, item };
    position += 1;
  }
}

/** An input on its way through the pool: how many traces it waits for, and what it has. */
interface PendingInput {
  expected: number;
  programs: Program[];
  traces: Trace[];
  errors: CorpusErrorEntry[];
  split: CorpusTrace['split'];
}

export async function buildCorpus(options: BuildOptions): Promise<BuildResult> {
  const { dir, config, tracer, mutate, onProgress } = options;
  const writer = CorpusWriter.open({ dir, config, resume: options.resume, overwrite: options.overwrite });
  const resumedInputs = writer.keptInputs;
  if (writer.repairs.length > 0) options.onRepairs?.(writer.repairs);
  let done = resumedInputs;
  onProgress?.(done);

  const queue: PendingInput[] = [];
  const flushReady = () => {
    while (queue.length > 0 && queue[0].traces.length === queue[0].expected) {
      const input = queue.shift() as PendingInput;
      writer.addInput(finishInput(input));
      onProgress?.(++done);
    }
  };

  // A mutant identical to an input program, or to an earlier mutant, would be a
  // duplicate row (possibly in another split): it is not traced. Inputs skipped
  // on resume still pass through here so the same mutants are known as seen.
  const inputIds = new Set<string>();
  for (const item of options.inputs) if ('program' in item) inputIds.add(item.program.id);
  const seenMutants = new Set<string>();
  const mutantsOf = (parent: Program, position: number, errors: CorpusErrorEntry[]): Program[] => {
    if (mutate === undefined) return [];
    let mutants: Program[];
    try {
      mutants = mutate(parent);
    } catch (err) {
      // A source the mutator cannot handle costs its variants, not the run.
      errors.push({ input: position, origin: parent.origin ?? parent.id, reason: `mutation failed: ${(err as Error).message}` });
      return [];
    }
    return mutants.filter((m) => {
      if (inputIds.has(m.id) || seenMutants.has(m.id)) return false;
      seenMutants.add(m.id);
      return true;
    });
  };

  function* programs(): Generator<Program> {
    let index = 0;
    for (const { position, item } of partitionInputs(options.inputs, config.partition)) {
      if (writer.isKept(index++)) {
        if ('program' in item) mutantsOf(item.program, position, []);
        continue;
      }
      if ('error' in item) {
        queue.push({ expected: 0, programs: [], traces: [], errors: [{ input: position, ...item.error }], split: 'train' });
        continue;
      }
      const parent = item.program;
      const errors: CorpusErrorEntry[] = [];
      const all = [parent, ...mutantsOf(parent, position, errors)];
      queue.push({ expected: all.length, programs: all, traces: [], errors, split: splitOf(parent.source, config.splitRatios) });
      yield* all;
    }
  }

  for await (const trace of tracer.traceAll(programs())) {
    const input = queue.find((q) => q.traces.length < q.expected);
    if (input === undefined) throw new Error('buildCorpus: the tracer returned more traces than programs');
    input.traces.push(trace);
    flushReady();
  }
  flushReady();
  if (queue.length > 0) throw new Error(`buildCorpus: the tracer returned fewer traces than programs`);
  const manifest = writer.close();
  return { manifest, resumedInputs, repairs: writer.repairs, writeMs: writer.writeMs };
}

/**
 * Whether two traces show the same behaviour: same status, result, output and the same
 * events with the same values. A mutant that behaves like its parent on this input (its
 * edit sits in a branch the input never takes) is not a semantically different variant.
 */
function sameBehaviour(a: Trace, b: Trace): boolean {
  if (a.status !== b.status || a.stdout !== b.stdout || a.steps.length !== b.steps.length) return false;
  if ((a.result?.repr ?? null) !== (b.result?.repr ?? null)) return false;
  const reprs = (locals: Step['locals']): string =>
    locals === null ? '' : JSON.stringify(Object.entries(locals).map(([k, v]) => [k, v.repr]));
  return a.steps.every((sa, i) => {
    const sb = b.steps[i]!;
    return (
      sa.event === sb.event &&
      sa.line === sb.line &&
      sa.func === sb.func &&
      sa.depth === sb.depth &&
      (sa.arg?.repr ?? null) === (sb.arg?.repr ?? null) &&
      reprs(sa.locals) === reprs(sb.locals)
    );
  });
}

/**
 * The rows of one input: the program's trace, then the mutants that traced `ok` and
 * behave differently from it.
 */
function finishInput(input: PendingInput): InputResult {
  const rows: CorpusTrace[] = [];
  let kept = 0;
  let dropped = 0;
  input.traces.forEach((trace, i) => {
    const program = input.programs[i];
    if (trace.id !== program.id) {
      throw new Error(`buildCorpus: expected the trace of ${program.id}, got ${trace.id} (out of order)`);
    }
    if (i > 0 && (trace.status !== 'ok' || sameBehaviour(trace, input.traces[0]!))) {
      dropped += 1;
      return;
    }
    if (i > 0) kept += 1;
    rows.push({ ...trace, split: input.split, origin: program.origin ?? '' });
  });
  return { traces: rows, errors: input.errors, mutantsKept: kept, mutantsDropped: dropped };
}
