import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pl from 'nodejs-polars';
import { describe, expect, it } from 'vitest';
import { writeCorpus } from '../../corpus/writer.js';
import { randomTrace } from './fixtures.js';
import { tempDir, testConfig } from './helpers.js';

describe('an independent Arrow reader (nodejs-polars)', () => {
  it('reads every shard: row counts, nested step fields and dictionary strings match', async () => {
    const dir = tempDir();
    const traces = Array.from({ length: 25 }, (_, i) => randomTrace(500 + i));
    const manifest = await writeCorpus({ dir, config: testConfig({ inputsPerShard: 10 }), traces });
    let row = 0;
    for (const shard of manifest.shards) {
      // nodejs-polars takes a string not ending in .ipc for inline data, so pass the bytes.
      const df = pl.readIPC(readFileSync(join(dir, shard.file)));
      expect(df.height).toBe(shard.rows);
      const ids = df.getColumn('id').toArray();
      const stepCounts = df.select(pl.col('steps').lst.lengths().alias('n')).getColumn('n').toArray();
      const firstEvents = df
        .select(pl.col('steps').lst.first().struct.field('event').cast(pl.Utf8).alias('e'))
        .getColumn('e')
        .toArray();
      const statuses = df.getColumn('status').cast(pl.Utf8).toArray();
      for (let i = 0; i < shard.rows; i++, row++) {
        const t = traces[row];
        expect(ids[i]).toBe(t.id);
        expect(Number(stepCounts[i])).toBe(t.steps.length);
        expect(firstEvents[i]).toBe(t.steps[0]?.event ?? null);
        expect(statuses[i]).toBe(t.status);
      }
    }
    expect(row).toBe(25);
  });
});
