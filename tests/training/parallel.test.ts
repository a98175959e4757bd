import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../training/tf.js';
import { setupBackend } from '../../training/backend.js';
import { loadCheckpoint } from '../../training/checkpoint.js';
import { MODEL_PRESETS, type TrainConfigInput } from '../../training/config.js';
import { KIND_NEXT, KIND_NONE, KIND_OUTPUT, KIND_STATE, countKinds, type Batch } from '../../training/data.js';
import { batchGradients } from '../../training/gradients.js';
import { GPT } from '../../training/model.js';
import { objectiveCounts } from '../../training/objective.js';
import { GradientWorkers, batchShard, packTensors, weightLayout } from '../../training/parallel.js';
import { train, type TrainOptions } from '../../training/train.js';
import { TINY_RUN, loopCorpus, runFolders } from './fixtures.js';

const freshDir = runFolders('execwm-parallel-');
const corpus = loopCorpus;
const BASE: TrainConfigInput = { ...TINY_RUN, steps: 6, evalEvery: 3, checkpointEvery: 3 };

const run = (opts: Partial<TrainOptions> & { config?: TrainConfigInput } = {}) =>
  train({ corpus: corpus(), out: freshDir(), ...opts, config: { ...BASE, ...opts.config } });

/** A batch of `rows` rows of `t` tokens with every kind of target, some rows without any state. */
function syntheticBatch(rows: number, t: number, vocab: number): Batch {
  const n = rows * t;
  const inputs = new Int32Array(n);
  const labels = new Int32Array(n);
  const kinds = new Uint8Array(n);
  const documents = new Int32Array(n);
  const positions = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = Math.floor(i / t);
    const at = i % t;
    inputs[i] = (i * 7 + 3) % vocab;
    // Row 0 holds no state target, so the shards' target counts differ.
    kinds[i] = at === t - 1 ? KIND_NONE : row > 0 && at % 3 === 1 ? KIND_STATE : at % 5 === 4 ? KIND_OUTPUT : KIND_NEXT;
    labels[i] = kinds[i] === KIND_NONE ? -1 : (i * 11 + 5) % vocab;
    documents[i] = at < t / 2 ? 0 : 1;
    positions[i] = at < t / 2 ? at : at - t / 2;
  }
  return { batchSize: rows, blockSize: t, inputs, labels, kinds, documents, positions };
}

describe('data-parallel shards', () => {
  beforeAll(async () => {
    await setupBackend('wasm');
  });

  it('splits a batch into consecutive whole rows, as evenly as the row count allows', () => {
    const batch = syntheticBatch(5, 8, 50);
    const shards = [0, 1, 2].map((i) => batchShard(batch, i, 3));
    expect(shards.map((s) => s.batchSize)).toEqual([1, 2, 2]);
    for (const key of ['inputs', 'labels', 'kinds', 'documents', 'positions'] as const) {
      const joined = shards.flatMap((s) => [...s[key]]);
      expect(joined, key).toEqual([...batch[key]]);
    }
    expect(shards.every((s) => s.blockSize === 8)).toBe(true);
  });

  it("adds up to the whole batch's loss and gradients when each shard divides by the whole batch's counts", () => {
    const config = { ...MODEL_PRESETS.tiny, blockSize: 16, vocabSize: 50, positionEncoding: 'rope' as const, smearKeys: true, canon: true };
    const model = new GPT(config, { seed: 5 });
    const weights = model.namedWeights();
    const batch = syntheticBatch(4, 16, 50);
    for (const outputWeight of [null, 2]) {
      const settings = { stateWeight: 1.5, outputWeight };
      const counts = objectiveCounts(countKinds(batch.kinds), outputWeight);
      tf.tidy(() => {
        const whole = batchGradients(model, weights, batch, settings);
        const parts = [0, 1].map((i) => batchGradients(model, weights, batchShard(batch, i, 2), settings, counts));
        const sum = (xs: tf.Scalar[]) => xs.reduce((a, b) => a + b.dataSync()[0]!, 0);
        expect(sum(parts.map((p) => p.loss))).toBeCloseTo(whole.loss.dataSync()[0]!, 5);
        for (let k = 0; k < 3; k++) expect(sum(parts.map((p) => p.parts[k]!))).toBeCloseTo(whole.parts[k]!.dataSync()[0]!, 5);
        for (const name of weights.keys()) {
          const added = tf.add(parts[0]!.grads.get(name)!, parts[1]!.grads.get(name)!);
          const diff = tf.max(tf.abs(tf.sub(added, whole.grads.get(name)!))).dataSync()[0]!;
          const scale = tf.max(tf.abs(whole.grads.get(name)!)).dataSync()[0]!;
          expect(diff, `${name} (μ ${outputWeight})`).toBeLessThanOrEqual(1e-5 + 1e-4 * scale);
        }
        // Without the whole batch's counts each shard is its own mean, and the parts do not add up.
        const alone = [0, 1].map((i) => batchGradients(model, weights, batchShard(batch, i, 2), settings));
        expect(Math.abs(sum(alone.map((p) => p.loss)) - whole.loss.dataSync()[0]!)).toBeGreaterThan(0.1);
      });
    }
    model.dispose();
  });
  it('leaves as many tensors alive in a worker after every step: no copy of the weights stays behind', async () => {
    const modelConfig = { ...MODEL_PRESETS.tiny, blockSize: 16, vocabSize: 50, positionEncoding: 'rope' as const, smearKeys: true, canon: true };
    const model = new GPT(modelConfig, { seed: 5 });
    const weights = packTensors(model.namedWeights().values());
    const settings = { stateWeight: 1, outputWeight: null };
    const workers = await GradientWorkers.start(1, { modelConfig, seed: 5, backend: 'wasm', threads: 1, settings }, weightLayout(model.namedWeights()));
    const batch = syntheticBatch(2, 16, 50);
    const counts = objectiveCounts(countKinds(batch.kinds));
    const tensors: number[] = [];
    for (let step = 0; step < 4; step++) tensors.push((await workers.compute(batch, weights, counts, 0))[0]!.tensors);
    await workers.close();
    model.dispose();
    expect(new Set(tensors).size, tensors.join(', ')).toBe(1);
  });
});

