import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCorpus, type TraceRunner } from '../../corpus/build.js';
import { readCorpus } from '../../corpus/reader.js';
import type { InputItem } from '../../corpus/sources.js';
import { splitOf } from '../../corpus/splits.js';
import type { Program, Trace } from '../../src/schema.js';
import { v } from './fixtures.js';
import { tempDir, testConfig } from './helpers.js';

/** A stand-in for the tracer pool: `boom` in the source makes an exception trace. */
const fakeTracer: TraceRunner = {
  async *traceAll(programs: Iterable<Program> | AsyncIterable<Program>): AsyncGenerator<Trace> {
    for await (const p of programs) {
      const failed = p.source.includes('boom');
      yield {
        id: p.id,
        source: p.source,
        entry: p.entry,
        status: failed ? 'exception' : 'ok',
        message: failed ? 'ValueError: boom' : null,
        result: failed ? null : v('1'),
        stdout: '',
        steps: [{ event: 'line', line: 1, func: '<module>', depth: 0, locals: { n: v(p.id, 'str') }, arg: null, stdout: '' }],
      };
    }
  },
};

const inputs = (n: number): InputItem[] =>
  Array.from({ length: n }, (_, i): InputItem =>
    i % 5 === 4 ? { error: { origin: `jsonl:p:${i + 1}`, reason: 'malformed JSON' } } : { program: { id: `p${i}`, source: `x = ${i}\n`, entry: null, origin: 'test' } },
  );

async function ids(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const t of readCorpus(dir)) out.push(t.id);
  return out;
}

describe('buildCorpus', () => {
  it('keeps mutants that trace ok, in their parent split, and records errors and drops', async () => {
    const dir = tempDir();
    const mutate = (p: Program): Program[] => [
      { id: `${p.id}~m0`, source: `${p.source}y = 1\n`, entry: null, origin: `mutation:of=${p.id}` },
      { id: `${p.id}~m1`, source: `${p.source}boom\n`, entry: null, origin: `mutation:of=${p.id}` },
    ];
    const { manifest } = await buildCorpus({ dir, config: testConfig({ mutate: 2 }), inputs: inputs(10), tracer: fakeTracer, mutate });
    expect(await ids(dir)).toEqual(['p0', 'p0~m0', 'p1', 'p1~m0', 'p2', 'p2~m0', 'p3', 'p3~m0', 'p5', 'p5~m0', 'p6', 'p6~m0', 'p7', 'p7~m0', 'p8', 'p8~m0']);
    expect(manifest.counts).toMatchObject({ total: 16, inputs: 10, errors: 2, mutants: { kept: 8, dropped: 8 } });
    expect(manifest.errors.map((e) => e.input)).toEqual([4, 9]);
    for await (const t of readCorpus(dir)) {
      if (t.id.includes('~')) expect(t.split).toBe(splitOf(`x = ${t.id.slice(1, t.id.indexOf('~'))}\n`));
    }
  });

  it('drops a mutant that behaves exactly like its parent on its input', async () => {
    const dir = tempDir();
    // The fake tracer's only value is the program id; a mutant reusing it behaves like the parent.
    const sameAsParent: TraceRunner = {
      async *traceAll(programs) {
        for await (const t of fakeTracer.traceAll(programs)) {
          const parent = t.id.split('~')[0]!;
          yield { ...t, steps: t.steps.map((s) => ({ ...s, locals: { n: v(t.id.endsWith('~same') ? parent : t.id, 'str') } })) };
        }
      },
    };
    const mutate = (p: Program): Program[] => [
      { id: `${p.id}~same`, source: `${p.source}if False:\n    x = 2\n`, entry: null, origin: `mutation:of=${p.id}` },
      { id: `${p.id}~diff`, source: `${p.source}x = 3\n`, entry: null, origin: `mutation:of=${p.id}` },
    ];
    const { manifest } = await buildCorpus({ dir, config: testConfig({ mutate: 2 }), inputs: inputs(2), tracer: sameAsParent, mutate });
    expect(await ids(dir)).toEqual(['p0', 'p0~diff', 'p1', 'p1~diff']);
    expect(manifest.counts.mutants).toEqual({ kept: 2, dropped: 2 });
  });

  it('does not trace a mutant equal to an input program or to an earlier mutant', async () => {
    const dir = tempDir();
    // Every program mutates into p1 (an input) and into one shared variant.
    const mutate = (): Program[] => [
      { id: 'p1', source: 'x = 1\n', entry: null },
      { id: 'shared', source: 'x = -1\n', entry: null, origin: 'mutation:of=?' },
    ];
    const { manifest } = await buildCorpus({ dir, config: testConfig({ mutate: 2 }), inputs: inputs(4), tracer: fakeTracer, mutate });
    expect(await ids(dir)).toEqual(['p0', 'shared', 'p1', 'p2', 'p3']);
    expect(manifest.counts.mutants).toEqual({ kept: 1, dropped: 0 });
  });

  it('partitions inputs by position so the parts are disjoint and cover everything', async () => {
    const parts = await Promise.all(
      [0, 1, 2].map(async (index) => {
        const dir = tempDir();
        const { manifest } = await buildCorpus({ dir, config: testConfig({ partition: { index, count: 3 } }), inputs: inputs(20), tracer: fakeTracer });
        return { ids: await ids(dir), errors: manifest.errors.map((e) => e.input) };
      }),
    );
    const all = parts.flatMap((p) => p.ids).sort();
    expect(all).toEqual(inputs(20).flatMap((i) => ('program' in i ? [i.program.id] : [])).sort());
    expect(parts.flatMap((p) => p.errors).sort((a, b) => a - b)).toEqual([4, 9, 14, 19]);
  });

  it('resumes an interrupted build without tracing finished inputs again', async () => {
    const full = tempDir();
    const whole = await buildCorpus({ dir: full, config: testConfig(), inputs: inputs(11), tracer: fakeTracer });

    const cut = tempDir();
    // A crash while tracing the tenth input: shards 0 and 1 (inputs 0-7) are complete.
    const crashing: TraceRunner = {
      async *traceAll(programs) {
        let n = 0;
        for await (const t of fakeTracer.traceAll(programs)) {
          if (++n === 8) throw new Error('killed');
          yield t;
        }
      },
    };
    await expect(buildCorpus({ dir: cut, config: testConfig(), inputs: inputs(11), tracer: crashing })).rejects.toThrow('killed');
    const traced: string[] = [];
    const counting: TraceRunner = {
      async *traceAll(programs) {
        const seen: Program[] = [];
        for await (const p of programs) seen.push(p);
        traced.push(...seen.map((p) => p.id));
        yield* fakeTracer.traceAll(seen);
      },
    };
    const resumed = await buildCorpus({ dir: cut, config: testConfig(), inputs: inputs(11), tracer: counting, resume: true });
    expect(resumed.resumedInputs).toBe(8);
    expect(traced).toEqual(['p8', 'p10']);
    expect(resumed.manifest).toEqual(whole.manifest);
    for (const s of whole.manifest.shards) expect(readFileSync(join(cut, s.file)).equals(readFileSync(join(full, s.file)))).toBe(true);
  });
});
