import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../training/tf.js';
import { setupBackend } from '../../training/backend.js';
import { MODEL_PRESETS } from '../../training/config.js';
import { GPT, gelu, layerNorm, type KVCache, type ModelConfig } from '../../training/model.js';
import { setKernelOverrides } from '../../training/kernels/wasm.js';
import { useTransposingMatMul } from '../../training/kernels/matmul.js';

const VOCAB = 40;
const config: ModelConfig = { ...MODEL_PRESETS.tiny, vocabSize: VOCAB };

/** Position encoding and smeared keys: every way attention can see a document. */
const ATTENTION_VARIANTS = [
  ['learned', false, false],
  ['learned', true, false],
  ['rope', false, false],
  ['rope', true, false],
  ['learned', false, true],
  ['rope', true, true],
] as const;

/**
 * A model of one attention variant; its canon layers get weights away from their zero start, so
 * every tap of every one shows in the logits.
 */
function variantModel(positionEncoding: 'learned' | 'rope', smearKeys: boolean, canon: boolean, seed: number): GPT {
  const model = new GPT({ ...config, positionEncoding, smearKeys, canon }, { seed });
  model.blocks.forEach((block, i) => {
    for (const c of [block.canonA, block.canonC]) c?.weight.assign(tf.randomNormal(c.weight.shape, 0, 0.5, 'float32', seed * 31 + i));
  });
  return model;
}

/** A fixed toy batch: each row counts up modulo the vocabulary from its own start. */
function toyBatch(b: number, t: number): { idx: tf.Tensor2D; targets: tf.Tensor2D } {
  const rows = Array.from({ length: b }, (_, r) => Array.from({ length: t + 1 }, (_, i) => (r * 7 + i) % VOCAB));
  return {
    idx: tf.tensor2d(rows.map((row) => row.slice(0, t)), [b, t], 'int32'),
    targets: tf.tensor2d(rows.map((row) => row.slice(1)), [b, t], 'int32'),
  };
}

