import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../training/tf.js';
import { learningRate, resolveTrainConfig } from '../../training/config.js';
import { crossEntropy, cwmObjective } from '../../training/objective.js';
import { AdamW } from '../../training/optim.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const OPTS = { beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1, gradClip: 0 };

describe('AdamW', () => {
  it('matches the decoupled-decay update written out by hand, and does not decay vectors', () => {
    const w = tf.variable(tf.tensor2d([[1, -2]]));
    const b = tf.variable(tf.tensor1d([0.5]));
    const opt = new AdamW(new Map<string, tf.Variable>([['w', w], ['b', b]]), OPTS);
    const lr = 0.01;
    tf.tidy(() => opt.apply({ w: tf.tensor2d([[0.2, 0.4]]), b: tf.tensor1d([-1]) }, lr)).dispose();
    // First step: m̂ = g, v̂ = g², so the step is g/(|g|+ε) ≈ sign(g).
    const expectW = [1 * (1 - lr * 0.1) - lr, -2 * (1 - lr * 0.1) - lr];
    Array.from(w.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(expectW[i]!, 6));
    expect(b.dataSync()[0]).toBeCloseTo(0.5 + lr, 6);
    opt.dispose();
    w.dispose();
    b.dispose();
  });

  it('clips the global gradient norm and reports the norm before clipping', () => {
    const w = tf.variable(tf.tensor1d([0, 0]));
    const opt = new AdamW(new Map([['w', w]]), { ...OPTS, weightDecay: 0, gradClip: 1 });
    const norm = tf.tidy(() => opt.apply({ w: tf.tensor1d([3, 4]) }, 0.1));
    expect(norm.dataSync()[0]).toBeCloseTo(5, 5);
    // Adam's first step is scale-free, so check the moment instead: m = (1-β1)·g·(1/5).
    expect(Array.from(opt.m.get('w')!.dataSync()).map((x) => +x.toFixed(6))).toEqual([0.06, 0.08]);
    norm.dispose();
    opt.dispose();
    w.dispose();
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly, peaks at lr, and decays by cosine to lr · minLrRatio', () => {
    const c = resolveTrainConfig({ steps: 100, warmupSteps: 10, lr: 1, minLrRatio: 0.1 });
    expect(learningRate(c, 0)).toBeCloseTo(1 / 11);
    expect(learningRate(c, 10)).toBeCloseTo(1);
    expect(learningRate(c, 55)).toBeCloseTo(0.55);
    expect(learningRate(c, 100)).toBeCloseTo(0.1);
    for (let s = 11; s < 100; s++) expect(learningRate(c, s)).toBeLessThanOrEqual(learningRate(c, s - 1));
  });

  it('derives steps from a token budget and rejects bad values with the field name', () => {
    expect(resolveTrainConfig({ preset: 'tiny', batchSize: 4, tokens: 4000 }).steps).toBe(4);
    expect(() => resolveTrainConfig({ batchSize: 0 })).toThrow(/`batchSize` to be a positive integer/);
    expect(() => resolveTrainConfig({ steps: 5, tokens: 10 })).toThrow(/either `steps` or `tokens`/);
    expect(() => resolveTrainConfig({ vocabSize: 100 })).toThrow(/`vocabSize` to be at least 266/);
  });
});

describe('CWM objective', () => {
  it('averages each loss over its own targets and skips label -1', () => {
    // Uniform logits: every counted target has cross-entropy ln V.
    const V = 4;
    const out = tf.tidy(() => {
      const logits = tf.zeros([1, 4, V]) as tf.Tensor3D;
      const labels = tf.tensor2d([[1, -1, 2, 3]], [1, 4], 'int32');
      const isState = tf.tensor2d([[0, 1, 1, 0]]);
      const o = cwmObjective({ logits, labels, isState, stateWeight: 0.5 });
      return [o.loss, o.next, o.state].map((t) => t.dataSync()[0]!);
    });
    expect(out[1]).toBeCloseTo(Math.log(V));
    expect(out[2]).toBeCloseTo(Math.log(V));
    expect(out[0]).toBeCloseTo(1.5 * Math.log(V));
  });

  it('gives output-example answers a mean of their own, weighted by μ, apart from the next-token mean', () => {
    const V = 4;
    const out = tf.tidy(() => {
      // Uniform logits except the answer position, which puts its target far ahead: loss ≈ 0 there.
      const logits = tf.tensor3d([[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 20, 0], [0, 0, 0, 0]]]);
      const labels = tf.tensor2d([[1, 3, 2, 0]], [1, 4], 'int32');
      const isState = tf.tensor2d([[0, 0, 0, 1]]);
      const isOutput = tf.tensor2d([[0, 0, 1, 0]]);
      const o = cwmObjective({ logits, labels, isState, isOutput, stateWeight: 1, outputWeight: 3 });
      return [o.loss, o.next, o.output, o.state].map((t) => t.dataSync()[0]!);
    });
    const [loss, next, output, state] = out as [number, number, number, number];
    expect(next).toBeCloseTo(Math.log(V)); // the two plain targets only, not the answer
    expect(output).toBeLessThan(1e-6);
    expect(state).toBeCloseTo(Math.log(V));
    expect(loss).toBeCloseTo(next + 3 * output + state);
  });

  it('cross-entropy from softmax equals logSumExp − target logit, values and gradients, even for far-apart logits', () => {
    const V = 7;
    // Row 1 puts its target 200 below the max: exp of that difference underflows float32.
    const x = tf.tensor2d([[0.3, -1.2, 2.0, 0.1, 0.0, -0.5, 1.1], [100, 0, -100, 3, 2, 1, 0], [0, 0, 0, 0, 0, 0, 0]]);
    const targets = tf.oneHot(tf.tensor1d([2, 2, 6], 'int32'), V) as tf.Tensor2D;
    const dy = tf.tensor1d([0.5, -2, 1]);
    const plain = (xi: tf.Tensor): tf.Tensor => tf.sub(tf.logSumExp(xi, -1), tf.sum(tf.mul(xi, targets), -1));
    const custom = (xi: tf.Tensor): tf.Tensor => crossEntropy(xi as tf.Tensor2D, targets);
    const values = [plain(x), custom(x)].map((t) => Array.from(t.dataSync()));
    expect(values[1]![1]).toBeCloseTo(200, 3);
    values[1]!.forEach((v, i) => expect(v).toBeCloseTo(values[0]![i]!, 5));
    const grads = [tf.grad(plain)(x, dy), tf.grad(custom)(x, dy)].map((g) => Array.from(g.dataSync()));
    grads[1]!.forEach((g, i) => expect(g).toBeCloseTo(grads[0]![i]!, 6));
    tf.dispose([x, targets, dy]);
  });

  it('with λ = 0, the state targets get no gradient', () => {
    const logits = tf.variable(tf.randomNormal([1, 3, 5], 0, 1, 'float32', 1));
    const labels = tf.tensor2d([[1, 2, 3]], [1, 3], 'int32');
    const isState = tf.tensor2d([[0, 1, 0]]);
    const g = tf.grad((x: tf.Tensor) => cwmObjective({ logits: x as tf.Tensor3D, labels, isState, stateWeight: 0 }).loss)(logits);
    const rows = g.arraySync() as number[][][];
    expect(rows[0]![1]!.every((v) => v === 0)).toBe(true);
    expect(rows[0]![0]!.some((v) => v !== 0)).toBe(true);
    tf.dispose([logits, labels, isState, g]);
  });
});
