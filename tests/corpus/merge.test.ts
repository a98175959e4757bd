import { describe, expect, it } from 'vitest';
import { buildCorpus, type TraceRunner } from '../../corpus/build.js';
import { CorpusError } from '../../corpus/errors.js';
import { mergeCorpora } from '../../corpus/merge.js';
import { readCorpus } from '../../corpus/reader.js';
import type { InputItem } from '../../corpus/sources.js';
import { incrementTrace } from './fixtures.js';
import { tempDir, testConfig } from './helpers.js';

const tracer: TraceRunner = {
  async *traceAll(programs) {
    for await (const p of programs) yield { ...incrementTrace(p.id), source: p.source };
  },
};
const inputs: InputItem[] = Array.from({ length: 13 }, (_, i): InputItem =>
  i === 6 ? { error: { origin: 'jsonl:p:7', reason: 'malformed JSON' } } : { program: { id: `p${i}`, source: `x = ${i}\n`, entry: null } },
);

async function part(index: number, count: number, config = testConfig()): Promise<string> {
  const dir = tempDir();
  await buildCorpus({ dir, config: { ...config, partition: { index, count } }, inputs, tracer });
  return dir;
}

describe('corpus merge', () => {
  it('joins partitions into one corpus with every input once and summed counts', async () => {
    const parts = [await part(0, 3), await part(1, 3), await part(2, 3)];
    const out = tempDir();
    const m = mergeCorpora({ out, parts });
    expect(m.counts).toMatchObject({ total: 12, inputs: 13, errors: 1 });
    expect(m.errors).toEqual([{ input: 6, origin: 'jsonl:p:7', reason: 'malformed JSON' }]);
    expect(m.partition).toBeNull();
    expect(m.mergedPartitions).toEqual([0, 1, 2].map((index) => ({ index, count: 3 })));
    const ids: string[] = [];
    for await (const t of readCorpus(out)) ids.push(t.id);
    expect(ids.sort()).toEqual(Array.from({ length: 13 }, (_, i) => `p${i}`).filter((id) => id !== 'p6').sort());
  });

  it('refuses parts from different commands, repeated partitions and whole corpora', async () => {
    const a = await part(0, 2);
    const b = await part(1, 2, testConfig({ seeds: { synthetic: 9 } }));
    expect(() => mergeCorpora({ out: tempDir(), parts: [a, b] })).toThrow(/other settings/);
    expect(() => mergeCorpora({ out: tempDir(), parts: [a, a] })).toThrow(/given twice/);
    const whole = tempDir();
    await buildCorpus({ dir: whole, config: testConfig(), inputs, tracer });
    expect(() => mergeCorpora({ out: tempDir(), parts: [whole] })).toThrow(CorpusError);
  });
});