function crossEntropy(logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar {
  const flat = tf.reshape(logits, [-1, VOCAB]) as tf.Tensor2D; // [B·T, V]
  const picked = tf.mul(tf.logSoftmax(flat), tf.oneHot(tf.reshape(targets, [-1]), VOCAB)); // [B·T, V]
  return tf.neg(tf.mean(tf.sum(picked, -1))) as tf.Scalar;
}

// The same assertions over each path that must agree: cpu, wasm with our kernel overrides, and
// wasm with stock kernels plus the customGrad matmul (the fallback when tfjs internals change).
describe.each(['cpu', 'wasm', 'wasm-fallback'] as const)('GPT on the %s backend', (path) => {
  beforeAll(async () => {
    await setupBackend(path === 'cpu' ? 'cpu' : 'wasm');
    if (path === 'wasm-fallback') {
      setKernelOverrides(false);
      useTransposingMatMul(true);
    }
  });
  afterAll(() => {
    if (path === 'wasm-fallback') {
      setKernelOverrides(true);
      useTransposingMatMul(false);
    }
  });

  it('returns logits [B, T, V] for every position and names weights like a reference GPT', () => {
    const model = new GPT(config, { seed: 1 });
    const { idx } = toyBatch(3, 10);
    const logits = model.forward(idx);
    expect(logits.shape).toEqual([3, 10, VOCAB]);
    const names = [...model.namedWeights().keys()];
    expect(names).toContain('wte.weight');
    expect(names).toContain('h.1.attn.c_attn.weight');
    expect(names).toContain('h.0.mlp.c_proj.bias');
    expect(names).toContain('ln_f.weight');
    expect(model.namedWeights().get('h.0.attn.c_attn.weight')!.shape).toEqual([32, 96]);
    // Tied head: no separate lm_head weight; parameters = 12·L·D² + 13·L·D + (V + T)·D + 2·D.
    const { nLayer: l, nEmbd: d, blockSize: t } = config;
    expect(model.paramCount()).toBe(12 * l * d * d + 13 * l * d + (VOCAB + t) * d + 2 * d);
    tf.dispose([logits, idx]);
    model.dispose();
  });

  it.each([0, 3])('is seeded (seed %i): the same seed gives the same weights, another seed different ones', (seed) => {
    const a = new GPT(config, { seed });
    const b = new GPT(config, { seed });
    const c = new GPT(config, { seed: seed + 1 });
    for (const name of ['wte.weight', 'wpe.weight', 'h.0.mlp.c_fc.weight']) {
      const wa = Array.from(a.namedWeights().get(name)!.dataSync());
      expect(Array.from(b.namedWeights().get(name)!.dataSync())).toEqual(wa);
      expect(Array.from(c.namedWeights().get(name)!.dataSync())).not.toEqual(wa);
    }
    [a, b, c].forEach((m) => m.dispose());
  });

  it('draws the same dropout masks for the same seed and dropout state', () => {
    const dropConfig = { ...config, dropout: 0.2 };
    const { idx } = toyBatch(2, 8);
    const run = (): number[] => {
      const model = new GPT(dropConfig, { seed: 0 });
      const logits = model.forward(idx, { training: true });
      const out = Array.from(logits.dataSync());
      expect(model.rngState).toBeGreaterThan(0);
      tf.dispose(logits);
      model.dispose();
      return out;
    };
    expect(run()).toEqual(run());
    idx.dispose();
  });

  it('does not let a position see later tokens (changing a later token keeps earlier logits)', () => {
    const model = new GPT(config, { seed: 2 });
    const a = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const b = tf.tensor2d([[1, 2, 3, 9, 9, 9]], [1, 6], 'int32');
    const la = model.forward(a);
    const lb = model.forward(b);
    const early = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(la, [0, 0, 0], [1, 3, -1]), tf.slice(lb, [0, 0, 0], [1, 3, -1])))));
    const late = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(la, [0, 3, 0], [1, 1, -1]), tf.slice(lb, [0, 3, 0], [1, 1, -1])))));
    expect(early.dataSync()[0]).toBeLessThan(1e-6);
    expect(late.dataSync()[0]).toBeGreaterThan(1e-4);
    tf.dispose([a, b, la, lb, early, late]);
    model.dispose();
  });

  it.each(ATTENTION_VARIANTS)('keeps packed documents apart (%s positions, smeared keys %s, canon %s): each gives the logits it gives alone, wherever it sits in the row', (positionEncoding, smearKeys, canon) => {
    const model = variantModel(positionEncoding, smearKeys, canon, 4);
    const docA = [5, 6, 7, 8, 9];
    const docB = [11, 3, 12, 4, 13, 2, 1];
    const row = [...docA, ...docB];
    const packed = tf.tensor2d([row], [1, row.length], 'int32');
    const documents = tf.tensor2d([row.map((_, i) => (i < docA.length ? 0 : 1))], [1, row.length], 'int32');
    const positions = tf.tensor2d([row.map((_, i) => (i < docA.length ? i : i - docA.length))], [1, row.length], 'int32');
    const alone = tf.tensor2d([docB], [1, docB.length], 'int32');
    const lp = model.forward(packed, { documents, positions }); // [1, 12, V]
    const la = model.forward(alone); // [1, 7, V]
    const tail = tf.slice(lp, [0, docA.length, 0], [1, docB.length, -1]);
    const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(tail, la))));
    expect(gap.dataSync()[0]).toBeLessThan(1e-5);
    // Without the document mask and positions the second document sees the first: its logits move.
    const leaky = model.forward(packed);
    const leak = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(leaky, [0, docA.length, 0], [1, docB.length, -1]), la))));
    expect(leak.dataSync()[0]).toBeGreaterThan(1e-4);
    expect(() => model.forward(packed, { documents })).toThrow(/together/);
    tf.dispose([packed, documents, positions, alone, lp, la, tail, gap, leaky, leak]);
    model.dispose();
  });

  it('with rotary positions has no position embedding and scores depend on distance only', () => {
    const model = new GPT({ ...config, positionEncoding: 'rope' }, { seed: 8 });
    expect(model.wpe).toBeNull();
    expect([...model.namedWeights().keys()]).not.toContain('wpe.weight');
    const { nLayer: l, nEmbd: d } = config;
    expect(model.paramCount()).toBe(12 * l * d * d + 13 * l * d + VOCAB * d + 2 * d);
    // The same document at positions 0.. and at 5.. of its own numbering gives the same logits.
    const idx = tf.tensor2d([[3, 9, 4, 1]], [1, 4], 'int32');
    const documents = tf.zeros([1, 4], 'int32') as tf.Tensor2D;
    const shifted = tf.tensor2d([[5, 6, 7, 8]], [1, 4], 'int32');
    const a = model.forward(idx);
    const b = model.forward(idx, { documents, positions: shifted });
    const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
    expect(gap.dataSync()[0]).toBeLessThan(1e-4);
    tf.dispose([idx, documents, shifted, a, b, gap]);
    model.dispose();
  });

  it('trains through per-document positions: the position embedding gets a gradient', () => {
    const model = new GPT(config, { seed: 6 });
    const idx = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    const documents = tf.tensor2d([[0, 0, 0, 1, 1, 1]], [1, 6], 'int32');
    const positions = tf.tensor2d([[0, 1, 2, 0, 1, 2]], [1, 6], 'int32');
    const { grads } = tf.variableGrads(
      () => tf.sum(model.forward(idx, { training: true, documents, positions })) as tf.Scalar,
      [model.wpe!],
    );
    const g = grads[model.wpe!.name]!; // [blockSize, D]
    const rowNorms = tf.tidy(() => Array.from(tf.sum(tf.abs(g), 1).dataSync()));
    // Positions 0..2 are used (twice each), 3.. never.
    expect(rowNorms.slice(0, 3).every((n) => n > 0)).toBe(true);
    expect(rowNorms.slice(3).every((n) => n === 0)).toBe(true);
    tf.dispose([idx, documents, positions, ...Object.values(grads)]);
    model.dispose();
  });

  it.each(ATTENTION_VARIANTS)('decodes with the key/value cache exactly like the full forward (%s positions, smeared keys %s, canon %s), token for token', (positionEncoding, smearKeys, canon) => {
    const model = variantModel(positionEncoding, smearKeys, canon, 5);
    // Away from the even mix the weights start at, so a wrong previous key would show.
    model.blocks.forEach((block, i) => block.attn.smear?.assign(tf.tensor1d(Array.from({ length: config.nHead }, (_, h) => 0.7 * (h + 1) - i))));
    const t = 14;
    const { idx } = toyBatch(2, t);
    const full = model.forward(idx); // [2, t, V]
    const cache = model.createCache(2);
    // A 4-token prompt at once, then one token at a time.
    const steps: [number, number][] = [[0, 4], ...Array.from({ length: t - 4 }, (_, i): [number, number] => [4 + i, 1])];
    for (const [start, len] of steps) {
      const piece = tf.slice(idx, [0, start], [2, len]);
      const last = model.forwardCached(piece, cache); // [2, V]
      const expected = tf.reshape(tf.slice(full, [0, start + len - 1, 0], [2, 1, -1]), [2, VOCAB]);
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(last, expected))));
      expect(diff.dataSync()[0]).toBeLessThan(1e-4);
      expect(cache.length).toBe(start + len);
      tf.dispose([piece, last, expected, diff]);
    }
    expect(() => model.forwardCached(tf.zeros([2, config.blockSize], 'int32') as tf.Tensor2D, cache)).toThrow(/blockSize/);
    cache.dispose();
    tf.dispose([full, idx]);
    model.dispose();
  });

  it.each(ATTENTION_VARIANTS)('decodes left-padded rows of different lengths in one cache as each alone (%s positions, smeared keys %s, canon %s)', (positionEncoding, smearKeys, canon) => {
    const model = variantModel(positionEncoding, smearKeys, canon, 6);
    model.blocks.forEach((block, i) => block.attn.smear?.assign(tf.tensor1d(Array.from({ length: config.nHead }, (_, h) => 0.7 * (h + 1) - i))));
    const prompts = [
      [3, 1, 4],
      [2, 7, 1, 8, 2, 8, 1],
      [5, 9, 2, 6, 5],
    ];
    const next = [
      [11, 12, 13, 14],
      [21, 22, 23, 24],
      [31, 32, 33, 34],
    ];
    const filler = 17; // a real token id, so a key leaking from the padding would show
    const gap = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
    // Each row alone: its prompt, then one token at a time.
    const feed = (ids: number[][], cache: KVCache): tf.Tensor2D => {
      const idx = tf.tensor2d(ids, [ids.length, ids[0]!.length], 'int32');
      const logits = model.forwardCached(idx, cache); // [B, V]
      idx.dispose();
      return logits;
    };
    const alone = prompts.map((prompt, r) => {
      const cache = model.createCache(1);
      const out = [feed([prompt], cache)];
      for (const id of next[r]!) out.push(feed([[id]], cache));
      cache.dispose();
      return out; // [1, V] each
    });
    const before = tf.memory().numTensors;
    const padding = prompts.map((p) => 7 - p.length);
    const cache = model.createCache(3, { padding });
    const rows = prompts.map((p, r) => [...new Array<number>(padding[r]!).fill(filler), ...p]);
    const first = feed(rows, cache); // [3, V]
    prompts.forEach((_, r) => {
      const row = tf.slice(first, [r, 0], [1, -1]);
      expect(gap(row, alone[r]![0]!)).toBeLessThan(1e-4);
      row.dispose();
    });
    // Unmasked, the same padded rows give other logits: the check above can fail.
    const leaky = model.createCache(3);
    const leakyFirst = feed(rows, leaky);
    expect(tf.tidy(() => gap(tf.slice(leakyFirst, [0, 0], [1, -1]), alone[0]![0]!))).toBeGreaterThan(1e-4);
    leakyFirst.dispose();
    leaky.dispose();
    first.dispose();
    // Two steps with every row, then rows 2 and 0 only: the padding they share is dropped.
    let live = [0, 1, 2];
    for (let s = 0; s < 4; s++) {
      if (s === 2) {
        cache.keepRows([2, 0]);
        live = [2, 0];
        expect(cache.padding).toEqual([0, 2]);
        expect(cache.length).toBe(7 + 2 - 2);
      }
      const logits = feed(live.map((r) => [next[r]![s]!]), cache); // [live, V]
      live.forEach((r, k) => {
        const row = tf.slice(logits, [k, 0], [1, -1]);
        expect(gap(row, alone[r]![s + 1]!)).toBeLessThan(1e-4);
        row.dispose();
      });
      logits.dispose();
    }
    cache.dispose();
    // Padding shared by every row (rows 0 and 2 in a 6-wide batch) is dropped by keepRows with all rows kept.
    const wide = model.createCache(2, { padding: [3, 1] });
    feed([0, 2].map((r) => [...new Array<number>(6 - prompts[r]!.length).fill(filler), ...prompts[r]!]), wide).dispose();
    wide.keepRows([0, 1]);
    expect(wide.padding).toEqual([2, 0]);
    const after = feed([[next[0]![0]!], [next[2]![0]!]], wide); // [2, V]
    [0, 2].forEach((r, k) => expect(tf.tidy(() => gap(tf.slice(after, [k, 0], [1, -1]), alone[r]![1]!))).toBeLessThan(1e-4));
    after.dispose();
    wide.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // Every row needs a real token in the first call.
    expect(() => feed([[1, 2, 3], [4, 5, 6]], model.createCache(2, { padding: [0, 3] }))).toThrow(/padding/);
    expect(() => model.createCache(2, { padding: [1] })).toThrow(/one padding per row/);
    tf.dispose(alone.flat());
    model.dispose();
  });

  it.each(ATTENTION_VARIANTS)('cuts prompt prefixes out of a longer prompt\'s cache, which then decode as each alone (%s positions, smeared keys %s, canon %s)', (positionEncoding, smearKeys, canon) => {
    const model = variantModel(positionEncoding, smearKeys, canon, 12);
    model.blocks.forEach((block, i) => block.attn.smear?.assign(tf.tensor1d(Array.from({ length: config.nHead }, (_, h) => 0.7 * (h + 1) - i))));
    const feed = (ids: number[][], cache: KVCache): tf.Tensor2D => {
      const idx = tf.tensor2d(ids, [ids.length, ids[0]!.length], 'int32');
      const logits = model.forwardCached(idx, cache); // [B, V]
      idx.dispose();
      return logits;
    };
    const gap = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
    const long = [[9, 8, 7, 6, 5, 4, 3, 2], [1, 2, 3, 4, 5, 6, 7, 8]];
    const host = model.createCache(2, { padding: [2, 0], keepKeys: true });
    feed([[0, 0, ...long[0]!.slice(0, 6)], long[1]!], host).dispose();
    // Row 0 holds 6 real positions; prefixes of 3 and 6 of it, and of 5 of row 1, then one more token each.
    const picks = [{ row: 0, length: 3 }, { row: 1, length: 5 }, { row: 0, length: 6 }];
    const prefixes = host.prefixes(picks);
    expect(prefixes.padding).toEqual([3, 1, 0]);
    const together = feed([[30], [31], [32]], prefixes); // [3, V]
    picks.forEach(({ row, length }, i) => {
      const cache = model.createCache(1);
      feed([long[row]!.slice(0, length)], cache).dispose();
      const alone = feed([[30 + i]], cache); // [1, V]
      expect(tf.tidy(() => gap(tf.slice(together, [i, 0], [1, -1]), alone))).toBeLessThan(1e-4);
      tf.dispose(alone);
      cache.dispose();
    });
    expect(() => host.prefixes([{ row: 0, length: 7 }])).toThrow(/prefix length/);
    if (smearKeys || canon) {
      const plain = model.createCache(1);
      feed([[1, 2, 3]], plain).dispose();
      expect(() => plain.prefixes([{ row: 0, length: 2 }])).toThrow(/keepKeys/);
      plain.dispose();
    }
    tf.dispose(together);
    prefixes.dispose();
    host.dispose();
    model.dispose();
  });

  it('with smeared keys mixes in the previous key by a learned weight per head, which trains', () => {
    const model = new GPT({ ...config, positionEncoding: 'rope', smearKeys: true }, { seed: 9 });
    const plain = new GPT({ ...config, positionEncoding: 'rope' }, { seed: 9 });
    expect([...model.namedWeights().keys()]).toContain('h.0.attn.smear');
    expect(model.paramCount()).toBe(plain.paramCount() + config.nLayer * config.nHead);
    const idx = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], 'int32');
    // The first position has no previous key; later positions differ from plain attention's.
    const [a, b] = [model.forward(idx), plain.forward(idx)];
    const gaps = tf.tidy(() => Array.from(tf.max(tf.abs(tf.sub(a, b)), [0, 2]).dataSync()));
    expect(gaps[1]).toBeGreaterThan(1e-6);
    const smear = model.blocks[0]!.attn.smear!;
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(model.forward(idx, { training: true }))) as tf.Scalar, [smear]);
    expect(Array.from(grads[smear.name]!.dataSync()).some((g) => g !== 0)).toBe(true);
    tf.dispose([idx, a, b, ...Object.values(grads)]);
    model.dispose();
    plain.dispose();
  });

  it('learns a fixed toy batch: loss falls over 30 Adam steps with a constant tensor count', () => {
    const model = new GPT(config, { seed: 7 });
    const { idx, targets } = toyBatch(4, 16);
    const optimizer = tf.train.adam(1e-2);
    const losses: number[] = [];
    const counts: number[] = [];
    for (let step = 0; step < 30; step++) {
      const loss = optimizer.minimize(
        () => crossEntropy(model.forward(idx, { training: true }), targets),
        true,
        model.trainableVariables(),
      )!;
      losses.push(loss.dataSync()[0]!);
      loss.dispose();
      counts.push(tf.memory().numTensors);
    }
    expect(losses[0]).toBeGreaterThan(Math.log(VOCAB) - 0.5); // near uniform at init
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.5);
    // Adam creates its moment variables on the first step; after that nothing may leak.
    expect(new Set(counts.slice(1)).size).toBe(1);
    optimizer.dispose();
    tf.dispose([idx, targets]);
    model.dispose();
  });
});

