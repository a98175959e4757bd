/**
 * `manifest.json`: what a corpus holds and how it was made, read by training and
 * eval instead of re-deriving it. No wall-clock values, so an interrupted and
 * resumed run writes the same manifest as an uninterrupted one.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import { TRACE_STATUSES, type TraceLimits, type TraceStatus } from '../src/schema.js';
import { CorpusError, schemaIssue } from './errors.js';
import { SPLITS, type Split, type SplitRatios } from './splits.js';

export const MANIFEST_FILE = 'manifest.json';

/** Version of the corpus layout (shard columns, delta rules, manifest fields). */
export const CORPUS_FORMAT_VERSION = 1;

/** Where the programs came from; `kind` plus the settings that reproduce the input. */
export interface SourceConfig {
  kind: 'synthetic' | 'jsonl' | 'dir' | 'stdin' | 'traces';
  /** Further settings: `count`/`preset` (synthetic), `path`/`sha256` (imports)… */
  [setting: string]: unknown;
}

/** A record that could not become a program (or a mutation that failed), with why. */
export interface CorpusErrorEntry {
  /** Position of the record in the whole input stream (before `--shard` partitioning). */
  input: number;
  /** Where it came from, e.g. `jsonl:progs.jsonl:12`. */
  origin: string;
  reason: string;
}

export interface ShardEntry {
  /** File name inside the corpus folder, e.g. `part-00000.arrow`. */
  file: string;
  rows: number;
  /** Hex sha256 of the whole file. */
  sha256: string;
}

/** Everything in the manifest that is fixed before the first trace is written. */
export interface CorpusConfig {
  formatVersion: number;
  /** The trace schema version (src/schema.ts SCHEMA_VERSION). */
  schemaVersion: number;
  execwmVersion: string;
  pyodideVersion: string;
  pythonVersion: string;
  source: SourceConfig;
  /** Seeds of every random choice, e.g. `{ synthetic: 1, mutate: 1 }`. */
  seeds: Record<string, number>;
  /** Variants per program from mutation (0 = none). */
  mutate: number;
  limits: TraceLimits;
  splitRatios: SplitRatios;
  /** `--shard i/N`: this corpus holds inputs whose position p has p % count === index. */
  partition: { index: number; count: number } | null;
  /** Inputs per shard file (the unit that a resumed run skips or redoes). */
  inputsPerShard: number;
}

export interface CorpusCounts {
  /** Traces (rows) in the corpus. */
  total: number;
  byStatus: Record<TraceStatus, number>;
  bySplit: Record<Split, number>;
  /** Input records handled (programs and bad records) in this corpus's partition. */
  inputs: number;
  /** Entries in `errors`. */
  errors: number;
  /** Mutants kept (they traced `ok`) and dropped. */
  mutants: { kept: number; dropped: number };
}

export interface Manifest extends CorpusConfig {
  counts: CorpusCounts;
  shards: ShardEntry[];
  errors: CorpusErrorEntry[];
  /** Set on a corpus made by `corpus merge`: the partitions it joins. */
  mergedPartitions?: { index: number; count: number }[];
  /** Set on a merge made with `--allow-partial`: the partitions it lacks (their inputs are not in it). */
  missingPartitions?: { index: number; count: number }[];
}

/**
 * A shard's own bookkeeping, stored in its Arrow schema metadata: which inputs it
 * holds and what they produced, so the manifest can be rebuilt from the shards.
 */
export interface ShardMeta {
  /** Position (within the partition) of the shard's first input. */
  firstInput: number;
  inputs: number;
  rows: number;
  byStatus: Record<TraceStatus, number>;
  bySplit: Record<Split, number>;
  mutants: { kept: number; dropped: number };
  errors: CorpusErrorEntry[];
}

/**
 * The id of a corpus: the first 16 hex digits of the sha256 of its manifest as JSON. A
 * checkpoint records the id of the corpus it trained on, and an eval report the id of the
 * corpus it read, so either shows whether a model and a corpus belong together.
 */
