/**
 * `execwm trace`: programs (synthetic, JSONL, a folder of scripts, stdin) traced in
 * the sandbox pool and written as an Arrow corpus with a manifest.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { CorpusConfig, SourceConfig } from '../../corpus/index.js';
import { CORPUS_FORMAT_VERSION } from '../../corpus/manifest.js';
import { DEFAULT_SPLIT_RATIOS, type SplitRatios } from '../../corpus/splits.js';
import { mutateProgram } from '../../corpus/mutate.js';
import {
  DEFAULT_MAX_SOURCE_BYTES,
  parseJsonl,
  parseScript,
  readJsonlFile,
  readPyDir,
  type InputItem,
} from '../../corpus/sources.js';
import { generatePrograms, PRESET_NAMES, type Preset } from '../../corpus/synthetic.js';
import { TracerPool } from '../../tracer/index.js';
import { DEFAULT_LIMITS, SCHEMA_VERSION, type TraceLimits } from '../schema.js';
import { UsageError } from '../errors.js';
import { createProgress } from '../progress.js';
import { VERSION } from '../version.js';
import { integer, nonNegativeInt, positiveInt } from '../flags.js';
import { withCorpusErrors } from './corpus.js';

/** Programs generated when no source flag is given, so the pipeline runs with no input at all. */
const DEFAULT_SYNTHETIC_COUNT = 1000;
/** Inputs per shard file: large enough for few files, small enough that a crash loses little. */
const DEFAULT_INPUTS_PER_SHARD = 1000;

interface TraceFlags {
  out: string;
  synthetic?: number;
  seed: number;
  preset: Preset;
  freshNames?: number;
  jsonl?: string;
  dir?: string;
  stdin?: string | boolean;
  mutate: number;
  workers?: number;
  shard?: { index: number; count: number };
  inputsPerShard: number;
  splitRatios?: SplitRatios;
  maxSourceBytes: number;
  maxSteps?: number;
  timeoutMs?: number;
  memoryMb?: number;
  maxStdoutBytes?: number;
  maxValueChars?: number;
  isolation: 'strict' | 'best-effort';
  resume?: boolean;
  overwrite?: boolean;
  quiet?: boolean;
}

function parseShard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) throw new InvalidArgumentError(`expected i/N with 0 <= i < N, got "${value}"`);
  return { index, count };
}

function parseRatios(value: string): SplitRatios {
  const parts = value.split(',').map(Number);
  if (parts.length !== 3 || parts.some((x) => !Number.isFinite(x) || x < 0) || Math.abs(parts[0] + parts[1] + parts[2] - 1) > 1e-9) {
    throw new InvalidArgumentError(`expected three fractions train,val,test summing to 1, got "${value}"`);
  }
  return { train: parts[0], val: parts[1], test: parts[2] };
}

