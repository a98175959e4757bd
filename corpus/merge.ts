/**
 * Joins corpora built as disjoint partitions (`--shard i/N`) into one: shards
 * copied and renumbered in partition order, counts summed, errors joined.
 * The parts must come from the same command (same config apart from the
 * partition), every partition 0…N−1 must be there exactly once (unless
 * `allowPartial`, and then the manifest names the missing ones), each shard must
 * match its manifest entry, and no trace id may appear twice.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { TRACE_STATUSES } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { MANIFEST_FILE, readManifest, type CorpusConfig, type Manifest } from './manifest.js';
import { readShardBytes } from './reader.js';
import { SPLITS } from './splits.js';
import { shardFileName, writeFileAtomic } from './writer.js';

export interface MergeOptions {
  /** The new corpus folder (must be empty or missing unless `overwrite`). */
  out: string;
  /** Corpus folders of the parts. */
  parts: string[];
  /** Replace an existing corpus at `out`. Default false. */
  overwrite?: boolean;
  /** Merge even when partitions are missing (recorded in `missingPartitions`). Default false. */
  allowPartial?: boolean;
}

/** Config fields that must agree between parts. */
function sharedConfig(m: Manifest): Omit<CorpusConfig, 'partition'> {
  const { counts: _c, shards: _s, errors: _e, partition: _p, mergedPartitions: _m, missingPartitions: _x, ...config } = m;
  return config;
}

export function mergeCorpora(options: MergeOptions): Manifest {
  const { out, parts, overwrite = false, allowPartial = false } = options;
  if (parts.length === 0) throw new CorpusError('corpus merge needs at least one part');
  const sameFolder = parts.findIndex((p, i) => parts.findIndex((q) => resolve(q) === resolve(p)) !== i);
  if (sameFolder >= 0) throw new CorpusError(`${parts[sameFolder]} is given twice`);
  const manifests = parts.map((dir) => readManifest(dir));
  const reference = JSON.stringify(sharedConfig(manifests[0]));
  manifests.forEach((m, i) => {
    if (JSON.stringify(sharedConfig(m)) !== reference) {
      throw new CorpusError(`${parts[i]} was built with other settings than ${parts[0]}; only partitions of one command merge`);
    }
  });
  manifests.forEach((m, i) => {
    if (m.partition === null && m.mergedPartitions === undefined) {
      throw new CorpusError(`${parts[i]} is a whole corpus, not a partition (built without --shard i/N)`);
    }
  });
  const partitions = manifests.flatMap((m) => (m.partition ? [m.partition] : (m.mergedPartitions ?? [])));
  const counts = new Set(partitions.map((p) => p.count));
  if (counts.size > 1) throw new CorpusError(`the parts split the input in different ways (${[...counts].join(' vs ')} partitions)`);
  const seenPartitions = new Set<number>();
  for (const p of partitions) {
    if (seenPartitions.has(p.index)) throw new CorpusError(`partition ${p.index}/${p.count} is given twice`);
    seenPartitions.add(p.index);
  }
  const count = partitions[0].count;
  const missing = Array.from({ length: count }, (_, index) => ({ index, count })).filter((p) => !seenPartitions.has(p.index));
  if (missing.length > 0 && !allowPartial) {
    const many = missing.length > 1;
    throw new CorpusError(
      `partition${many ? 's' : ''} ${missing.map((p) => `${p.index}/${p.count}`).join(', ')} ${many ? 'are' : 'is'} missing: ` +
        `${many ? 'their' : 'its'} inputs would be lost (trace ${many ? 'them' : 'it'} and merge again, or give --allow-partial)`,
    );
  }

  if (existsSync(out) && readdirSync(out).length > 0) {
    if (!overwrite) throw new CorpusError(`${out} is not empty (use --overwrite to replace it)`);
    for (const f of readdirSync(out)) if (/^part-\d{5}\.arrow$|^manifest\.json$|^run\.json$/.test(f)) rmSync(join(out, f));
  }
  mkdirSync(out, { recursive: true });

  const { missingPartitions: _missingBefore, ...first } = manifests[0];
  const merged: Manifest = {
    ...first,
    partition: null,
    counts: {
      total: 0,
      byStatus: Object.fromEntries(TRACE_STATUSES.map((s) => [s, 0])) as Manifest['counts']['byStatus'],
      bySplit: Object.fromEntries(SPLITS.map((s) => [s, 0])) as Manifest['counts']['bySplit'],
      inputs: 0,
      errors: 0,
      mutants: { kept: 0, dropped: 0 },
    },
    shards: [],
    errors: [],
    mergedPartitions: [...partitions].sort((a, b) => a.index - b.index),
  };
  if (missing.length > 0) merged.missingPartitions = missing;
  const ids = new Set<string>();
  manifests.forEach((m, i) => {
    for (const shard of m.shards) {
      const bytes = readShardBytes(parts[i], shard);
      const table = tableFromIPC(bytes);
      if (table.numRows !== shard.rows) {
        throw new CorpusError(`corpus ${parts[i]}: ${shard.file} holds ${table.numRows} rows, the manifest says ${shard.rows}`);
      }
      const idColumn = table.getChild('id');
      for (const id of idColumn?.toArray() ?? []) {
        if (ids.has(id as string)) throw new CorpusError(`trace id "${String(id)}" appears in two parts (${parts[i]})`);
        ids.add(id as string);
      }
      const file = shardFileName(merged.shards.length);
      copyFileSync(join(parts[i], shard.file), join(out, `${file}.tmp`));
      renameSync(join(out, `${file}.tmp`), join(out, file));
      merged.shards.push({ ...shard, file });
    }
    const c = merged.counts;
    c.total += m.counts.total;
    c.inputs += m.counts.inputs;
    c.errors += m.counts.errors;
    c.mutants.kept += m.counts.mutants.kept;
    c.mutants.dropped += m.counts.mutants.dropped;
    for (const s of TRACE_STATUSES) c.byStatus[s] += m.counts.byStatus[s];
    for (const s of SPLITS) c.bySplit[s] += m.counts.bySplit[s];
    merged.errors.push(...m.errors);
  });
  merged.errors.sort((a, b) => a.input - b.input);
  writeFileAtomic(join(out, MANIFEST_FILE), `${JSON.stringify(merged, null, 2)}\n`);
  return merged;
}