describe('layerNorm', () => {
  it('has the gradient autodiff gives for the plain formula (cpu, within 1e-5)', async () => {
    await setupBackend('cpu');
    const x = tf.randomNormal([6, 10], 0, 2, 'float32', 1);
    const w = tf.randomNormal([10], 1, 0.5, 'float32', 2);
    const b = tf.randomNormal([10], 0, 0.5, 'float32', 3);
    const dy = tf.randomNormal([6, 10], 0, 1, 'float32', 4);
    const plain = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor): tf.Tensor => {
      const centered = tf.sub(xi, tf.mean(xi, -1, true));
      const variance = tf.mean(tf.square(centered), -1, true);
      return tf.add(tf.mul(tf.div(centered, tf.sqrt(tf.add(variance, 1e-5))), wi), bi);
    };
    const custom = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor): tf.Tensor => layerNorm(xi as tf.Tensor2D, wi, bi);
    const ref = tf.grads(plain)([x, w, b], dy);
    const got = tf.grads(custom)([x, w, b], dy);
    const values = [plain(x, w, b), custom(x, w, b)];
    const diffs = [tf.sub(values[0]!, values[1]!), ...ref.map((r, i) => tf.sub(r, got[i]!))].map((d) => tf.max(tf.abs(d)).dataSync()[0]!);
    for (const d of diffs) expect(d).toBeLessThan(1e-5);
    tf.dispose([x, w, b, dy, ...ref, ...got, ...values]);
  });
});