function parsePreset(value: string): Preset {
  if (!(PRESET_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${PRESET_NAMES.join(', ')}, got "${value}"`);
  return value as Preset;
}

function shareFlag(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`expected a number from 0 to 1, got "${value}"`);
  return n;
}

/** The input stream and its description for the manifest. */
function loadInputs(flags: TraceFlags): { inputs: InputItem[]; source: SourceConfig; seeds: Record<string, number> } {
  const given = [flags.synthetic !== undefined, flags.jsonl !== undefined, flags.dir !== undefined, flags.stdin !== undefined];
  if (given.filter(Boolean).length > 1) throw new UsageError('give one source: --synthetic, --jsonl, --dir or --stdin');
  if (flags.freshNames !== undefined && given.slice(1).some(Boolean)) throw new UsageError('--fresh-names names variables of synthetic programs: it needs --synthetic (or no source flag)');
  const importOptions = { maxSourceBytes: flags.maxSourceBytes };
  const seeds: Record<string, number> = flags.mutate > 0 ? { mutate: flags.seed } : {};
  if (flags.jsonl !== undefined) {
    const { items, sha256 } = readJsonlFile(flags.jsonl, importOptions);
    return { inputs: items, source: { kind: 'jsonl', file: basename(flags.jsonl), sha256, maxSourceBytes: flags.maxSourceBytes }, seeds };
  }
  if (flags.dir !== undefined) {
    const { items, sha256 } = readPyDir(flags.dir, importOptions);
    return { inputs: items, source: { kind: 'dir', folder: basename(flags.dir), sha256, maxSourceBytes: flags.maxSourceBytes }, seeds };
  }
  if (flags.stdin !== undefined) {
    const format = flags.stdin === true ? 'jsonl' : flags.stdin;
    if (format !== 'jsonl' && format !== 'py') throw new UsageError(`--stdin takes jsonl or py, got "${String(format)}"`);
    const bytes = readFileSync(0);
    const { items, sha256 } =
      format === 'jsonl'
        ? parseJsonl(bytes, { ...importOptions, name: 'stdin' })
        : { items: [parseScript(bytes, { ...importOptions, id: 'stdin', origin: 'stdin' })], sha256: '' };
    return { inputs: items, source: { kind: 'stdin', format, sha256, maxSourceBytes: flags.maxSourceBytes }, seeds };
  }
  const count = flags.synthetic ?? DEFAULT_SYNTHETIC_COUNT;
  const freshNames = flags.freshNames ?? 0;
  const programs = generatePrograms({ count, seed: flags.seed, preset: flags.preset, freshNames });
  // The hash of the generated ids guards --resume against a changed generator.
  const ids = createHash('sha256').update(programs.map((p) => p.id).join('\n')).digest('hex');
  return {
    inputs: programs.map((program) => ({ program })),
    source: { kind: 'synthetic', count, preset: flags.preset, ...(freshNames > 0 ? { freshNames } : {}), programsSha256: ids },
    seeds: { synthetic: flags.seed, ...seeds },
  };
}

function limitsFrom(flags: TraceFlags): TraceLimits {
  return {
    maxSteps: flags.maxSteps ?? DEFAULT_LIMITS.maxSteps,
    timeoutMs: flags.timeoutMs ?? DEFAULT_LIMITS.timeoutMs,
    memoryBytes: flags.memoryMb !== undefined ? flags.memoryMb * 1024 * 1024 : DEFAULT_LIMITS.memoryBytes,
    maxStdoutBytes: flags.maxStdoutBytes ?? DEFAULT_LIMITS.maxStdoutBytes,
    maxValueChars: flags.maxValueChars ?? DEFAULT_LIMITS.maxValueChars,
  };
}

async function runTrace(flags: TraceFlags): Promise<void> {
  const { inputs, source, seeds } = await withCorpusErrors(() => loadInputs(flags));
  const limits = limitsFrom(flags);
  const partition = flags.shard ?? null;
  const total = partition ? inputs.filter((_, p) => p % partition.count === partition.index).length : inputs.length;
  const started = performance.now();
  const pool = await TracerPool.create({ workers: flags.workers ?? availableParallelism(), limits, isolation: flags.isolation });
  try {
    const config: CorpusConfig = {
      formatVersion: CORPUS_FORMAT_VERSION,
      schemaVersion: SCHEMA_VERSION,
      execwmVersion: VERSION,
      pyodideVersion: pool.pyodideVersion,
      pythonVersion: pool.pythonVersion,
      source,
      seeds,
      mutate: flags.mutate,
      limits,
      splitRatios: flags.splitRatios ?? DEFAULT_SPLIT_RATIOS,
      partition,
      inputsPerShard: flags.inputsPerShard,
    };
    const progress = createProgress({ label: 'tracing', total, unit: 'programs', quiet: flags.quiet });
    const mutate = flags.mutate > 0 ? (p: Parameters<typeof mutateProgram>[0]) => mutateProgram(p, { count: flags.mutate, seed: flags.seed }) : undefined;
    const { buildCorpus } = await import('../../corpus/build.js');
    const result = await withCorpusErrors(() =>
      buildCorpus({
        dir: flags.out,
        config,
        inputs,
        tracer: pool,
        mutate,
        resume: flags.resume,
        overwrite: flags.overwrite,
        onProgress: (done) => progress.update(done),
        // Printed even with --quiet: the user should know that a kept shard was not what was written.
        onRepairs: (lines) => {
          for (const line of lines) process.stderr.write(`${flags.out}: ${line}\n`);
        },
      }),
    );
    progress.stop();
    const seconds = (performance.now() - started) / 1000;
    const m = result.manifest;
    const byStatus = Object.entries(m.counts.byStatus)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${s} ${n}`)
      .join(', ');
    if (!flags.quiet) {
      process.stderr.write(
        `wrote ${flags.out}: ${m.counts.total} traces (${byStatus}) in ${m.shards.length} shards; ` +
          `${m.counts.errors} bad inputs` +
          (flags.mutate > 0 ? `; mutants kept ${m.counts.mutants.kept}, dropped ${m.counts.mutants.dropped}` : '') +
          (result.resumedInputs > 0 ? `; ${result.resumedInputs} inputs kept from the interrupted run` : '') +
          `; ${seconds.toFixed(1)} s, writing ${(result.writeMs / 1000).toFixed(2)} s\n`,
      );
    }
  } finally {
    await pool.close();
  }
}

