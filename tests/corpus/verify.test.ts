/**
 * Corpus integrity: `checkCorpus` (what `execwm corpus verify` and `--resume` run),
 * resume keeping only shards that are still what was written, the reader naming the
 * shard and row of any corruption, and merge refusing missing partitions.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tableFromIPC, type Data, type Struct } from 'apache-arrow';
import { describe, expect, it, vi } from 'vitest';
import { buildCorpus, type BuildResult, type TraceRunner } from '../../corpus/build.js';
import { CorpusError } from '../../corpus/errors.js';
import { MANIFEST_FILE, RUN_FILE, readManifest, type Manifest } from '../../corpus/manifest.js';
import { mergeCorpora } from '../../corpus/merge.js';
import { readCorpus } from '../../corpus/reader.js';
import type { InputItem } from '../../corpus/sources.js';
import { checkCorpus } from '../../corpus/verify.js';
import { writeCorpus } from '../../corpus/writer.js';
import { main } from '../../src/cli.js';
import type { Program } from '../../src/schema.js';
import { incrementTrace, randomTrace } from './fixtures.js';
import { tempDir, testConfig } from './helpers.js';

/** Traces each program as a random trace seeded by its number, and records what it traced. */
function recordingTracer(traced: string[] = []): TraceRunner {
  return {
    async *traceAll(programs) {
      for await (const p of programs) {
        traced.push(p.id);
        yield { ...randomTrace(Number(p.id.slice(1)), p.id), source: p.source, entry: p.entry };
      }
    },
  };
}

/** Stops (like a kill) when it is asked for its `n`-th program. */
function crashingTracer(n: number): TraceRunner {
  return {
    async *traceAll(programs) {
      let k = 0;
      for await (const t of recordingTracer().traceAll(programs)) {
        if (++k === n) throw new Error('killed');
        yield t;
      }
    },
  };
}

const INPUTS: InputItem[] = Array.from({ length: 14 }, (_, i): InputItem => ({
  program: { id: `p${i}`, source: `x = ${i}\n`, entry: null } satisfies Program,
}));

/** A complete corpus and an interrupted run of the same build (shards 0-2 complete, 4 inputs each). */
async function wholeAndCut(): Promise<{ whole: Manifest; wholeDir: string; cut: string }> {
  const wholeDir = tempDir();
  const { manifest: whole } = await buildCorpus({ dir: wholeDir, config: testConfig(), inputs: INPUTS, tracer: recordingTracer() });
  const cut = tempDir();
  await expect(buildCorpus({ dir: cut, config: testConfig(), inputs: INPUTS, tracer: crashingTracer(14) })).rejects.toThrow('killed');
  expect(readdirSync(cut).filter((f) => f.endsWith('.arrow')).sort()).toEqual(['part-00000.arrow', 'part-00001.arrow', 'part-00002.arrow']);
  return { whole, wholeDir, cut };
}

async function resume(dir: string): Promise<BuildResult & { traced: string[] }> {
  const traced: string[] = [];
  const result = await buildCorpus({ dir, config: testConfig(), inputs: INPUTS, tracer: recordingTracer(traced), resume: true });
  return { ...result, traced };
}

function flipByte(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at] ^= 0xff;
  writeFileSync(file, bytes);
}

function expectSameCorpus(dir: string, wholeDir: string, whole: Manifest): void {
  expect(readManifest(dir)).toEqual(whole);
  for (const s of whole.shards) expect(readFileSync(join(dir, s.file)).equals(readFileSync(join(wholeDir, s.file)))).toBe(true);
  expect(readdirSync(dir).sort()).toEqual(readdirSync(wholeDir).sort());
  expect(checkCorpus(dir).problems).toEqual([]);
}

/** The inputs of a full shard (the last one, part-00003, holds only p12 and p13). */
const inputsOf = (shard: number) => [0, 1, 2, 3].map((i) => `p${shard * 4 + i}`);