describe('gelu', () => {
  it('has the value and gradient autodiff gives for the tanh formula (cpu, within 1e-5)', async () => {
    await setupBackend('cpu');
    const x = tf.randomNormal([6, 10], 0, 2, 'float32', 5);
    const dy = tf.randomNormal([6, 10], 0, 1, 'float32', 6);
    const plain = (xi: tf.Tensor): tf.Tensor =>
      tf.mul(tf.mul(xi, 0.5), tf.add(1, tf.tanh(tf.mul(tf.add(xi, tf.mul(tf.pow(xi, 3), 0.044715)), Math.sqrt(2 / Math.PI)))));
    const custom = (xi: tf.Tensor): tf.Tensor => gelu(xi as tf.Tensor2D);
    const diffs = [tf.sub(plain(x), custom(x)), tf.sub(tf.grad(plain)(x, dy), tf.grad(custom)(x, dy))].map((d) => tf.max(tf.abs(d)).dataSync()[0]!);
    for (const d of diffs) expect(d).toBeLessThan(1e-5);
    tf.dispose([x, dy]);
  });
});

describe('GPT config checks', () => {
  it('rejects a head count that does not divide the width', () => {
    expect(() => new GPT({ ...config, nHead: 5 }, { seed: 0 })).toThrow(/nHead/);
  });
  it('rejects a sequence longer than blockSize', async () => {
    await setupBackend('cpu');
    const model = new GPT(config, { seed: 0 });
    const idx = tf.zeros([1, config.blockSize + 1], 'int32') as tf.Tensor2D;
    expect(() => model.forward(idx)).toThrow(/blockSize/);
    idx.dispose();
    model.dispose();
  });
});
