/**
 * Checks a corpus folder end to end against its own record: every shard's sha256
 * and row count, its metadata (which inputs it holds), every row decoded with its
 * steps, and the manifest's counts against the shards. A finished corpus is checked
 * against `manifest.json`; an interrupted run against `run.json`, which records each
 * shard's hash when that shard completed. `execwm corpus verify` prints the result,
 * and a resumed run starts from it: it keeps only the shards that pass.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TRACE_STATUSES } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { decodeShard, shardMetadata } from './format.js';
import {
  MANIFEST_FILE,
  RUN_FILE,
  readManifest,
  type CorpusConfig,
  type Manifest,
  type RunRecord,
  type ShardEntry,
  type ShardMeta,
} from './manifest.js';
import { SPLITS } from './splits.js';

export const SHARD_FILE_RE = /^part-(\d{5})\.arrow$/;

export const shardFileName = (index: number): string => `part-${String(index).padStart(5, '0')}.arrow`;

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The shard files in `dir`, sorted. */
export function listShardFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => SHARD_FILE_RE.test(f))
    .sort();
}

export interface ShardCheck {
  entry: ShardEntry;
  /** The shard's number, from its file name. */
  index: number;
  /** Its metadata, when the file is what was recorded. */
  meta: ShardMeta | null;
  /** One line saying what is wrong (it starts with the file name), or null. */
  problem: string | null;
}

export interface CorpusCheck {
  /** `finished`: checked against manifest.json; `interrupted`: against run.json. */
  state: 'finished' | 'interrupted';
  /** The record the shards were checked against. */
  record: Manifest | RunRecord;
  shards: ShardCheck[];
  /** Shard files on disk that the record does not list. */
  unrecorded: string[];
  /** Every problem as one line (shards, unlisted files, counts); empty when all is well. */
  problems: string[];
}

export interface CheckOptions {
  /** Decode every row and its steps, not only hashes and metadata. Default true. */
  decode?: boolean;
}

/** Checks one shard file against the entry recorded when it was written. */
export function checkShard(dir: string, entry: ShardEntry, options: CheckOptions = {}): ShardCheck {
  const m = SHARD_FILE_RE.exec(entry.file);
  const index = m ? Number(m[1]) : -1;
  const fail = (cause: string): ShardCheck => ({ entry, index, meta: null, problem: `${entry.file} ${cause}` });
  if (index < 0) return fail('is not a shard file name');
  const path = join(dir, entry.file);
  if (!existsSync(path)) return fail('is missing');
  const bytes = readFileSync(path);
  if (sha256(bytes) !== entry.sha256) {
    return fail(`does not match the sha256 recorded when it was written (damaged, truncated or replaced; ${bytes.length} bytes)`);
  }
  let meta: ShardMeta;
  try {
    meta = JSON.parse(shardMetadata(bytes)) as ShardMeta;
  } catch (err) {
    return fail(`has no readable shard metadata (${(err as Error).message})`);
  }
  if (meta.rows !== entry.rows) return fail(`holds ${meta.rows} rows by its metadata, ${entry.rows} by the record`);
  if (options.decode !== false) {
    try {
      for (const _ of decodeShard(bytes, { label: entry.file, expectedRows: entry.rows }));
    } catch (err) {
      if (!(err instanceof CorpusError)) throw err;
      return { entry, index, meta: null, problem: err.message };
    }
  }
  return { entry, index, meta, problem: null };
}

