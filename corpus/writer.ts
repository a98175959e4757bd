/**
 * Writes a corpus folder: shards of whole inputs, each written to a temporary
 * name, synced and renamed, then `manifest.json` last.
 *
 * The unit of work is an *input*: one program (its trace plus any kept mutants)
 * or one bad record (an error entry, no rows). Shard k holds inputs
 * [k·inputsPerShard, (k+1)·inputsPerShard), so after a crash the complete shards
 * say exactly which inputs are done, and a resumed run writes the remaining
 * shards with the same boundaries — the same bytes an uninterrupted run writes.
 * Each shard carries its own counts in its Arrow metadata, so nothing but the
 * shards themselves needs to survive a crash.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { TRACE_STATUSES, type Trace, type TraceStatus } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { encodeShard, shardMetadata, type CorpusTrace } from './format.js';
import {
  MANIFEST_FILE,
  RUN_FILE,
  type CorpusConfig,
  type CorpusCounts,
  type CorpusErrorEntry,
  type Manifest,
  type ShardEntry,
} from './manifest.js';
import { SPLITS, splitOf, type Split } from './splits.js';

/** What one input produced. */
export interface InputResult {
  /** Rows to store, in order (the program's trace, then its kept mutants). */
  traces: CorpusTrace[];
  /** Bad-record or failed-mutation entries. */
  errors?: CorpusErrorEntry[];
  /** Mutants traced but not kept (not `ok`). */
  mutantsDropped?: number;
  /** Mutants kept (they are among `traces`). */
  mutantsKept?: number;
}

/** Per-shard bookkeeping stored in the shard's Arrow schema metadata. */
interface ShardMeta {
  firstInput: number;
  inputs: number;
  rows: number;
  byStatus: Record<TraceStatus, number>;
  bySplit: Record<Split, number>;
  mutants: { kept: number; dropped: number };
  errors: CorpusErrorEntry[];
}

export interface CorpusWriterOptions {
  /** The corpus folder (created if missing). */
  dir: string;
  config: CorpusConfig;
  /** Continue an interrupted run in `dir` (its config must match). Default false. */
  resume?: boolean;
  /** Replace an existing corpus in `dir` (its shards, manifest and run file). Default false. */
  overwrite?: boolean;
}

export const shardFileName = (index: number): string => `part-${String(index).padStart(5, '0')}.arrow`;
const SHARD_FILE_RE = /^part-(\d{5})\.arrow$/;

function zeroCounts<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes `bytes` to `path` so that `path` only ever holds the complete content. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, bytes);
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function listShardFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => SHARD_FILE_RE.test(f))
    .sort();
}

