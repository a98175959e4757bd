import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CorpusTrace } from '../../corpus/index.js';
import * as tf from '../../training/tf.js';
import { loadCheckpoint, readCheckpoint } from '../../training/checkpoint.js';
import { readMetrics } from '../../training/metrics.js';
import { train, type TrainOptions } from '../../training/train.js';
import { MODEL_PRESETS, type TrainConfigInput } from '../../training/config.js';
import { TINY_RUN, loopCorpus, loopTrace, runFolders } from './fixtures.js';

const freshDir = runFolders('execwm-train-');
const corpus = loopCorpus;
const BASE = TINY_RUN;

const run = (opts: Partial<TrainOptions> & { config?: TrainConfigInput } = {}) =>
  train({ corpus: corpus(), out: freshDir(), ...opts, config: { ...BASE, ...opts.config } });

describe('training loop (tiny model, wasm backend)', () => {
  it('lowers the loss and writes metrics, a loss plot and a checkpoint', async () => {
    const res = await run({ config: { steps: 30 } });
    const losses = res.history.map((h) => h.loss);
    expect(losses).toHaveLength(30);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)));
    expect(res.history.every((h) => h.next > 0 && h.state > 0)).toBe(true);
    const lines = readMetrics(res.out);
    expect(lines.filter((l) => l.type === 'train')).toHaveLength(30);
    expect(lines.filter((l) => l.type === 'val').map((l) => l.step)).toEqual([0, 8, 16, 24, 30]);
    expect(readFileSync(path.join(res.out, 'loss.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    expect((await readCheckpoint(res.out)).meta.step).toBe(30);
  });

  it('logs every objective; a weight of 0 leaves its term out of the loss', async () => {
    const zero = await run({ config: { stateWeight: 0, outputWeight: 0, steps: 3 } });
    for (const h of zero.history) {
      expect(h.state).toBeGreaterThan(0);
      expect(h.loss).toBe(h.next);
    }
    const two = await run({ config: { stateWeight: 2, steps: 3 } });
    for (const h of two.history) expect(h.loss).toBeCloseTo(h.next + 2 * h.state, 4);
    const separate = await run({ config: { stateWeight: 2, outputWeight: 3, steps: 3 } });
    for (const h of separate.history) expect(h.loss).toBeCloseTo(h.next + 3 * h.output! + 2 * h.state, 4);
  });

  it('packs one output example per function trace unless told not to', async () => {
    const withExamples = await run({ config: { steps: 1 } });
    const train = corpus().traces.filter((t) => t.split === 'train').length;
    expect(withExamples.rowStats.train.outputExamples).toBe(train);
    expect(withExamples.trainConfig.outputExamples).toBe(true);
    const without = await run({ config: { steps: 1, outputExamples: false } });
    expect(without.rowStats.train.outputExamples).toBe(0);
    expect(without.rowStats.train.nextTokens).toBeLessThan(withExamples.rowStats.train.nextTokens);
  });

  it('mixes derived tasks into the train split only, as many per trace as the weights ask, and saves the mix', async () => {
    const plain = await run({ config: { steps: 1 } });
    const mixed = await run({ config: { steps: 1, tasks: { next: 2, back: 1, input: 1 } } });
    const train = corpus().traces.filter((t) => t.split === 'train').length;
    expect(plain.rowStats.train.taskExamples).toBe(0);
    expect(plain.trainConfig.tasks).toEqual({});
    // Every train trace is a call that returns: one input-prediction example each.
    expect(mixed.rowStats.train.taskExamples).toBe(4 * train);
    expect(mixed.rowStats.val).toEqual(plain.rowStats.val);
    expect(mixed.trainConfig.tasks).toEqual({ next: 2, back: 1, input: 1 });
    expect((await readCheckpoint(mixed.out)).meta.trainConfig.tasks).toEqual({ next: 2, back: 1, input: 1 });
    // A checkpoint written before the field existed reads as no mix.
    const file = path.join(plain.out, 'checkpoint', 'checkpoint.json');
    const json = JSON.parse(readFileSync(file, 'utf8')) as { trainConfig: Record<string, unknown> };
    delete json.trainConfig.tasks;
    writeFileSync(file, JSON.stringify(json));
    expect((await readCheckpoint(plain.out)).meta.trainConfig.tasks).toEqual({});
  });

  it('trains on diff-encoded sequences and records the choice in the checkpoint', async () => {
    const res = await run({ config: { diff: true, steps: 2 } });
    expect(res.history).toHaveLength(2);
    const loaded = await loadCheckpoint(res.out);
    expect(loaded.trainConfig.diff).toBe(true);
    loaded.model.dispose();
  });

  it('keeps the number of live tensors constant across steps', async () => {
    const counts: number[] = [];
    await run({
      config: { steps: 6 },
      progress: { update: () => counts.push(tf.memory().numTensors), stop: () => undefined },
    });
    expect(counts).toHaveLength(6);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('gives the same losses for the same seed, including the default seed 0', async () => {
    for (const seed of [3, 0]) {
      const a = await run({ config: { steps: 3, seed } });
      const b = await run({ config: { steps: 3, seed } });
      expect(b.history.map((h) => h.loss), `seed ${seed}`).toEqual(a.history.map((h) => h.loss));
    }
  });

  it('resumed from a checkpoint, continues with the losses of the uninterrupted run', async () => {
    const whole = await run({ config: { steps: 12, checkpointEvery: 100 } });
    const out = freshDir();
    const first = await train({ corpus: corpus(), out, config: { ...BASE, steps: 12, checkpointEvery: 100 }, stopAfterStep: 6 });
    expect(first.step).toBe(6);
    const rest = await train({ corpus: corpus(), out, config: { ...BASE, steps: 12, checkpointEvery: 100 }, resume: true });
    expect(rest.history.map((h) => h.step)).toEqual([7, 8, 9, 10, 11, 12]);
    const expected = whole.history.slice(6).map((h) => h.loss);
    rest.history.forEach((h, i) => expect(Math.abs(h.loss - expected[i]!)).toBeLessThan(1e-6));
    // metrics.jsonl reads as one run: each step once.
    const steps = readMetrics(out)
      .filter((l) => l.type === 'train')
      .map((l) => l.step);
    expect(steps).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  describe('resume after a kill -9 at an awkward moment (the folder a kill leaves, built by hand)', () => {
    const config = { ...BASE, steps: 12, checkpointEvery: 4, evalEvery: 4 };
    const trainSteps = (out: string) =>
      readMetrics(out)
        .filter((l) => l.type === 'train')
        .map((l) => l.step);
    let whole: Awaited<ReturnType<typeof train>>;
    const expectWholeFrom = (rest: Awaited<ReturnType<typeof train>>, from: number) => {
      expect(rest.history.map((h) => h.step)).toEqual(Array.from({ length: 12 - from }, (_, i) => from + i + 1));
      const expected = whole.history.slice(from).map((h) => h.loss);
      rest.history.forEach((h, i) => expect(Math.abs(h.loss - expected[i]!)).toBeLessThan(1e-6));
    };
    beforeAll(async () => {
      whole = await train({ corpus: corpus(), out: freshDir(), config });
    });

    it('between the two renames of a save: resumes from checkpoint.prev, redoing the steps after it', async () => {
      const out = freshDir();
      await train({ corpus: corpus(), out, config, stopAfterStep: 4 });
      const step4 = `${out}-step4`;
      cpSync(path.join(out, 'checkpoint'), step4, { recursive: true });
      await train({ corpus: corpus(), out, config, stopAfterStep: 8, resume: true });
      // The save at step 8 was killed after moving step 4 aside and before moving step 8 in.
      renameSync(path.join(out, 'checkpoint'), path.join(out, 'checkpoint.tmp'));
      renameSync(step4, path.join(out, 'checkpoint.prev'));
      expect(trainSteps(out)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      const rest = await train({ corpus: corpus(), out, config, resume: true });
      expectWholeFrom(rest, 4);
      expect(trainSteps(out)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(readdirSync(out).filter((f) => f.startsWith('checkpoint')).sort()).toEqual(['checkpoint']);
      expect((await readCheckpoint(out)).meta.step).toBe(12);
    });

    it('while writing checkpoint.tmp: keeps checkpoint/ and replaces the half-written one', async () => {
      const out = freshDir();
      await train({ corpus: corpus(), out, config, stopAfterStep: 4 });
      mkdirSync(path.join(out, 'checkpoint.tmp'));
      writeFileSync(path.join(out, 'checkpoint.tmp', 'weights.bin'), Buffer.alloc(100));
      const rest = await train({ corpus: corpus(), out, config, resume: true });
      expectWholeFrom(rest, 4);
      expect(existsSync(path.join(out, 'checkpoint.tmp'))).toBe(false);
    });

    it('in the middle of a metrics line: drops the cut line and logs each step once', async () => {
      const out = freshDir();
      await train({ corpus: corpus(), out, config, stopAfterStep: 4 });
      const file = path.join(out, 'metrics.jsonl');
      const step5 = JSON.stringify(whole.history[4]);
      writeFileSync(file, `${readFileSync(file, 'utf8')}${step5}\n${step5.replace('"step":5', '"step":6').slice(0, 40)}`);
      const rest = await train({ corpus: corpus(), out, config, resume: true });
      expectWholeFrom(rest, 4);
      expect(trainSteps(out)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    });

    it('before the first checkpoint: starts over, and metrics.jsonl holds one run', async () => {
      const out = freshDir();
      mkdirSync(out);
      // Steps 1-3 logged, the first save (step 4) half-written.
      writeFileSync(path.join(out, 'metrics.jsonl'), whole.history.slice(0, 3).map((h) => `${JSON.stringify(h)}\n`).join('') + '{"type":"tr');
      mkdirSync(path.join(out, 'checkpoint.tmp'));
      writeFileSync(path.join(out, 'checkpoint.tmp', 'weights.bin'), Buffer.alloc(10));
      await expect(train({ corpus: corpus(), out, config })).rejects.toThrow(/already holds a training run/);
      const rest = await train({ corpus: corpus(), out, config, resume: true });
      expectWholeFrom(rest, 0);
      expect(trainSteps(out)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    });

    it('with dropout > 0: resumes with the same dropout masks', async () => {
      // The presets small enough for a test train without dropout; this one turns it on.
      const tiny = MODEL_PRESETS.tiny;
      MODEL_PRESETS.tiny = { ...tiny, dropout: 0.2 };
      try {
        const dropped = await train({ corpus: corpus(), out: freshDir(), config });
        expect(dropped.modelConfig.dropout).toBe(0.2);
        // Dropout really changes the run, so equal losses below are not equal by accident.
        expect(dropped.history[1]!.loss).not.toBeCloseTo(whole.history[1]!.loss, 4);
        const out = freshDir();
        await train({ corpus: corpus(), out, config, stopAfterStep: 5 });
        const rest = await train({ corpus: corpus(), out, config, resume: true });
        expect(rest.history.map((h) => h.step)).toEqual([6, 7, 8, 9, 10, 11, 12]);
        rest.history.forEach((h, i) => expect(Math.abs(h.loss - dropped.history[5 + i]!.loss)).toBeLessThan(1e-6));
      } finally {
        MODEL_PRESETS.tiny = tiny;
      }
    });
  });

  it('round-trips a checkpoint: the loaded model holds the saved weights and tokenizer', async () => {
    const res = await run({ config: { steps: 2 } });
    const files = await readCheckpoint(res.out);
    const loaded = await loadCheckpoint(res.out);
    try {
      expect(loaded.step).toBe(2);
      expect(loaded.modelConfig).toEqual(res.modelConfig);
      expect(loaded.trainConfig).toEqual(res.trainConfig);
      expect(loaded.tokenizer.toJSON()).toEqual(files.tokenizer.toJSON());
      for (const [name, w] of loaded.model.namedWeights()) {
        expect(Array.from(w.dataSync())).toEqual(Array.from(files.tensors.get(`weight/${name}`)!.data));
      }
      const logits = tf.tidy(() => loaded.model.forward(tf.tensor2d([[0, 1, 2]], [1, 3], 'int32')).shape);
      expect(logits).toEqual([1, 3, loaded.tokenizer.vocabSize]);
    } finally {
      loaded.model.dispose();
    }
  });

  it('reads a checkpoint from before the later config fields as what those runs did', async () => {
    const res = await run({ config: { steps: 2 } });
    const file = path.join(res.out, 'checkpoint', 'checkpoint.json');
    const meta = JSON.parse(readFileSync(file, 'utf8')) as { trainConfig: Record<string, unknown>; modelConfig: Record<string, unknown> };
    for (const key of ['changedOnly', 'operands', 'outputExamples', 'outputWeight', 'positionEncoding']) delete meta.trainConfig[key];
    writeFileSync(file, JSON.stringify(meta));
    const files = await readCheckpoint(res.out);
    expect(files.meta.trainConfig).toEqual({
      ...res.trainConfig,
      changedOnly: false,
      operands: false,
      outputExamples: false,
      outputWeight: null,
      positionEncoding: 'learned',
    });
    expect(files.meta.modelConfig).toEqual(res.modelConfig);
  });

  it('refuses a checkpoint.json field of the wrong type in one line naming the field', async () => {
    const res = await run({ config: { steps: 2 } });
    const file = path.join(res.out, 'checkpoint', 'checkpoint.json');
    const meta = JSON.parse(readFileSync(file, 'utf8')) as { trainConfig: Record<string, unknown> };
    writeFileSync(file, JSON.stringify({ ...meta, trainConfig: { ...meta.trainConfig, stateWeight: 'high' } }));
    await expect(loadCheckpoint(res.out)).rejects.toThrow(
      /^Corrupt checkpoint \S+: checkpoint\.json: trainConfig\.stateWeight: Invalid type: Expected number but received "high"$/,
    );
    writeFileSync(file, JSON.stringify({ ...meta, format: 'other' }));
    await expect(loadCheckpoint(res.out)).rejects.toThrow(/not an execwm checkpoint of version 1 \(format other, version 1\)/);
  });

  it('refuses a corrupt checkpoint and a resume with other settings or another corpus', async () => {
    const res = await run({ config: { steps: 2 } });
    await expect(train({ corpus: corpus(), out: res.out, config: { ...BASE, steps: 2 } })).rejects.toThrow(/already holds a training run/);
    await expect(train({ corpus: corpus(), out: res.out, config: { ...BASE, steps: 2, lr: 0.5 }, resume: true })).rejects.toThrow(
      /other settings: lr/,
    );
    await expect(
      train({ corpus: { ...corpus(), manifestId: 'other' }, out: res.out, config: { ...BASE, steps: 2 }, resume: true }),
    ).rejects.toThrow(/trained on corpus loops/);
    const weights = path.join(res.out, 'checkpoint', 'weights.bin');
    const bytes = readFileSync(weights);
    bytes[10] = bytes[10]! ^ 0xff;
    writeFileSync(weights, bytes);
    await expect(loadCheckpoint(res.out)).rejects.toThrow(/Corrupt checkpoint .*checksum/);
    writeFileSync(path.join(res.out, 'checkpoint', 'checkpoint.json'), '{"format":');
    await expect(train({ corpus: corpus(), out: res.out, config: { ...BASE, steps: 2 }, resume: true })).rejects.toThrow(
      /Corrupt checkpoint/,
    );
  });

  it('refuses corpora it cannot train on, writing nothing', async () => {
    const c = corpus();
    const cases: [CorpusTrace[], RegExp][] = [
      [[], /is empty/],
      [c.traces.map((t) => ({ ...t, status: 'exception' as const })), /none with status ok/],
      [c.traces.filter((t) => t.split !== 'val'), /no ok traces in the val split/],
      [c.traces.filter((t) => t.split !== 'train'), /no ok traces in the train split/],
    ];
    for (const [traces, message] of cases) {
      const out = freshDir();
      await expect(train({ corpus: { manifestId: 'x', traces }, out, config: BASE })).rejects.toThrow(message);
      expect(existsSync(out)).toBe(false);
    }
    const long = { ...loopTrace(3), source: `${'# padding\n'.repeat(160)}def f(n):\n    return n\n`, split: 'train' as const, origin: '' };
    const out = freshDir();
    await expect(
      train({ corpus: { manifestId: 'x', traces: [long, { ...long, split: 'val' }] }, out, config: BASE }),
    ).rejects.toThrow(/No train trace fits the context of 256 tokens/);
    expect(existsSync(out)).toBe(false);
  });
});