function readRunRecord(dir: string): RunRecord {
  const file = join(dir, RUN_FILE);
  let parsed: Partial<RunRecord>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<RunRecord>;
  } catch (err) {
    throw new CorpusError(`corrupt run record ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray(parsed.shards) || typeof parsed.inputsPerShard !== 'number') {
    throw new CorpusError(
      `${file} records no shard hashes (an interrupted run of an older execwm): its shards cannot be verified; start again with --overwrite`,
    );
  }
  return parsed as RunRecord;
}

/**
 * Checks `dir` end to end. Throws {@link CorpusError} when there is nothing to check
 * against (no folder, no manifest or run record, an unreadable record).
 */
export function checkCorpus(dir: string, options: CheckOptions = {}): CorpusCheck {
  // A run record beside a manifest is a resume in progress: it is the newer record.
  const interrupted = existsSync(join(dir, RUN_FILE));
  const record: Manifest | RunRecord = interrupted ? readRunRecord(dir) : readManifest(dir);
  const shards = record.shards.map((entry) => checkShard(dir, entry, options));
  const problems: string[] = [];
  const listed = new Set<string>();
  for (const s of shards) {
    if (listed.has(s.entry.file)) s.problem ??= `${s.entry.file} is listed twice`;
    listed.add(s.entry.file);
  }
  const unrecorded = listShardFiles(dir).filter((f) => !listed.has(f));
  if (interrupted) checkInterruptedOrder(record, shards);
  else checkFinished(record as Manifest, shards, problems);
  problems.unshift(...shards.flatMap((s) => (s.problem === null ? [] : [s.problem])));
  for (const f of unrecorded) {
    problems.push(`${f} is not listed in ${interrupted ? RUN_FILE : MANIFEST_FILE}${interrupted ? ' (written as the run was stopped)' : ''}`);
  }
  return { state: interrupted ? 'interrupted' : 'finished', record, shards, unrecorded, problems };
}

/**
 * In a run record shard k holds inputs [k·n, (k+1)·n); only the last shard of the input,
 * written as the run closed, may hold fewer.
 */
function checkInterruptedOrder(config: CorpusConfig, shards: ShardCheck[]): void {
  const n = config.inputsPerShard;
  const lastIndex = Math.max(...shards.map((s) => s.index));
  for (const s of shards) {
    if (s.meta === null) continue;
    const fullEnough = s.meta.inputs === n || (s.index === lastIndex && s.meta.inputs > 0 && s.meta.inputs < n);
    if (s.meta.firstInput !== s.index * n || !fullEnough) {
      s.problem = `${s.entry.file} holds inputs ${s.meta.firstInput}–${s.meta.firstInput + s.meta.inputs - 1}, expected ${s.index * n}–${(s.index + 1) * n - 1} (misnumbered)`;
      s.meta = null;
    }
  }
}

/** A finished corpus: shards numbered 0, 1, …, inputs contiguous (unless merged), counts that add up. */
function checkFinished(manifest: Manifest, shards: ShardCheck[], problems: string[]): void {
  const merged = manifest.mergedPartitions !== undefined;
  let nextInput = 0;
  shards.forEach((s, k) => {
    if (s.problem === null && s.entry.file !== shardFileName(k)) {
      s.problem = `${s.entry.file} is listed at position ${k} of the manifest (misnumbered)`;
      s.meta = null;
    }
    if (s.meta === null || merged) {
      nextInput += manifest.inputsPerShard;
      return;
    }
    const last = k === shards.length - 1;
    if (s.meta.firstInput !== nextInput || s.meta.inputs > manifest.inputsPerShard || (!last && s.meta.inputs !== manifest.inputsPerShard)) {
      s.problem = `${s.entry.file} holds inputs from ${s.meta.firstInput} (${s.meta.inputs} of them), expected from ${nextInput} (misnumbered)`;
      s.meta = null;
    }
    nextInput += s.meta?.inputs ?? manifest.inputsPerShard;
  });
  if (shards.some((s) => s.meta === null)) return;
  const c = manifest.counts;
  const sum = (f: (m: ShardMeta) => number) => shards.reduce((a, s) => a + f(s.meta as ShardMeta), 0);
  const mismatches: string[] = [];
  const compare = (what: string, recorded: number, actual: number) => {
    if (recorded !== actual) mismatches.push(`${what} ${recorded} in the manifest, ${actual} in the shards`);
  };
  compare('traces', c.total, sum((m) => m.rows));
  compare('inputs', c.inputs, sum((m) => m.inputs));
  compare('errors', c.errors, sum((m) => m.errors.length));
  for (const st of TRACE_STATUSES) compare(`status ${st}`, c.byStatus[st], sum((m) => m.byStatus[st]));
  for (const sp of SPLITS) compare(`split ${sp}`, c.bySplit[sp], sum((m) => m.bySplit[sp]));
  if (mismatches.length > 0) problems.push(`${MANIFEST_FILE} counts do not match the shards: ${mismatches.join('; ')}`);
}