export function manifestId(manifest: Manifest): string {
  return createHash('sha256').update(JSON.stringify(manifest)).digest('hex').slice(0, 16);
}

const partition = v.object({ index: v.number(), count: v.number() });
/** A count for every key (the writers start each count at 0). */
const counted = <K extends string>(keys: readonly K[]) =>
  v.object(Object.fromEntries(keys.map((k) => [k, v.number()])) as Record<K, v.NumberSchema<undefined>>);

/** manifest.json, checked field by field when read (see {@link readManifest}). */
const MANIFEST_SCHEMA = v.object({
  formatVersion: v.literal(CORPUS_FORMAT_VERSION),
  schemaVersion: v.number(),
  execwmVersion: v.string(),
  pyodideVersion: v.string(),
  pythonVersion: v.string(),
  source: v.looseObject({ kind: v.picklist(['synthetic', 'jsonl', 'dir', 'stdin', 'traces']) }),
  seeds: v.record(v.string(), v.number()),
  mutate: v.number(),
  limits: v.object({ maxSteps: v.number(), timeoutMs: v.number(), memoryBytes: v.number(), maxStdoutBytes: v.number(), maxValueChars: v.number() }),
  splitRatios: v.object({ train: v.number(), val: v.number(), test: v.number() }),
  partition: v.nullable(partition),
  inputsPerShard: v.number(),
  counts: v.object({
    total: v.number(),
    byStatus: counted(TRACE_STATUSES),
    bySplit: counted(SPLITS),
    inputs: v.number(),
    errors: v.number(),
    mutants: v.object({ kept: v.number(), dropped: v.number() }),
  }),
  shards: v.array(
    v.object({
      file: v.pipe(v.string(), v.check((f) => !f.includes('/'), 'Expected a file name without a folder')),
      rows: v.number(),
      sha256: v.string(),
    }),
  ),
  errors: v.array(v.object({ input: v.number(), origin: v.string(), reason: v.string() })),
  mergedPartitions: v.optional(v.array(partition)),
  missingPartitions: v.optional(v.array(partition)),
}) satisfies v.GenericSchema<unknown, Manifest>;

/** Reads and checks `dir/manifest.json`; throws {@link CorpusError} with a one-line cause. */
export function readManifest(dir: string): Manifest {
  const file = join(dir, MANIFEST_FILE);
  if (!existsSync(dir)) throw new CorpusError(`no corpus at ${dir} (folder does not exist)`);
  if (!existsSync(file)) {
    const hint = existsSync(join(dir, RUN_FILE)) ? ' (an unfinished run: finish it with --resume)' : '';
    throw new CorpusError(`no corpus at ${dir}: ${MANIFEST_FILE} is missing${hint}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CorpusError(`corrupt manifest ${file}: ${(err as Error).message}`);
  }
  const formatVersion = (parsed as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof formatVersion === 'number' && formatVersion !== CORPUS_FORMAT_VERSION) {
    throw new CorpusError(`corpus ${dir} has format version ${formatVersion}; this execwm reads version ${CORPUS_FORMAT_VERSION}`);
  }
  const result = v.safeParse(MANIFEST_SCHEMA, parsed);
  if (!result.success) throw new CorpusError(`corrupt manifest ${file}: ${schemaIssue(result.issues)}`);
  // The object as written, not the schema's copy: manifestId() hashes it with its key order.
  return parsed as Manifest;
}

/**
 * `run.json`: the record of a run in progress, kept beside the shards until the manifest is
 * written — its config, and the entry (rows, sha256) of each shard as it completed, so a
 * resumed run keeps only shards that are still what was written.
 */
export const RUN_FILE = 'run.json';

export interface RunRecord extends CorpusConfig {
  /** The shards completed so far, in the order they were written. */
  shards: ShardEntry[];
}