describe('training with gradient workers (tiny model, wasm backend)', () => {
  it('trains the same run as one thread, up to rounding, and the same run again with the same seed', async () => {
    const one = await run();
    const two = await run({ workers: 2 });
    const again = await run({ workers: 2 });
    expect(two.history.map((h) => h.step)).toEqual([1, 2, 3, 4, 5, 6]);
    two.history.forEach((h, i) => {
      const o = one.history[i]!;
      for (const key of ['loss', 'next', 'output', 'state', 'gradNorm'] as const) {
        expect(Math.abs(h[key]! - o[key]!), `step ${h.step} ${key}`).toBeLessThan(1e-4);
      }
    });
    expect(again.history.map((h) => h.loss)).toEqual(two.history.map((h) => h.loss));
    const [a, b] = [await loadCheckpoint(one.out), await loadCheckpoint(two.out)];
    const wa = a.model.namedWeights();
    for (const [name, w] of b.model.namedWeights()) {
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(w, wa.get(name)!))).dataSync()[0]!);
      expect(diff, name).toBeLessThan(1e-4);
    }
    a.model.dispose();
    b.model.dispose();
  });

  it('splits uneven batches and a separate output mean the same way', async () => {
    const config = { batchSize: 3, outputWeight: 1, steps: 3 };
    const one = await run({ config });
    const three = await run({ config, workers: 3 });
    three.history.forEach((h, i) => expect(Math.abs(h.loss - one.history[i]!.loss), `step ${h.step}`).toBeLessThan(1e-4));
  });

  it('keeps the number of live tensors constant across steps', async () => {
    const counts: number[] = [];
    await run({ workers: 2, progress: { update: () => counts.push(tf.memory().numTensors), stop: () => undefined } });
    expect(counts).toHaveLength(6);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('resumed with workers, continues with the losses of the uninterrupted run', async () => {
    const whole = await run({ workers: 2 });
    const out = freshDir();
    await train({ corpus: corpus(), out, config: BASE, workers: 2, stopAfterStep: 3 });
    const rest = await train({ corpus: corpus(), out, config: BASE, workers: 2, resume: true });
    expect(rest.history.map((h) => h.loss)).toEqual(whole.history.slice(3).map((h) => h.loss));
  });

  it('refuses a worker whose replica has other weights, or that cannot start its backend, in one line', async () => {
    const modelConfig = { ...MODEL_PRESETS.tiny, vocabSize: 40 };
    const settings = { stateWeight: 1, outputWeight: null };
    const data = { modelConfig, seed: 1, backend: 'wasm', threads: 1, settings };
    await expect(GradientWorkers.start(1, data, [{ name: 'wte', size: 3 }])).rejects.toThrow(
      /^A gradient worker failed to start: its model has other weights than the main thread$/,
    );
    await expect(GradientWorkers.start(1, { ...data, backend: 'node-gpu' }, [])).rejects.toThrow(/^A gradient worker failed to start: Backend node-gpu is not usable/);
  });

  it('refuses more workers than sequences in a batch, or none, before writing anything', async () => {
    for (const workers of [5, 0, 1.5]) {
      const out = freshDir();
      await expect(train({ corpus: corpus(), out, config: BASE, workers })).rejects.toThrow(
        new RegExp(`^--workers must be an integer from 1 to the batch size \\(4\\), got ${workers}$`),
      );
      expect(existsSync(out), `${workers}`).toBe(false);
    }
  });
});