describe('resume keeps only shards that are what was written', () => {
  it('records each completed shard with its sha256 in run.json', async () => {
    const { cut } = await wholeAndCut();
    const record = JSON.parse(readFileSync(join(cut, RUN_FILE), 'utf8')) as { shards: { file: string; sha256: string }[] };
    expect(record.shards.map((s) => s.file)).toEqual(['part-00000.arrow', 'part-00001.arrow', 'part-00002.arrow']);
    for (const s of record.shards) {
      expect(s.sha256).toBe(createHash('sha256').update(readFileSync(join(cut, s.file))).digest('hex'));
    }
    expect(checkCorpus(cut)).toMatchObject({ state: 'interrupted', problems: [] });
  });

  it('traces again the inputs of a damaged shard and ends with the uninterrupted corpus', async () => {
    const { whole, wholeDir, cut } = await wholeAndCut();
    const shard = join(cut, 'part-00001.arrow');
    flipByte(shard, Math.floor(readFileSync(shard).length / 2));
    expect(checkCorpus(cut).problems).toEqual([expect.stringMatching(/^part-00001\.arrow does not match the sha256 recorded/)]);
    const r = await resume(cut);
    expect(r.repairs).toEqual([expect.stringMatching(/^part-00001\.arrow does not match the sha256 .*; its inputs are traced again$/)]);
    expect(r.traced).toEqual([...inputsOf(1), 'p12', 'p13']);
    expect(r.resumedInputs).toBe(8);
    expectSameCorpus(cut, wholeDir, whole);
  });

  it('traces again a truncated, a missing and an unrecorded shard', async () => {
    const { whole, wholeDir, cut } = await wholeAndCut();
    truncateSync(join(cut, 'part-00000.arrow'), 100);
    rmSync(join(cut, 'part-00002.arrow'));
    // A shard renamed into place just before the kill, after its run.json entry was due.
    writeFileSync(join(cut, 'part-00003.arrow'), readFileSync(join(wholeDir, 'part-00003.arrow')));
    const problems = checkCorpus(cut).problems;
    expect(problems).toEqual([
      expect.stringMatching(/^part-00000\.arrow does not match .*100 bytes/),
      'part-00002.arrow is missing',
      expect.stringMatching(/^part-00003\.arrow is not listed in run\.json/),
    ]);
    const r = await resume(cut);
    expect(r.repairs).toHaveLength(3);
    expect(r.traced).toEqual([...inputsOf(0), ...inputsOf(2), 'p12', 'p13']);
    expectSameCorpus(cut, wholeDir, whole);
  });

  it('traces again shards that were swapped (each is the wrong shard for its number)', async () => {
    const { whole, wholeDir, cut } = await wholeAndCut();
    renameSync(join(cut, 'part-00000.arrow'), join(cut, 'swap'));
    renameSync(join(cut, 'part-00001.arrow'), join(cut, 'part-00000.arrow'));
    renameSync(join(cut, 'swap'), join(cut, 'part-00001.arrow'));
    const r = await resume(cut);
    expect(r.repairs.map((l) => l.slice(0, 16))).toEqual(['part-00000.arrow', 'part-00001.arrow']);
    expect(r.traced.slice(0, 8)).toEqual([...inputsOf(0), ...inputsOf(1)]);
    expectSameCorpus(cut, wholeDir, whole);
  });

  it('repairs a damaged shard of a finished corpus', async () => {
    const { whole, wholeDir } = await wholeAndCut();
    flipByte(join(wholeDir, 'part-00003.arrow'), 700);
    expect(checkCorpus(wholeDir)).toMatchObject({ state: 'finished', problems: [expect.stringMatching(/^part-00003\.arrow does not match/)] });
    const r = await resume(wholeDir);
    expect(r.traced).toEqual(['p12', 'p13']);
    expect(r.manifest).toEqual(whole);
    expect(checkCorpus(wholeDir).problems).toEqual([]);
  });

  it('refuses to resume shards it cannot verify: a run.json without shard hashes, or no record at all', async () => {
    const { cut } = await wholeAndCut();
    const { shards: _shards, ...config } = JSON.parse(readFileSync(join(cut, RUN_FILE), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(cut, RUN_FILE), JSON.stringify(config));
    await expect(resume(cut)).rejects.toThrow(/records no shard hashes .* --overwrite/);
    rmSync(join(cut, RUN_FILE));
    await expect(resume(cut)).rejects.toThrow(/holds shards but neither run\.json nor manifest\.json, so they cannot be verified/);
    expect(readdirSync(cut).filter((f) => f.endsWith('.arrow'))).toHaveLength(3);
  });
});

describe('checkCorpus on a finished corpus', () => {
  it('finds counts that do not add up, a shard not in the manifest, and a row count that differs', async () => {
    const { whole, wholeDir } = await wholeAndCut();
    const manifest = structuredClone(whole);
    manifest.counts.total += 1;
    manifest.shards[1].rows = 5;
    writeFileSync(join(wholeDir, MANIFEST_FILE), JSON.stringify(manifest));
    writeFileSync(join(wholeDir, 'part-00009.arrow'), readFileSync(join(wholeDir, 'part-00000.arrow')));
    expect(checkCorpus(wholeDir).problems).toEqual([
      'part-00001.arrow holds 4 rows by its metadata, 5 by the record',
      'part-00009.arrow is not listed in manifest.json',
    ]);
    manifest.shards[1].rows = 4;
    writeFileSync(join(wholeDir, MANIFEST_FILE), JSON.stringify(manifest));
    expect(checkCorpus(wholeDir).problems).toEqual([
      'manifest.json counts do not match the shards: traces 15 in the manifest, 14 in the shards',
      'part-00009.arrow is not listed in manifest.json',
    ]);
  });
});

describe('the reader on a shard whose recorded hash matches damaged bytes', () => {
  it('names the corpus, the shard, the row and the step, as a CorpusError', async () => {
    const dir = tempDir();
    await writeCorpus({ dir, config: testConfig(), traces: [incrementTrace('a'), incrementTrace('b'), incrementTrace('c')] });
    // Clear the `locals_full` bit of row 1's first step (a call, stored whole): the bytes still
    // parse as Arrow, but that step now claims to be a delta with nothing before it.
    const file = join(dir, 'part-00000.arrow');
    const bytes = readFileSync(file);
    const steps = tableFromIPC(bytes).getChild('steps')?.data[0].children[0] as Data<Struct>;
    const full = steps.children[steps.type.children.findIndex((f) => f.name === 'locals_full')].values as Uint8Array;
    expect(full.buffer).toBe(bytes.buffer); // a view into the file bytes, so its offset is the file offset
    expect(full[0] & (1 << 4)).not.toBe(0);
    bytes[full.byteOffset - bytes.byteOffset] &= ~(1 << 4);
    writeFileSync(file, bytes);
    const manifest = readManifest(dir);
    manifest.shards[0].sha256 = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(manifest));

    const read = async () => {
      for await (const _ of readCorpus(dir));
    };
    await expect(read()).rejects.toThrow(CorpusError);
    await expect(read()).rejects.toThrow(`corpus ${dir}: part-00000.arrow row 1: step 0: delta locals without a previous state`);
    expect(checkCorpus(dir).problems).toEqual(['part-00000.arrow row 1: step 0: delta locals without a previous state']);
  });
});

