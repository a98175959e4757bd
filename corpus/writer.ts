/**
 * Writes a corpus folder: shards of whole inputs, each written to a temporary
 * name, synced and renamed, then `manifest.json` last.
 *
 * The unit of work is an *input*: one program (its trace plus any kept mutants)
 * or one bad record (an error entry, no rows). Shard k holds inputs
 * [k·inputsPerShard, (k+1)·inputsPerShard), so after a crash the complete shards
 * say exactly which inputs are done, and a resumed run writes the remaining
 * shards with the same boundaries — the same bytes an uninterrupted run writes.
 * Each shard carries its own counts in its Arrow metadata, and `run.json` records
 * each shard's sha256 as it completes: a resumed run first checks every shard it
 * would keep (corpus/verify.ts) and traces again the inputs of any shard that is
 * damaged, truncated, missing, misnumbered or unrecorded, saying why.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TRACE_STATUSES, type Trace } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { encodeShard, type CorpusTrace } from './format.js';
import {
  MANIFEST_FILE,
  RUN_FILE,
  type CorpusConfig,
  type CorpusCounts,
  type CorpusErrorEntry,
  type Manifest,
  type RunRecord,
  type ShardEntry,
  type ShardMeta,
} from './manifest.js';
import { SPLITS, splitOf, type Split } from './splits.js';
import { checkCorpus, listShardFiles, sha256, shardFileName } from './verify.js';

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

export interface CorpusWriterOptions {
  /** The corpus folder (created if missing). */
  dir: string;
  config: CorpusConfig;
  /** Continue an interrupted run in `dir` (its config must match). Default false. */
  resume?: boolean;
  /** Replace an existing corpus in `dir` (its shards, manifest and run file). Default false. */
  overwrite?: boolean;
}

export { shardFileName };

function zeroCounts<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
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

export class CorpusWriter {
  /** Milliseconds spent encoding and writing shards (for throughput reports). */
  writeMs = 0;
  /** One line per shard of an interrupted run that was not kept, saying why (its inputs are traced again). */
  readonly repairs: string[] = [];
  /** Shards by number; a hole is a shard still to write. */
  private readonly shards: ({ entry: ShardEntry; meta: ShardMeta } | undefined)[] = [];
  /** Shards kept from an earlier run: their inputs are not traced again. */
  private readonly kept = new Set<number>();
  /** The shard that the pending inputs go to: the first hole. */
  private current = 0;
  private pending: InputResult[] = [];
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly config: CorpusConfig,
  ) {}

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
      writer.keepVerifiedShards();
    } else if (started && !overwrite) {
      throw new CorpusError(`${dir} already holds a corpus (use --resume to finish it, or --overwrite)`);
    } else if (started) {
      for (const f of existing) rmSync(join(dir, f));
      rmSync(manifestFile, { force: true });
    }
    writer.writeRunRecord();
    return writer;
  }

  /** Inputs kept from an earlier run (after a resume); the caller skips them (see {@link isKept}). */
  get keptInputs(): number {
    let n = 0;
    for (const k of this.kept) n += (this.shards[k] as { meta: ShardMeta }).meta.inputs;
    return n;
  }

  /** Whether input `position` (within the partition) is stored in a kept shard. */
  isKept(position: number): boolean {
    return this.kept.has(Math.floor(position / this.config.inputsPerShard));
  }

  /**
   * Resume: checks the folder against its record (run.json, or the manifest of a finished
   * corpus) and keeps each shard that is exactly what was written; every other shard file
   * is removed, with a line in {@link repairs}, and its inputs are traced again.
   */
  private keepVerifiedShards(): void {
    if (!existsSync(join(this.dir, RUN_FILE)) && !existsSync(join(this.dir, MANIFEST_FILE))) {
      throw new CorpusError(
        `cannot resume ${this.dir}: it holds shards but neither ${RUN_FILE} nor ${MANIFEST_FILE}, so they cannot be verified; start again with --overwrite`,
      );
    }
    const check = checkCorpus(this.dir);
    const mismatch = firstDifference(check.record as unknown as Record<string, unknown>, { ...this.config });
    if (mismatch !== null) {
      throw new CorpusError(`cannot resume ${this.dir}: ${mismatch} differs from the interrupted run`);
    }
    for (const s of check.shards) {
      if (s.problem === null && s.meta !== null && this.shards[s.index] === undefined) {
        this.shards[s.index] = { entry: s.entry, meta: s.meta };
        this.kept.add(s.index);
      } else {
        this.repairs.push(`${s.problem ?? `${s.entry.file} is listed twice`}; its inputs are traced again`);
        rmSync(join(this.dir, s.entry.file), { force: true });
      }
    }
    for (const f of check.unrecorded) {
      this.repairs.push(`${f} was not recorded as complete; its inputs are traced again`);
      rmSync(join(this.dir, f));
    }
    // A manifest that lists a removed shard no longer describes the folder.
    if (this.repairs.length > 0) rmSync(join(this.dir, MANIFEST_FILE), { force: true });
    this.advance();
  }

  /** Moves {@link current} to the first shard still to write. */
  private advance(): void {
    while (this.shards[this.current] !== undefined) this.current += 1;
  }

  /** Records the config and every complete shard's entry in run.json (atomically). */
  private writeRunRecord(): void {
    const record: RunRecord = { ...this.config, shards: this.shards.flatMap((s) => (s ? [s.entry] : [])) };
    writeFileAtomic(join(this.dir, RUN_FILE), `${JSON.stringify(record, null, 2)}\n`);
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
      firstInput: this.current * this.config.inputsPerShard,
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
    const file = shardFileName(this.current);
    writeFileAtomic(join(this.dir, file), bytes);
    this.shards[this.current] = { entry: { file, rows: traces.length, sha256: sha256(bytes) }, meta };
    // A kill between the rename and this record leaves an unrecorded shard, which a resume traces again.
    this.writeRunRecord();
    this.advance();
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
    const shards = this.shards.map((s, k) => {
      if (s === undefined) throw new Error(`CorpusWriter: shard ${k} was never written (inputs were skipped that no kept shard holds)`);
      return s;
    });
    for (const { meta } of shards) {
      counts.total += meta.rows;
      counts.inputs += meta.inputs;
      for (const s of TRACE_STATUSES) counts.byStatus[s] += meta.byStatus[s];
      for (const s of SPLITS) counts.bySplit[s] += meta.bySplit[s];
      counts.mutants.kept += meta.mutants.kept;
      counts.mutants.dropped += meta.mutants.dropped;
      errors.push(...meta.errors);
    }
    counts.errors = errors.length;
    const manifest: Manifest = { ...this.config, counts, shards: shards.map((s) => s.entry), errors };
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
