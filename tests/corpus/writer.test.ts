import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorpusError } from '../../corpus/errors.js';
import { TRACE_STATUSES } from '../../src/schema.js';
import { readManifest } from '../../corpus/manifest.js';
import { readCorpus } from '../../corpus/reader.js';
import { splitOf } from '../../corpus/splits.js';
import { CorpusWriter, writeCorpus } from '../../corpus/writer.js';
import { incrementTrace, randomTrace } from './fixtures.js';
import { tempDir, testConfig } from './helpers.js';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('corpus writer and reader', () => {
  it('writes whole shards plus a manifest whose counts and hashes match', async () => {
    const dir = tempDir();
    const traces = Array.from({ length: 10 }, (_, i) => randomTrace(i));
    const manifest = await writeCorpus({ dir, config: testConfig({ inputsPerShard: 4 }), traces });
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'part-00000.arrow', 'part-00001.arrow', 'part-00002.arrow']);
    expect(manifest.shards.map((s) => s.rows)).toEqual([4, 4, 2]);
    expect(manifest.counts.total).toBe(10);
    expect(manifest.counts.inputs).toBe(10);
    const byStatus: Record<string, number> = {};
    for (const t of traces) byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
    expect(Object.keys(manifest.counts.byStatus).sort()).toEqual([...TRACE_STATUSES].sort());
    expect(Object.keys(byStatus).length).toBeGreaterThan(1); // the fixtures mix statuses
    for (const [s, n] of Object.entries(manifest.counts.byStatus)) expect(n).toBe(byStatus[s] ?? 0);
    expect(Object.values(manifest.counts.bySplit).reduce((a, b) => a + b, 0)).toBe(10);
    expect(readManifest(dir)).toEqual(manifest);
    expect(JSON.stringify(manifest)).not.toMatch(/createdAt|"date"|"time"/i);

    const back = await collect(readCorpus(dir));
    expect(back.map((t) => t.id)).toEqual(traces.map((t) => t.id));
    back.forEach((b, i) => {
      expect(JSON.stringify(b.steps)).toBe(JSON.stringify(traces[i].steps));
      expect(b.split).toBe(splitOf(traces[i].source));
    });
  });

  it('filters by split and status and stops at the limit', async () => {
    const dir = tempDir();
    const w = CorpusWriter.open({ dir, config: testConfig() });
    w.add({ ...incrementTrace('a') }, { split: 'train', origin: 'x' });
    w.add({ ...incrementTrace('b'), status: 'exception' }, { split: 'test' });
    w.add({ ...incrementTrace('c') }, { split: 'test' });
    w.add({ ...incrementTrace('d') }, { split: 'test' });
    w.close();
    expect((await collect(readCorpus(dir, { split: 'test' }))).map((t) => t.id)).toEqual(['b', 'c', 'd']);
    expect((await collect(readCorpus(dir, { statuses: ['exception'] }))).map((t) => t.id)).toEqual(['b']);
    expect((await collect(readCorpus(dir, { split: 'test', statuses: ['ok'], limit: 1 }))).map((t) => t.id)).toEqual(['c']);
    expect((await collect(readCorpus(dir, { limit: 0 }))).length).toBe(0);
    expect((await collect(readCorpus(dir)))[0].origin).toBe('x');
  });

  it('records bad inputs in the errors table without rows', () => {
    const dir = tempDir();
    const w = CorpusWriter.open({ dir, config: testConfig({ inputsPerShard: 2 }) });
    w.add(incrementTrace('a'));
    w.addInput({ traces: [], errors: [{ input: 1, origin: 'jsonl:p.jsonl:2', reason: 'malformed JSON' }] });
    w.add(incrementTrace('c'));
    const m = w.close();
    expect(m.counts).toMatchObject({ total: 2, inputs: 3, errors: 1 });
    expect(m.errors).toEqual([{ input: 1, origin: 'jsonl:p.jsonl:2', reason: 'malformed JSON' }]);
  });

  it('refuses an existing corpus unless asked to resume or overwrite', async () => {
    const dir = tempDir();
    await writeCorpus({ dir, config: testConfig(), traces: [incrementTrace()] });
    expect(() => CorpusWriter.open({ dir, config: testConfig() })).toThrow(CorpusError);
    const w = CorpusWriter.open({ dir, config: testConfig(), overwrite: true });
    w.add(incrementTrace('other'));
    w.close();
    expect((await collect(readCorpus(dir))).map((t) => t.id)).toEqual(['other']);
  });

  it('resumes after the last complete shard with the same shard bytes, and rejects another config', () => {
    const traces = Array.from({ length: 9 }, (_, i) => randomTrace(100 + i));
    const full = tempDir();
    const w1 = CorpusWriter.open({ dir: full, config: testConfig() });
    for (const t of traces) w1.add(t);
    const m1 = w1.close();

    // An interrupted run: two shards written, a half-written temp file, no manifest.
    const cut = tempDir();
    const w2 = CorpusWriter.open({ dir: cut, config: testConfig() });
    for (const t of traces.slice(0, 9 - 1)) w2.add(t);
    writeFileSync(join(cut, 'part-00002.arrow.tmp'), 'partial');
    expect(existsSync(join(cut, 'manifest.json'))).toBe(false);

    expect(() => CorpusWriter.open({ dir: cut, config: testConfig({ seeds: { synthetic: 2 } }), resume: true })).toThrow(
      /seeds/,
    );
    const w3 = CorpusWriter.open({ dir: cut, config: testConfig(), resume: true });
    expect(w3.keptInputs).toBe(8);
    for (const t of traces.slice(w3.keptInputs)) w3.add(t);
    const m3 = w3.close();
    expect(m3).toEqual(m1);
    expect(readdirSync(cut).sort()).toEqual(readdirSync(full).sort());
    for (const s of m1.shards) expect(readFileSync(join(cut, s.file)).equals(readFileSync(join(full, s.file)))).toBe(true);
  });

  it('reports a missing, corrupt or tampered corpus as a CorpusError', async () => {
    const dir = tempDir();
    expect(() => readManifest(join(dir, 'nope'))).toThrow(/does not exist/);
    expect(() => readManifest(dir)).toThrow(/manifest.json is missing/);
    writeFileSync(join(dir, 'manifest.json'), '{"shards": [');
    expect(() => readManifest(dir)).toThrow(CorpusError);
    await writeCorpus({ dir, config: testConfig(), traces: [incrementTrace()], overwrite: true });
    const manifest = readManifest(dir);
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, counts: { ...manifest.counts, total: '1' } }));
    expect(() => readManifest(dir)).toThrow(/^corrupt manifest \S+: counts\.total: Invalid type: Expected number but received "1"$/);
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    const shard = join(dir, 'part-00000.arrow');
    const bytes = readFileSync(shard);
    bytes[bytes.length - 100] ^= 1;
    writeFileSync(shard, bytes);
    await expect(collect(readCorpus(dir))).rejects.toThrow(/sha256/);
  });
});