describe('execwm corpus verify', () => {
  async function run(argv: string[]): Promise<{ code: number; err: string }> {
    let err = '';
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
    try {
      return { code: await main(argv), err };
    } finally {
      e.mockRestore();
    }
  }

  it('passes a complete corpus, and fails a damaged or unfinished one naming each problem', async () => {
    const { wholeDir, cut } = await wholeAndCut();
    const ok = await run(['corpus', 'verify', wholeDir]);
    expect(ok).toEqual({ code: 0, err: `${wholeDir}: 4 shards, 14 traces verified (hashes, row counts, numbering, every step decoded, manifest counts)\n` });
    const unfinished = await run(['corpus', 'verify', cut]);
    expect(unfinished.code).toBe(1);
    expect(unfinished.err).toMatch(/is an unfinished run: its 3 shards, 12 traces check out; finish it with/);
    flipByte(join(wholeDir, 'part-00002.arrow'), 900);
    const bad = await run(['corpus', 'verify', wholeDir]);
    expect(bad.code).toBe(1);
    expect(bad.err.split('\n')).toEqual([
      expect.stringMatching(new RegExp(`^${wholeDir}: part-00002\\.arrow does not match the sha256`)),
      `execwm: corpus ${wholeDir} fails verification: 1 problem (listed above) in 4 shards, 14 traces`,
      '',
    ]);
    expect((await run(['corpus', 'verify', join(wholeDir, 'nope')])).err).toBe(`execwm: no corpus at ${join(wholeDir, 'nope')} (folder does not exist)\n`);
  });
});

describe('corpus merge and missing partitions', () => {
  async function part(index: number, count: number): Promise<string> {
    const dir = tempDir();
    await buildCorpus({ dir, config: testConfig({ partition: { index, count } }), inputs: INPUTS, tracer: recordingTracer() });
    return dir;
  }

  it('refuses to merge 2 of 3 partitions, and with allowPartial records and reports the missing one', async () => {
    const [p0, p1, p2] = [await part(0, 3), await part(1, 3), await part(2, 3)];
    const out = tempDir();
    expect(() => mergeCorpora({ out, parts: [p0, p1] })).toThrow(/^partition 2\/3 is missing: its inputs would be lost .*--allow-partial\)$/);
    expect(existsSync(join(out, MANIFEST_FILE))).toBe(false);
    const partial = mergeCorpora({ out, parts: [p0, p1], allowPartial: true });
    expect(partial.missingPartitions).toEqual([{ index: 2, count: 3 }]);
    expect(partial.counts.total).toBe(10);
    expect(checkCorpus(out).problems).toEqual([]);
    // The missing part joins later: the result is the whole input, no longer partial.
    const full = mergeCorpora({ out: tempDir(), parts: [out, p2] });
    expect(full.missingPartitions).toBeUndefined();
    expect(full.counts.total).toBe(14);
    expect(() => mergeCorpora({ out: tempDir(), parts: [p0, p1, p0] })).toThrow(/is given twice/);
  });

  it('prints the missing partitions of a partial merge', async () => {
    const [p0, p2] = [await part(0, 3), await part(2, 3)];
    let err = '';
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
    const out = tempDir();
    let codes: number[];
    try {
      codes = [await main(['corpus', 'merge', out, p0, p2]), await main(['corpus', 'merge', out, p0, p2, '--allow-partial'])];
    } finally {
      e.mockRestore();
    }
    expect(codes).toEqual([1, 0]);
    expect(err).toContain('execwm: partition 1/3 is missing: its inputs would be lost');
    expect(err).toContain(`${out} is partial (--allow-partial): partitions 1/3 are missing and their inputs are not in it`);
  });
});
