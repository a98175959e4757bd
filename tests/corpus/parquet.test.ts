import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import pl from 'nodejs-polars';
import { describe, expect, it } from 'vitest';
import { datasetCard, licenseOf, sizeCategory } from '../../corpus/card.js';
import type { CorpusTrace } from '../../corpus/format.js';
import { readManifest } from '../../corpus/manifest.js';
import { HUB_SPLIT, exportParquet, parquetSchema } from '../../corpus/parquet.js';
import { readCorpus } from '../../corpus/reader.js';
import { SPLITS, type Split } from '../../corpus/splits.js';
import { writeCorpus } from '../../corpus/writer.js';
import type { Value } from '../../src/schema.js';
import { randomTrace } from './fixtures.js';
import { tempDir, testConfig } from './helpers.js';

const ORIGINS = ['synthetic:easy', 'synthetic:hard', 'jsonl:progs.jsonl:3', ''];
const SPLIT_OF: Split[] = ['train', 'train', 'val', 'test'];

/** A corpus of random traces with every split, several origins and statuses. */
async function corpusOf(n: number): Promise<string> {
  const dir = tempDir();
  const traces: CorpusTrace[] = Array.from({ length: n }, (_, i) => ({
    ...randomTrace(900 + i),
    split: SPLIT_OF[i % SPLIT_OF.length]!,
    origin: ORIGINS[i % ORIGINS.length]!,
  }));
  await writeCorpus({ dir, config: testConfig({ inputsPerShard: 7 }), traces });
  return dir;
}

/** What a reader outside execwm should see for a trace: every step with its full state. */
function expectedRow(t: CorpusTrace, text?: string): Record<string, unknown> {
  const value = (v: Value | null) => (v === null ? null : { repr: v.repr, type: v.type, id: v.id ?? null });
  return {
    id: t.id,
    split: HUB_SPLIT[t.split],
    origin: t.origin,
    difficulty: t.origin.startsWith('synthetic:') ? t.origin.slice('synthetic:'.length) : null,
    status: t.status,
    message: t.message,
    source: t.source,
    entry: t.entry,
    result: value(t.result),
    stdout: t.stdout,
    steps: t.steps.map((s) => ({
      event: s.event,
      line: s.line,
      func: s.func,
      depth: s.depth,
      locals: s.locals === null ? null : Object.entries(s.locals).map(([name, v]) => ({ name, ...value(v) })),
      arg: value(s.arg),
      stdout: s.stdout,
    })),
    ...(text === undefined ? {} : { text }),
  };
}

/**
 * All rows of one Parquet file through nodejs-polars, column by column. nodejs-polars
 * cannot collect a top-level struct column holding nulls, so `result` comes field by field.
 */
function polarsRows(file: string): Record<string, unknown>[] {
  const df = pl.readParquet(file);
  const rows: Record<string, unknown>[] = Array.from({ length: df.height }, () => ({}));
  for (const col of df.columns) {
    if (col === 'result') continue;
    df.select(col)
      .toRecords()
      .forEach((r, i) => (rows[i]![col] = r[col] ?? null));
  }
  const result = df.select(...['repr', 'type', 'id'].map((f) => pl.col('result').struct.field(f).alias(f))).toRecords();
  const isNull = df.select(pl.col('result').isNull().alias('n')).getColumn('n').toArray();
  result.forEach((r, i) => (rows[i]!.result = isNull[i] ? null : { repr: r.repr, type: r.type, id: r.id ?? null }));
  return rows;
}