export class CorpusWriter {
  /** Milliseconds spent encoding and writing shards (for throughput reports). */
  writeMs = 0;
  private readonly shards: { entry: ShardEntry; meta: ShardMeta }[] = [];
  private pending: InputResult[] = [];
  private nextInput: number;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly config: CorpusConfig,
  ) {
    this.nextInput = 0;
  }

  /** Opens `dir` for writing: a fresh corpus, or (with `resume`) the rest of an interrupted one. */
  static open(options: CorpusWriterOptions): CorpusWriter {
    const { dir, config, resume = false, overwrite = false } = options;
    if (!Number.isInteger(config.inputsPerShard) || config.inputsPerShard <= 0) {
      throw new TypeError(`Expected \`inputsPerShard\` to be a positive integer, got ${config.inputsPerShard}`);
    }
    mkdirSync(dir, { recursive: true });
    const writer = new CorpusWriter(dir, config);
    const runFile = join(dir, RUN_FILE);
    const manifestFile = join(dir, MANIFEST_FILE);
    const existing = listShardFiles(dir);
    const started = existing.length > 0 || existsSync(runFile) || existsSync(manifestFile);
    for (const f of readdirSync(dir)) if (f.endsWith('.tmp')) rmSync(join(dir, f));
    if (started && resume) {
      // A finished corpus has no run file; its manifest holds the same config fields.
      const previous = readFileSync(existsSync(runFile) ? runFile : manifestFile, 'utf8');
      const mismatch = firstDifference(JSON.parse(previous) as Record<string, unknown>, { ...config });
      if (mismatch !== null) {
        throw new CorpusError(`cannot resume ${dir}: ${mismatch} differs from the interrupted run`);
      }
      writer.loadExistingShards(existing);
    } else if (started && !overwrite) {
      throw new CorpusError(`${dir} already holds a corpus (use --resume to finish it, or --overwrite)`);
    } else if (started) {
      for (const f of existing) rmSync(join(dir, f));
      rmSync(manifestFile, { force: true });
    }
    if (!existsSync(runFile) || !resume) writeFileAtomic(runFile, `${JSON.stringify(config, null, 2)}\n`);
    return writer;
  }

  /** Inputs already stored (after a resume): the caller skips that many inputs. */
  get completedInputs(): number {
    return this.nextInput + this.pending.length;
  }

  private loadExistingShards(files: string[]): void {
    files.forEach((file, k) => {
      if (file !== shardFileName(k)) throw new CorpusError(`cannot resume ${this.dir}: ${shardFileName(k)} is missing`);
      const bytes = readFileSync(join(this.dir, file));
      let meta: ShardMeta;
      try {
        meta = JSON.parse(shardMetadata(bytes)) as ShardMeta;
      } catch (err) {
        throw new CorpusError(`cannot resume ${this.dir}: ${file} is unreadable (${(err as Error).message})`);
      }
      if (meta.firstInput !== this.nextInput) {
        throw new CorpusError(`cannot resume ${this.dir}: ${file} starts at input ${meta.firstInput}, expected ${this.nextInput}`);
      }
      this.nextInput += meta.inputs;
      this.shards.push({ entry: { file, rows: meta.rows, sha256: sha256(bytes) }, meta });
    });
  }

  /** Adds the result of the next input; writes a shard when one is full. */
  addInput(result: InputResult): void {
    if (this.closed) throw new Error('CorpusWriter: addInput after close');
    this.pending.push(result);
    if (this.pending.length >= this.config.inputsPerShard) this.flush();
  }

  /** Adds one trace as its own input; the split defaults to the hash of its source. */
  add(trace: Trace, options: { split?: Split; origin?: string } = {}): void {
    const split = options.split ?? splitOf(trace.source, this.config.splitRatios);
    this.addInput({ traces: [{ ...trace, split, origin: options.origin ?? '' }] });
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const start = performance.now();
    const traces = this.pending.flatMap((r) => r.traces);
    const meta: ShardMeta = {
      firstInput: this.nextInput,
      inputs: this.pending.length,
      rows: traces.length,
      byStatus: zeroCounts(TRACE_STATUSES),
      bySplit: zeroCounts(SPLITS),
      mutants: { kept: 0, dropped: 0 },
      errors: [],
    };
    for (const t of traces) {
      meta.byStatus[t.status] += 1;
      meta.bySplit[t.split] += 1;
    }
    for (const r of this.pending) {
      meta.mutants.kept += r.mutantsKept ?? 0;
      meta.mutants.dropped += r.mutantsDropped ?? 0;
      meta.errors.push(...(r.errors ?? []));
    }
    const bytes = encodeShard(traces, JSON.stringify(meta));
    const file = shardFileName(this.shards.length);
    writeFileAtomic(join(this.dir, file), bytes);
    this.shards.push({ entry: { file, rows: traces.length, sha256: sha256(bytes) }, meta });
    this.nextInput += this.pending.length;
    this.pending = [];
    this.writeMs += performance.now() - start;
  }

  /** Writes the last shard and the manifest; returns the manifest. */
  close(): Manifest {
    if (this.closed) throw new Error('CorpusWriter: close called twice');
    this.flush();
    this.closed = true;
    const counts: CorpusCounts = {
      total: 0,
      byStatus: zeroCounts(TRACE_STATUSES),
      bySplit: zeroCounts(SPLITS),
      inputs: 0,
      errors: 0,
      mutants: { kept: 0, dropped: 0 },
    };
    const errors: CorpusErrorEntry[] = [];
    for (const { meta } of this.shards) {
      counts.total += meta.rows;
      counts.inputs += meta.inputs;
      for (const s of TRACE_STATUSES) counts.byStatus[s] += meta.byStatus[s];
      for (const s of SPLITS) counts.bySplit[s] += meta.bySplit[s];
      counts.mutants.kept += meta.mutants.kept;
      counts.mutants.dropped += meta.mutants.dropped;
      errors.push(...meta.errors);
    }
    counts.errors = errors.length;
    const manifest: Manifest = { ...this.config, counts, shards: this.shards.map((s) => s.entry), errors };
    writeFileAtomic(join(this.dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    rmSync(join(this.dir, RUN_FILE), { force: true });
    return manifest;
  }
}

/** The first top-level config field whose JSON differs between `previous` and `next`, or null. */
function firstDifference(previous: Record<string, unknown>, next: Record<string, unknown>): string | null {
  for (const key of Object.keys(next)) {
    if (JSON.stringify(previous[key]) !== JSON.stringify(next[key])) return `the setting "${key}"`;
  }
  return null;
}

/** Writes `traces` as a corpus in one go (tests, small tools); returns the manifest. */
export async function writeCorpus(
  options: CorpusWriterOptions & { traces: Iterable<CorpusTrace | Trace> | AsyncIterable<CorpusTrace | Trace> },
): Promise<Manifest> {
  const writer = CorpusWriter.open(options);
  for await (const t of options.traces) {
    if ('split' in t && 'origin' in t) writer.addInput({ traces: [t as CorpusTrace] });
    else writer.add(t);
  }
  return writer.close();
}
