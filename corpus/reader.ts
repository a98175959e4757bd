/**
 * Streaming reader: one shard in memory at a time, traces in manifest order with
 * their full per-step locals reconstructed from the stored deltas. Whatever is wrong
 * with a shard (hash, row count, undecodable bytes) is a {@link CorpusError} naming
 * the corpus, the shard and, for a bad row, the row.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TraceStatus } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { decodeShard, type CorpusTrace } from './format.js';
import { readManifest } from './manifest.js';
import type { Split } from './splits.js';

export interface ReadCorpusOptions {
  /** Only traces of this split. Default: all. */
  split?: Split;
  /** Only traces with one of these statuses. Default: all. */
  statuses?: TraceStatus[];
  /** Stop after this many traces (after filtering). Default: no limit. */
  limit?: number;
  /** Check each shard's sha256 against the manifest before decoding it. Default true. */
  verify?: boolean;
}

/** Reads one shard file, checking it against the manifest entry. */
export function readShardBytes(dir: string, shard: { file: string; sha256: string }, verify = true): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, shard.file));
  } catch (err) {
    throw new CorpusError(`corpus ${dir}: cannot read ${shard.file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (verify && createHash('sha256').update(bytes).digest('hex') !== shard.sha256) {
    throw new CorpusError(`corpus ${dir}: ${shard.file} does not match its sha256 in the manifest (corrupt or modified)`);
  }
  return bytes;
}

export async function* readCorpus(dir: string, options: ReadCorpusOptions = {}): AsyncGenerator<CorpusTrace> {
  const { split, statuses, limit = Infinity, verify = true } = options;
  const manifest = readManifest(dir);
  const wanted = statuses ? new Set<TraceStatus>(statuses) : null;
  let count = 0;
  if (count >= limit) return;
  const keep = (s: Split, st: TraceStatus) => (split === undefined || s === split) && (wanted === null || wanted.has(st));
  for (const shard of manifest.shards) {
    const bytes = readShardBytes(dir, shard, verify);
    for (const trace of decodeShard(bytes, { keep, label: `corpus ${dir}: ${shard.file}`, expectedRows: shard.rows })) {
      yield trace;
      if (++count >= limit) return;
    }
  }
}