describe('Parquet export (Hugging Face layout)', () => {
  it('writes every trace with full states, read back by nodejs-polars exactly as readCorpus gives them', async () => {
    const corpus = await corpusOf(40);
    const out = tempDir('execwm-parquet-');
    // Tiny budgets force several batches per file and several files per split, as a large corpus would.
    const result = await exportParquet({ corpus, out, fileBytes: 6000, rowGroupBytes: 1500, text: (t) => `text of ${t.id}` });
    const files = readdirSync(join(out, 'data')).sort();
    expect(files.every((f) => /^(train|validation|test)-\d{5}-of-\d{5}\.parquet$/.test(f))).toBe(true);
    expect(result.files.length).toBe(files.length);
    for (const split of SPLITS) {
      const mine = result.files.filter((f) => f.split === split);
      expect(mine.length).toBeGreaterThan(1);
      mine.forEach((f, k) => expect(f.path).toBe(`data/${HUB_SPLIT[split]}-${String(k).padStart(5, '0')}-of-${String(mine.length).padStart(5, '0')}.parquet`));
    }
    let compared = 0;
    for (const split of SPLITS) {
      const truth: CorpusTrace[] = [];
      for await (const t of readCorpus(corpus, { split })) truth.push(t);
      const rows = result.files.filter((f) => f.split === split).flatMap((f) => polarsRows(join(out, f.path)));
      expect(rows).toEqual(truth.map((t) => expectedRow(t, `text of ${t.id}`)));
      compared += rows.length;
    }
    expect(compared).toBe(40);
  });

  it('reads back in DuckDB: counts by split and status, nulls, and one row per local', async () => {
    const corpus = await corpusOf(24);
    const out = tempDir('execwm-parquet-');
    await exportParquet({ corpus, out });
    const manifest = readManifest(corpus);
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    const glob = join(out, 'data', '*.parquet');
    const bySplit = (await con.runAndReadAll(`SELECT split, count(*)::INTEGER AS n FROM read_parquet('${glob}') GROUP BY split`)).getRowObjectsJson();
    expect(Object.fromEntries(bySplit.map((r) => [r.split, r.n]))).toEqual(
      Object.fromEntries(SPLITS.map((s) => [HUB_SPLIT[s], manifest.counts.bySplit[s]])),
    );
    let locals = 0;
    let nullResults = 0;
    for await (const t of readCorpus(corpus)) {
      locals += t.steps.reduce((n, s) => n + Object.keys(s.locals ?? {}).length, 0);
      if (t.result === null) nullResults += 1;
    }
    const counted = (
      await con.runAndReadAll(
        `SELECT count(*)::INTEGER AS n FROM (SELECT unnest(s.locals) AS l FROM (SELECT unnest(steps) AS s FROM read_parquet('${glob}')))`,
      )
    ).getRowObjectsJson();
    expect(counted[0]!.n).toBe(locals);
    const nulls = (await con.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${glob}') WHERE result IS NULL`)).getRowObjectsJson();
    expect(nulls[0]!.n).toBe(nullResults);
    // A state read in DuckDB is the reader's full state, in the frame's order.
    const first = (await readCorpus(corpus, { split: 'train', limit: 1 }).next()).value as CorpusTrace;
    const k = first.steps.findIndex((s) => s.event === 'line');
    const got = (
      await con.runAndReadAll(`SELECT steps[${k + 1}].locals AS l FROM read_parquet('${glob}') WHERE id = '${first.id}'`)
    ).getRowObjectsJson();
    expect((got[0]!.l as { name: string; repr: string }[]).map((l) => [l.name, l.repr])).toEqual(
      Object.entries(first.steps[k]!.locals!).map(([name, v]) => [name, v.repr]),
    );
    con.closeSync();
  });

  it('refuses to write over an earlier export unless told to, and leaves no temporary files', async () => {
    const corpus = await corpusOf(8);
    const out = tempDir('execwm-parquet-');
    await exportParquet({ corpus, out });
    await expect(exportParquet({ corpus, out })).rejects.toThrow(/already holds a Parquet export \(use --overwrite/);
    const again = await exportParquet({ corpus, out, overwrite: true, fileBytes: 1000 });
    expect(readdirSync(join(out, 'data')).sort()).toEqual(again.files.map((f) => f.path.slice('data/'.length)).sort());
    expect(readdirSync(join(out, 'data')).some((f) => f.endsWith('.tmp'))).toBe(false);
  });

  it('writes no file for an empty split, and the card lists only the splits there are', async () => {
    const dir = tempDir();
    const traces = Array.from({ length: 5 }, (_, i): CorpusTrace => ({ ...randomTrace(700 + i), split: 'test', origin: 'synthetic:easy' }));
    await writeCorpus({ dir, config: testConfig(), traces });
    const out = tempDir('execwm-parquet-');
    const exported = await exportParquet({ corpus: dir, out });
    expect(readdirSync(join(out, 'data'))).toEqual(['test-00000-of-00001.parquet']);
    expect(pl.readParquet(join(out, 'data', 'test-00000-of-00001.parquet')).getColumn('difficulty').toArray()).toEqual(Array(5).fill('easy'));
    const card = datasetCard({ exported, schema: parquetSchema(false) });
    expect(card).toContain('  - split: test\n');
    expect(card).not.toContain('split: train');
    expect(card).toContain('"test": "data/test-*.parquet"');
  });
});

describe('dataset card', () => {
  it('has front matter with data files per split, the features of the Parquet schema and counts from the manifest', async () => {
    const corpus = await corpusOf(12);
    const out = tempDir('execwm-parquet-');
    const exported = await exportParquet({ corpus, out });
    const card = datasetCard({ exported, schema: parquetSchema(true), textEncoding: 'the CWM text' });
    const [, front, body] = card.split(/^---$/m);
    expect(front).toContain('license: other'); // imported programs: the corpus does not know their license
    for (const s of SPLITS) {
      expect(front).toContain(`  - split: ${HUB_SPLIT[s]}\n    path: data/${HUB_SPLIT[s]}-*.parquet`);
      expect(front).toContain(`  - name: ${HUB_SPLIT[s]}\n    num_bytes: `);
      expect(front).toMatch(new RegExp(`name: ${HUB_SPLIT[s]}\\n    num_bytes: \\d+\\n    num_examples: ${exported.rowsBySplit[s]}\\n`));
    }
    // Every column and nested field of the schema is a feature, nested where the schema nests.
    expect(front).toContain('  - name: steps\n    list:\n    - name: event\n      dtype: string');
    expect(front).toContain('    - name: locals\n      list:\n      - name: name\n        dtype: string');
    expect(front).toContain('  - name: result\n    struct:\n    - name: repr');
    expect(front).toContain('  - name: text\n    dtype: string');
    for (const f of parquetSchema(true).fields) expect(front).toContain(`  - name: ${f.name}\n`);
    expect(front).toContain(`- "${sizeCategory(12)}"`);
    expect(body).toContain('| `ok` |');
    expect(body).toContain('load_dataset("parquet"');
    expect(body).toContain('pd.read_parquet');
    expect(body).toContain('pl.read_parquet');
    expect(body).toContain('read_parquet(');
    expect(sizeCategory(999)).toBe('n<1K');
    expect(sizeCategory(1000)).toBe('1K<n<10K');
    expect(sizeCategory(250_000_000)).toBe('100M<n<1B');
  });

  it('runs as written: the DuckDB queries of the card work on the export', async () => {
    const corpus = await corpusOf(12);
    const out = tempDir('execwm-parquet-');
    const exported = await exportParquet({ corpus, out });
    const card = datasetCard({ exported, schema: parquetSchema(false) });
    const sql = /```sql\n([\s\S]*?)```/.exec(card)![1]!.replace(/^--.*\n/gm, '');
    const db = await DuckDBInstance.create(':memory:');
    const con = await db.connect();
    const queries = sql.split(';').map((q) => q.trim()).filter((q) => q !== '');
    expect(queries.length).toBe(2);
    for (const q of queries) {
      // Paths in the card are relative to the export folder.
      const rows = (await con.runAndReadAll(q.replaceAll("'data/", `'${out}/data/`))).getRowObjectsJson();
      expect(rows.length).toBeGreaterThan(0);
    }
    con.closeSync();
  });

  it('states MIT for synthetic programs and the license given at export otherwise', () => {
    const synthetic = { ...readManifestLike(), source: { kind: 'synthetic' as const, count: 10, preset: 'easy' } };
    expect(licenseOf(synthetic).id).toBe('mit');
    expect(licenseOf({ ...synthetic, source: { kind: 'jsonl' as const, path: 'x.jsonl' } }).id).toBe('other');
  });
});

/** A manifest with the fields licenseOf looks at. */
function readManifestLike(): Parameters<typeof licenseOf>[0] {
  return {
    ...testConfig(),
    counts: { total: 0, byStatus: {} as never, bySplit: { train: 0, val: 0, test: 0 }, inputs: 0, errors: 0, mutants: { kept: 0, dropped: 0 } },
    shards: [],
    errors: [],
  };
}