export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('trace Python programs in the sandbox and write an Arrow corpus (shards + manifest.json)')
    .requiredOption('-o, --out <dir>', 'corpus folder to write')
    .option('--synthetic <n>', `generate n programs (the default source, n = ${DEFAULT_SYNTHETIC_COUNT})`, positiveInt('--synthetic'))
    .option('--seed <s>', 'seed of the synthetic generator and of mutation', integer('--seed'), 1)
    .option('--preset <name>', `synthetic difficulty: ${PRESET_NAMES.join(', ')}`, parsePreset, 'medium' as Preset)
    .option(
      '--fresh-names <share>',
      'synthetic: give this share (0-1) of variables and parameters made-up names (`kobe`, `ta_rin`) instead of ones from a small pool per type (default 0)',
      shareFlag,
    )
    .option('--jsonl <file>', 'import JSONL records: {code, input} (CRUXEval: entry f(<input>)) or {code, entry}')
    .option('--dir <folder>', 'import every .py file under a folder (each traced as a script)')
    .option('--stdin [format]', 'read programs from standard input: jsonl records (default) or py (one script)')
    .option('--mutate <k>', 'add up to k mutants per program (operators, comparisons, constants); kept only if they trace ok', nonNegativeInt('--mutate'), 0)
    .option('--workers <n>', 'sandbox processes (default: one per core)', positiveInt('--workers'))
    .option('--shard <i/N>', 'trace only inputs at positions p with p % N == i (merge parts with `execwm corpus merge`)', parseShard)
    .option('--inputs-per-shard <n>', 'inputs per shard file', positiveInt('--inputs-per-shard'), DEFAULT_INPUTS_PER_SHARD)
    .option('--split-ratios <t,v,s>', 'train,val,test fractions of programs (default 0.8,0.1,0.1)', parseRatios)
    .option('--max-source-bytes <n>', 'refuse imported sources larger than this', positiveInt('--max-source-bytes'), DEFAULT_MAX_SOURCE_BYTES)
    .option('--max-steps <n>', `events per program before step_limit (default ${DEFAULT_LIMITS.maxSteps})`, positiveInt('--max-steps'))
    .option('--timeout-ms <n>', `wall-clock limit per program (default ${DEFAULT_LIMITS.timeoutMs})`, positiveInt('--timeout-ms'))
    .option('--memory-mb <n>', `WebAssembly heap cap per sandbox (default ${DEFAULT_LIMITS.memoryBytes / 2 ** 20})`, positiveInt('--memory-mb'))
    .option('--max-stdout-bytes <n>', `printed bytes before output_limit (default ${DEFAULT_LIMITS.maxStdoutBytes})`, positiveInt('--max-stdout-bytes'))
    .option('--max-value-chars <n>', `values longer than this are cut (default ${DEFAULT_LIMITS.maxValueChars})`, positiveInt('--max-value-chars'))
    .option(
      '--isolation <mode>',
      'strict: refuse to run when a sandbox layer is unavailable; best-effort: run with what is available',
      (v: string) => {
        if (v !== 'strict' && v !== 'best-effort') throw new InvalidArgumentError(`expected strict or best-effort, got "${v}"`);
        return v;
      },
      'best-effort',
    )
    .option(
      '--resume',
      'finish an interrupted run in --out (same command): shards that verify against run.json are kept, any other is traced again',
    )
    .option('--overwrite', 'replace an existing corpus in --out')
    .option('--quiet', 'no progress output')
    .addHelpText(
      'after',
      '\nBad input records (malformed JSON, missing fields, non-UTF-8, oversized) go to the\n' +
        'errors table of manifest.json with a reason; the run continues. Splits come from a hash\n' +
        'of the normalized source (mutants follow their parent). Shards appear only when complete,\n' +
        'so after a crash or kill `--resume` finishes with the same content as an uninterrupted run.\n' +
        '--resume first checks the shards as `execwm corpus verify` does (the sha256 recorded in\n' +
        'run.json when each shard completed, row counts, every step): a damaged, truncated,\n' +
        'missing, misnumbered or unrecorded shard is removed, named with its cause, and its\n' +
        'inputs are traced again.\n\n' +
        'Examples:\n' +
        '  execwm trace --synthetic 10000 --seed 1 --out data/c1\n' +
        '  execwm trace --jsonl cruxeval.jsonl --mutate 2 --out data/crux\n' +
        '  execwm trace --synthetic 10000 --shard 0/4 --out data/c1-part0   # one of 4 machines',
    )
    .action(async (flags: TraceFlags) => {
      if (flags.resume && flags.overwrite) throw new UsageError('give --resume or --overwrite, not both');
      await runTrace(flags);
    });
}
