/**
 * A small decoder-only transformer (GPT-2 style) in TensorFlow.js, read leaf to root:
 * LayerNorm → causal self-attention → MLP → block → config → GPT.
 *
 * Pre-LayerNorm blocks, GELU (tanh form, as GPT-2), a tied output head (logits = x · wteᵀ),
 * GPT-2 initialisation (normal 0.02, residual projections scaled by 1/√(2·nLayer)), seeded.
 * Weights are named like a reference GPT (`wte.weight`, `h.0.attn.c_attn.weight`, `ln_f.bias`)
 * and linear weights are stored [in, out] like GPT-2's Conv1D, so they map one to one.
 *
 * tfjs pitfalls this file avoids on purpose: `stridedSlice` has no gradient (we use `slice`),
 * and `tf.where` on a condition computed from the differentiated input has none either, so the
 * causal mask is an additive constant of 0 / -1e9.
 */
import * as tf from './tf.js';
import { matMul } from './kernels/matmul.js';
import { POSITION_ENCODINGS, type PositionEncoding } from './config.js';

/** Additive mask value for positions a query may not see; exp() of it underflows to 0. */
const MASKED = -1e9;

/**
 * Deterministic per-weight seeds: each new weight takes the next seed after the model seed.
 * Never 0: tfjs treats a seed of 0 as "no seed" and draws from Math.random.
 */
class SeedSequence {
  private next: number;
  constructor(seed: number) {
    this.next = seed * 1000 + 1;
  }
  take(): number {
    return this.next++;
  }
}

/** Linear layer y = x·W + b with W stored [in, out]. */
class Linear {
  readonly weight: tf.Variable; // [in, out]
  readonly bias: tf.Variable; // [out]
  constructor(opts: { nIn: number; nOut: number; std: number; seeds: SeedSequence }) {
    this.weight = tf.variable(
      tf.randomNormal([opts.nIn, opts.nOut], 0, opts.std, 'float32', opts.seeds.take()),
    );
    this.bias = tf.variable(tf.zeros([opts.nOut]));
  }
  /** x [N, in] → [N, out] */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(matMul(x, this.weight as tf.Tensor2D), this.bias); // [N, out]
  }
}

/**
 * LayerNorm over the last axis: x [N, D], weight [D], bias [D] → [N, D] (eps 1e-5, as PyTorch).
 * The gradient is the closed form rather than autodiff through mean, variance and rsqrt op by op
 * (half the kernels in the backward pass):
 *   g = dy·w,  dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)),  dw = Σ_N dy·x̂,  db = Σ_N dy.
 */
export const layerNorm = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, weight, bias, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
  const centered = tf.sub(x, tf.mean(x, -1, true)); // [N, D]
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centered), -1, true), 1e-5)); // [N, 1]
  const xhat = tf.mul(centered, rstd); // [N, D]
  save([xhat, rstd, weight]);
  return {
    value: tf.add(tf.mul(xhat, weight), bias) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sxhat, srstd, sweight] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
      const g = tf.mul(dy, sweight); // [N, D]
      const gMean = tf.mean(g, -1, true); // [N, 1]
      const gxMean = tf.mean(tf.mul(g, sxhat), -1, true); // [N, 1]
      const dx = tf.mul(tf.sub(tf.sub(g, gMean), tf.mul(sxhat, gxMean)), srstd); // [N, D]
      return [dx, tf.sum(tf.mul(dy, sxhat), 0), tf.sum(dy, 0)];
    },
  };
}) as (x: tf.Tensor2D, weight: tf.Tensor, bias: tf.Tensor) => tf.Tensor2D;

/** LayerNorm with learned scale and shift. */
class LayerNorm {
  readonly weight: tf.Variable; // [D]
  readonly bias: tf.Variable; // [D]
  constructor(nEmbd: number) {
    this.weight = tf.variable(tf.ones([nEmbd]));
    this.bias = tf.variable(tf.zeros([nEmbd]));
  }
  /** x [N, D] → [N, D] */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return layerNorm(x, this.weight, this.bias);
  }
}

/**
 * Rotary position embedding (RoPE, Su et al. 2021, as in GPT-NeoX and Llama): each pair of
 * channels (i, i + hs/2) of a query or key is rotated by the angle pos · θ_i, so the score of two
 * positions depends on their distance only. Copying "the value three tokens after the name" is
 * then the same operation wherever a document sits, which learned absolute positions have to
 * learn again for every offset.
 *
 *   rope(x) = x·cos + rotateHalf(x)·sin,   rotateHalf([x1, x2]) = [−x2, x1]
 *
 * rotateHalf is a product with a fixed signed permutation [hs, hs], so the gradient is the
 * transposed product — no slicing and concatenation in the backward pass.
 */
class Rotary {
  /** cos and sin of pos · θ_i for every position and channel. */
  private readonly cos: tf.Tensor2D; // [blockSize, hs]
  private readonly sin: tf.Tensor2D; // [blockSize, hs]
  /** rotateHalf as a matrix: x · R = [−x2, x1]. */
  private readonly rotate: tf.Tensor2D; // [hs, hs]

  constructor(blockSize: number, headSize: number) {
    const half = headSize / 2;
    const angles = new Float32Array(blockSize * headSize);
    for (let p = 0; p < blockSize; p++) {
      for (let i = 0; i < headSize; i++) angles[p * headSize + i] = p * Math.pow(10000, -(i % half) / half);
    }
    const r = new Float32Array(headSize * headSize);
    for (let i = 0; i < half; i++) {
      r[(i + half) * headSize + i] = -1; // out[i] = −x[i + half]
      r[i * headSize + i + half] = 1; // out[i + half] = x[i]
    }
    [this.cos, this.sin, this.rotate] = tf.tidy(() => {
      const a = tf.tensor2d(angles, [blockSize, headSize]);
      return [tf.cos(a), tf.sin(a), tf.tensor2d(r, [headSize, headSize])];
    }) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  }

  /** cos and sin for `positions`: the first of each row's t, or one per token [B, t]. */
  tables(position: number | tf.Tensor2D, b: number, t: number): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    const hs = this.cos.shape[1];
    const pick = (table: tf.Tensor2D): tf.Tensor4D =>
      typeof position === 'number'
        ? (tf.reshape(tf.slice(table, [position, 0], [t, hs]), [1, 1, t, hs]) as tf.Tensor4D) // [1, 1, t, hs]
        : (tf.reshape(tf.gather(table, tf.reshape(position, [b * t])), [b, 1, t, hs]) as tf.Tensor4D); // [B, 1, t, hs]
    return { cos: pick(this.cos), sin: pick(this.sin) };
  }

  /** x [B, nh, t, hs] rotated by the angles in `tables` → [B, nh, t, hs]. */
  apply(x: tf.Tensor4D, tables: { cos: tf.Tensor4D; sin: tf.Tensor4D }): tf.Tensor4D {
    const [b, nh, t, hs] = x.shape;
    const turned = tf.reshape(matMul(tf.reshape(x, [b * nh * t, hs]) as tf.Tensor2D, this.rotate), [b, nh, t, hs]); // [B, nh, t, hs]
    return tf.add(tf.mul(x, tables.cos), tf.mul(turned, tables.sin)) as tf.Tensor4D; // [B, nh, t, hs]
  }

  dispose(): void {
    tf.dispose([this.cos, this.sin, this.rotate]);
  }
}

/** The rotation and this forward pass's angles, shared by every layer. */
type RotaryInput = { rope: Rotary; tables: { cos: tf.Tensor4D; sin: tf.Tensor4D } };

/** Keys and values of one layer for the positions seen so far. */
type LayerCache = {
  k: tf.Tensor4D; // [B, nh, Tc, hs]
  v: tf.Tensor4D; // [B, nh, Tc, hs]
  /** With smeared keys: the last position's key before smearing, which the next position mixes in. */
  lastKey?: tf.Tensor4D; // [B, nh, 1, hs]
  /** With smeared keys, in a cache that others take prefixes from: every position's key before smearing. */
  keys?: tf.Tensor4D; // [B, nh, Tc, hs]
  /** With canon layers: the inputs each one saw at the last positions (see Canon). */
  canonA?: CanonCache;
  canonC?: CanonCache;
};

/** What a canon layer keeps of the positions seen so far. */
type CanonCache = {
  /** Its inputs at the last CANON_WIDTH − 1 positions (zeros before the first). */
  last: tf.Tensor3D; // [B, K−1, D]
  /** In a cache that others take prefixes from: its input at every position. */
  all?: tf.Tensor3D; // [B, Tc, D]
};

/** Taps of a canon layer: the position itself and the CANON_WIDTH − 1 before it. */
export const CANON_WIDTH = 4;

/**
 * A canon layer (Allen-Zhu 2025, "Physics of Language Models: Part 4.1"; Primer's depthwise
 * convolution, So et al. 2021): a causal convolution along the sequence, one weight per channel
 * and tap, added to its input:
 *   y_t = u_t + Σ_{i<K} w_i ⊙ u_{t−i},   K = CANON_WIDTH, w = 0 at the start,
 * where u_{t−i} = 0 when position t−i lies before the token's document (packed rows, left
 * padding). Each position then carries the few tokens before it, so matching a span of the
 * source ("the digit after `-1, ` in the call") takes one attention, not several layers.
 */
class Canon {
  readonly weight: tf.Variable; // [K, D]
  constructor(d: number) {
    this.weight = tf.variable(tf.zeros([CANON_WIDTH, d]));
  }

  /**
   * u [B·t, D] → y [B·t, D] and what the cache keeps. `lagMasks[i−1]` [B·t, 1] is 1 where the
   * token's lag-i predecessor is in its document (absent when every predecessor in view is).
   */
  apply(u: tf.Tensor2D, opts: { batch: number; past?: CanonCache; keepAll?: boolean; lagMasks?: tf.Tensor2D[] }): { y: tf.Tensor2D; present: CanonCache } {
    const b = opts.batch;
    const [n, d] = u.shape;
    const t = n / b;
    const lags = CANON_WIDTH - 1;
    const u3 = tf.reshape(u, [b, t, d]) as tf.Tensor3D; // [B, t, D]
    const before = opts.past?.last ?? (tf.zeros([b, lags, d]) as tf.Tensor3D); // [B, K−1, D]
    const full = tf.concat([before, u3], 1) as tf.Tensor3D; // [B, K−1+t, D]
    let y: tf.Tensor2D = tf.add(u, tf.mul(u, tf.slice(this.weight, [0, 0], [1, d]))) as tf.Tensor2D; // [B·t, D]
    for (let i = 1; i <= lags; i++) {
      let shifted = tf.reshape(tf.slice(full, [0, lags - i, 0], [b, t, d]), [b * t, d]) as tf.Tensor2D; // u_{t−i}, [B·t, D]
      const mask = opts.lagMasks?.[i - 1];
      if (mask) shifted = tf.mul(shifted, mask);
      y = tf.add(y, tf.mul(shifted, tf.slice(this.weight, [i, 0], [1, d]))) as tf.Tensor2D;
    }
    const present: CanonCache = { last: tf.slice(full, [0, t, 0], [b, lags, d]) as tf.Tensor3D };
    if (opts.keepAll) present.all = opts.past?.all ? (tf.concat([opts.past.all, u3], 1) as tf.Tensor3D) : u3;
    return { y, present };
  }
}

/** The options every block and attention layer takes. */
type LayerOptions = {
  batch: number;
  mask: tf.Tensor;
  past?: LayerCache;
  /** Keep every position's key before smearing in `present.keys` (see KVCache.prefixes). */
  keepKeys?: boolean;
  dropout: (t: tf.Tensor) => tf.Tensor;
  rotary?: RotaryInput;
  /**
   * With smeared keys and packed documents or left padding: [B, 1, t, 1] of 1 where the
   * previous position belongs to the same document, 0 at a document's first token (and on
   * padding); absent when every new position has its predecessor in view.
   */
  samePrevious?: tf.Tensor4D;
  /** With canon layers and packed documents or left padding: see Canon.apply. */
  lagMasks?: tf.Tensor2D[];
};

/**
 * Multi-head causal self-attention with one fused q/k/v projection.
 *
 * With `smearKeys`, each head's key mixes in the previous position's key before positions are
 * applied (the "smeared key" of Olsson et al. 2022, "In-context learning and induction heads"):
 *   k'_t = σ(a_h)·k_t + (1 − σ(a_h))·k_{t−1},   a_h learned per head, 0 at the start,
 * and k_{−1} = 0 at a document's first token. A key then carries the token before it, so one
 * layer can find "the token after the last place this token occurred" — the copy an argument
 * list needs from the call in the source to the call frame — instead of two layers having to
 * learn it together.
 */
class CausalSelfAttention {
  readonly cAttn: Linear;
  readonly cProj: Linear;
  /** Per-head mixing logits a_h with smeared keys, else null. */
  readonly smear: tf.Variable | null; // [nh]
  constructor(
    private readonly config: ModelConfig,
    seeds: SeedSequence,
  ) {
    const d = config.nEmbd;
    this.cAttn = new Linear({ nIn: d, nOut: 3 * d, std: 0.02, seeds });
    this.cProj = new Linear({ nIn: d, nOut: d, std: 0.02 / Math.sqrt(2 * config.nLayer), seeds });
    this.smear = config.smearKeys ? tf.variable(tf.zeros([config.nHead])) : null;
  }

  /** k [B, nh, T, hs] → the smeared keys [B, nh, T, hs] (see the class comment). */
  private smearKeys(k: tf.Tensor4D, smear: tf.Variable, past: LayerCache | undefined, samePrevious: tf.Tensor4D | undefined): tf.Tensor4D {
    const [b, nh, t, hs] = k.shape;
    const first = past?.lastKey ?? tf.zeros([b, nh, 1, hs]); // [B, nh, 1, hs]
    let previous = (t > 1 ? tf.concat([first, tf.slice(k, [0, 0, 0, 0], [b, nh, t - 1, hs])], 2) : first) as tf.Tensor4D; // [B, nh, T, hs]
    if (samePrevious) previous = tf.mul(previous, samePrevious);
    const gate = tf.reshape(tf.sigmoid(smear), [1, nh, 1, 1]); // [1, nh, 1, 1]
    return tf.add(tf.mul(k, gate), tf.mul(previous, tf.sub(1, gate))) as tf.Tensor4D; // [B, nh, T, hs]
  }

  /**
   * x [B·T, D] for B sequences of T new positions → [B·T, D].
   * `mask` [T, Tk] (or [B, 1, T, Tk], one per row) is added to the scores; `past` (if any) holds keys/values of earlier positions,
   * and the returned `present` holds past + new keys/values (Tk = past length + T).
   */
  apply(x: tf.Tensor2D, opts: LayerOptions): { y: tf.Tensor2D; present: LayerCache } {
    const { nEmbd: d, nHead: nh } = this.config;
    const hs = d / nh;
    const b = opts.batch;
    const t = x.shape[0] / b;
    // q, k and v each from their column block of c_attn: slicing the [D, 3D] weight is cheap,
    // slicing the [B·T, 3D] activations (and padding their gradients back) is not. `slice`, not
    // split/stridedSlice: slice has a gradient on every backend. `scale` is folded into the
    // weights for the same reason.
    const heads = (block: number, scale = 1): tf.Tensor4D => {
      let w = tf.slice(this.cAttn.weight, [0, block * d], [d, d]) as tf.Tensor2D; // [D, D]
      let bias = tf.slice(this.cAttn.bias, [block * d], [d]); // [D]
      if (scale !== 1) {
        w = tf.mul(w, scale);
        bias = tf.mul(bias, scale);
      }
      const y = tf.add(matMul(x, w), bias); // [B·T, D]
      return tf.transpose(tf.reshape(y, [b, t, nh, hs]), [0, 2, 1, 3]); // [B, nh, T, hs]
    };
    let q = heads(0, 1 / Math.sqrt(hs)); // [B, nh, T, hs], pre-scaled for the scores
    let k = heads(1); // [B, nh, T, hs]
    let lastKey: tf.Tensor4D | undefined;
    let keys: tf.Tensor4D | undefined;
    if (this.smear) {
      lastKey = tf.slice(k, [0, 0, t - 1, 0], [b, nh, 1, hs]) as tf.Tensor4D; // [B, nh, 1, hs]
      if (opts.keepKeys) keys = opts.past?.keys ? (tf.concat([opts.past.keys, k], 2) as tf.Tensor4D) : k; // [B, nh, Tk, hs]
      k = this.smearKeys(k, this.smear, opts.past, opts.samePrevious);
    }
    if (opts.rotary) {
      // Keys enter the cache rotated by their own positions, so cached decoding needs nothing more.
      q = opts.rotary.rope.apply(q, opts.rotary.tables);
      k = opts.rotary.rope.apply(k, opts.rotary.tables);
    }
    let v = heads(2); // [B, nh, T, hs]
    if (opts.past) {
      k = tf.concat([opts.past.k, k], 2); // [B, nh, Tk, hs]
      v = tf.concat([opts.past.v, v], 2); // [B, nh, Tk, hs]
    }
    const scores = tf.add(matMul(q, k, { transposeB: true }), opts.mask); // [B, nh, T, Tk]
    const att = opts.dropout(tf.softmax(scores)); // [B, nh, T, Tk]
    const out = matMul(att, v); // [B, nh, T, hs]
    const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b * t, d]) as tf.Tensor2D; // [B·T, D]
    const present: LayerCache = { k, v };
    if (lastKey) present.lastKey = lastKey;
    if (keys) present.keys = keys;
    return { y: opts.dropout(this.cProj.apply(merged)) as tf.Tensor2D, present };
  }
}

/** GELU's 2u = a·x + b·x³ (u = √(2/π)·(x + 0.044715·x³)). */
const GELU_A = 2 * Math.sqrt(2 / Math.PI);
const GELU_B = GELU_A * 0.044715;

/**
 * GELU, tanh approximation (GPT-2's `gelu_new`, PyTorch `GELU(approximate='tanh')`), written
 * with the identity 0.5·(1 + tanh(u)) = sigmoid(2u): wasm runs sigmoid vectorised (XNNPACK) but
 * tanh as a scalar loop about 100× slower. With s = sigmoid(2u), y = x·s and the gradient is the
 * closed form dy·(s + x·s·(1 − s)·(a + 3b·x²)): 9 element-wise ops instead of autodiff's ~20.
 */
export const gelu = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
  const x2 = tf.square(x); // [N, 4D]
  const s = tf.sigmoid(tf.mul(x, tf.add(tf.mul(x2, GELU_B), GELU_A))); // [N, 4D]
  save([x, x2, s]);
  return {
    value: tf.mul(x, s) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sx2, ss] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
      const slope = tf.add(tf.mul(sx2, 3 * GELU_B), GELU_A); // d(2u)/dx, [N, 4D]
      const dsig = tf.mul(ss, tf.sub(1, ss)); // [N, 4D]
      return tf.mul(dy, tf.add(ss, tf.mul(tf.mul(sx, dsig), slope))); // [N, 4D]
    },
  };
}) as (x: tf.Tensor2D) => tf.Tensor2D;

/** Position-wise MLP: D → 4D → GELU → D. */
class MLP {
  readonly cFc: Linear;
  readonly cProj: Linear;
  constructor(config: ModelConfig, seeds: SeedSequence) {
    const d = config.nEmbd;
    this.cFc = new Linear({ nIn: d, nOut: 4 * d, std: 0.02, seeds });
    this.cProj = new Linear({ nIn: 4 * d, nOut: d, std: 0.02 / Math.sqrt(2 * config.nLayer), seeds });
  }
  /** x [N, D] → [N, D] */
  apply(x: tf.Tensor2D, dropout: (t: tf.Tensor) => tf.Tensor): tf.Tensor2D {
    return dropout(this.cProj.apply(gelu(this.cFc.apply(x)))) as tf.Tensor2D; // [N, D]
  }
}

/**
 * Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); with canon layers,
 * x + attn(canon_a(ln_1(x))), then x + mlp(canon_c(ln_2(x))).
 */
class Block {
  readonly ln1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;
  readonly canonA: Canon | null;
  readonly canonC: Canon | null;
  constructor(config: ModelConfig, seeds: SeedSequence) {
    this.ln1 = new LayerNorm(config.nEmbd);
    this.attn = new CausalSelfAttention(config, seeds);
    this.ln2 = new LayerNorm(config.nEmbd);
    this.mlp = new MLP(config, seeds);
    this.canonA = config.canon ? new Canon(config.nEmbd) : null;
    this.canonC = config.canon ? new Canon(config.nEmbd) : null;
  }
  /** x [B·T, D] → [B·T, D] plus this layer's keys/values. */
  apply(x: tf.Tensor2D, opts: LayerOptions): { y: tf.Tensor2D; present: LayerCache } {
    const canonOpts = (past: CanonCache | undefined) => ({ batch: opts.batch, past, keepAll: opts.keepKeys, lagMasks: opts.lagMasks });
    let u = this.ln1.apply(x); // [B·T, D]
    let canonA: CanonCache | undefined;
    if (this.canonA) ({ y: u, present: canonA } = this.canonA.apply(u, canonOpts(opts.past?.canonA)));
    const a = this.attn.apply(u, opts);
    const h = tf.add(x, a.y) as tf.Tensor2D; // [B·T, D]
    let w = this.ln2.apply(h); // [B·T, D]
    let canonC: CanonCache | undefined;
    if (this.canonC) ({ y: w, present: canonC } = this.canonC.apply(w, canonOpts(opts.past?.canonC)));
    const y = tf.add(h, this.mlp.apply(w, opts.dropout)) as tf.Tensor2D; // [B·T, D]
    const present = a.present;
    if (canonA) present.canonA = canonA;
    if (canonC) present.canonC = canonC;
    return { y, present };
  }
}

export interface ModelConfig {
  /** Number of token ids (from the tokenizer); no default, it comes from the tokenizer. */
  vocabSize: number;
  /** Context length in tokens (positions learned up to this); default 256. */
  blockSize: number;
  /** Number of transformer blocks; default 4. */
  nLayer: number;
  /** Attention heads per block; must divide nEmbd; default 4. */
  nHead: number;
  /** Width of the residual stream; default 128. */
  nEmbd: number;
  /** Dropout probability used when training (0 turns it off); default 0. */
  dropout: number;
  /**
   * How positions enter: `learned` absolute embeddings added to the tokens (GPT-2's `wpe`), or
   * `rope`, rotary embeddings on queries and keys (no `wpe`). Configs from before this field
   * read as `learned`.
   */
  positionEncoding?: PositionEncoding;
  /**
   * Smeared keys (see CausalSelfAttention): each key mixes in the previous position's with a
   * learned per-head weight. Configs from before this field read as false.
   */
  smearKeys?: boolean;
  /**
   * Canon layers (see Canon) before each block's attention and MLP. Configs from before this
   * field read as false.
   */
  canon?: boolean;
}

/** Checks a config and throws a clear Error naming the first bad field. */
export function validateModelConfig(config: ModelConfig): void {
  for (const key of ['vocabSize', 'blockSize', 'nLayer', 'nHead', 'nEmbd'] as const) {
    const value = config[key];
    if (!Number.isInteger(value) || value <= 0) {
      throw new Error(`Expected \`${key}\` to be a positive integer, got ${value}`);
    }
  }
  if (config.nEmbd % config.nHead !== 0) {
    throw new Error(`Expected \`nHead\` (${config.nHead}) to divide \`nEmbd\` (${config.nEmbd})`);
  }
  if (!(config.dropout >= 0 && config.dropout < 1)) {
    throw new Error(`Expected \`dropout\` in [0, 1), got ${config.dropout}`);
  }
  const encoding = config.positionEncoding ?? 'learned';
  if (!POSITION_ENCODINGS.includes(encoding)) {
    throw new Error(`Expected \`positionEncoding\` to be one of ${POSITION_ENCODINGS.join(', ')}, got ${String(encoding)}`);
  }
  if (encoding === 'rope' && (config.nEmbd / config.nHead) % 2 !== 0) {
    throw new Error(`Rotary positions need an even head size, got ${config.nEmbd / config.nHead}`);
  }
}

/**
 * Keys/values of every layer for the positions decoded so far. Owned by the caller: `dispose()`
 * it when done.
 *
 * Rows of different prompt lengths share a cache by left padding: row r's first `padding[r]`
 * positions are filler that no query sees, and its positions count from its first real token,
 * so each row decodes as it would alone. Prompts that are prefixes of a longer one need no
 * prefill of their own: `prefixes` cuts their keys and values out of the longer prompt's cache.
 */
export class KVCache {
  /** Number of positions held (padding included). */
  length = 0;
  /** Per layer, or empty before the first forwardCached call. */
  layers: LayerCache[] = [];
  /** Whether every position's key before smearing is kept, for `prefixes`. */
  readonly keepKeys: boolean;
  private pad: number[];

  constructor(batch: number, opts: { padding?: readonly number[]; keepKeys?: boolean } = {}) {
    const { padding } = opts;
    if (!Number.isInteger(batch) || batch <= 0) throw new Error(`Expected \`batch\` to be a positive integer, got ${batch}`);
    if (padding !== undefined) {
      if (padding.length !== batch) throw new Error(`Expected one padding per row (${batch}), got ${padding.length}`);
      const bad = padding.find((p) => !Number.isInteger(p) || p < 0);
      if (bad !== undefined) throw new Error(`Expected each row's padding to be a non-negative integer, got ${bad}`);
    }
    this.pad = padding ? [...padding] : new Array<number>(batch).fill(0);
    this.keepKeys = opts.keepKeys ?? false;
  }

  /** Rows held. */
  get batch(): number {
    return this.pad.length;
  }

  /** Leading padding positions of each row. */
  get padding(): readonly number[] {
    return this.pad;
  }

  /**
   * Keeps only `rows` (indices into the current rows, in the order given), as when some
   * continuations have ended, then drops the leading positions that are padding in every row
   * left, so the cache never holds more positions than its longest remaining row.
   */
  keepRows(rows: readonly number[]): void {
    if (rows.length === 0) throw new Error('Expected at least one row to keep');
    const bad = rows.find((r) => !Number.isInteger(r) || r < 0 || r >= this.batch);
    if (bad !== undefined) throw new Error(`Expected row indices in [0, ${this.batch}), got ${bad}`);
    const pad = rows.map((r) => this.pad[r]!);
    const drop = this.layers.length > 0 ? Math.min(...pad) : 0;
    const same = rows.length === this.batch && rows.every((r, i) => r === i);
    if (!same || drop > 0) {
      const kept = tf.tidy(() => {
        const index = tf.tensor1d([...rows], 'int32'); // [B']
        // Rows `rows` of a cached tensor ([B, nh, Tc, hs] keys and values, [B, Tc, D] canon inputs),
        // from position `from` of its time axis (the second last) on.
        const pick = <T extends tf.Tensor3D | tf.Tensor4D>(x: T, from: number): T => {
          // A clone of a tensor kept whole, since the old layers are disposed below.
          const rowsOf = (same ? tf.clone(x) : tf.gather(x, index, 0)) as T; // [B', …, Tc, ·]
          if (from === 0) return rowsOf;
          const time = x.rank - 2;
          return tf.slice(rowsOf, rowsOf.shape.map((_, i) => (i === time ? from : 0)), rowsOf.shape.map((n, i) => (i === time ? n - from : n))) as T;
        };
        const canon = (c: CanonCache): CanonCache => ({ last: pick(c.last, 0), ...(c.all ? { all: pick(c.all, drop) } : {}) });
        return this.layers.map((layer): LayerCache => {
          const out: LayerCache = { k: pick(layer.k, drop), v: pick(layer.v, drop) }; // [B', nh, Tc − drop, hs]
          if (layer.lastKey) out.lastKey = pick(layer.lastKey, 0); // [B', nh, 1, hs]
          if (layer.keys) out.keys = pick(layer.keys, drop); // [B', nh, Tc − drop, hs]
          if (layer.canonA) out.canonA = canon(layer.canonA);
          if (layer.canonC) out.canonC = canon(layer.canonC);
          return out;
        });
      });
      const length = this.length;
      this.dispose();
      this.layers = kept;
      this.length = length - drop;
    }
    this.pad = pad.map((p) => p - drop);
  }

  /**
   * A new cache whose row i holds the first `length` real positions of this cache's row `row`,
   * left-padded to the longest: what feeding those prompt prefixes would give (a position's keys
   * and values depend on earlier tokens only), without running the model. With smeared keys
   * this cache must keep its keys (`keepKeys`), for each prefix's last key before smearing.
   */
  prefixes(picks: readonly { row: number; length: number }[]): KVCache {
    if (picks.length === 0) throw new Error('Expected at least one prefix');
    if (this.layers.length === 0) throw new Error('Expected a cache that holds positions');
    for (const { row, length } of picks) {
      if (!Number.isInteger(row) || row < 0 || row >= this.batch) throw new Error(`Expected row indices in [0, ${this.batch}), got ${row}`);
      const held = this.length - this.pad[row]!;
      if (!Number.isInteger(length) || length < 1 || length > held) {
        throw new Error(`Expected a prefix length in [1, ${held}] for row ${row}, got ${length}`);
      }
    }
    if (this.layers.some((layer) => layer.lastKey && !layer.keys)) {
      throw new Error('Prefixes of a cache with smeared keys need its keys: create it with `keepKeys`');
    }
    if (this.layers.some((layer) => (layer.canonA && !layer.canonA.all) || (layer.canonC && !layer.canonC.all))) {
      throw new Error('Prefixes of a cache with canon layers need their inputs: create it with `keepKeys`');
    }
    const longest = Math.max(...picks.map((p) => p.length));
    const padding = picks.map((p) => longest - p.length);
    // Source positions in the [B·Tc] flattened rows: padding repeats a row's first real position.
    const at = new Int32Array(picks.length * longest);
    const lastAt = new Int32Array(picks.length);
    // A canon layer's last CANON_WIDTH − 1 inputs before each prefix's end (zero before its first).
    const lags = CANON_WIDTH - 1;
    const canonAt = new Int32Array(picks.length * lags);
    const canonIn = new Float32Array(picks.length * lags);
    picks.forEach(({ row, length }, i) => {
      const first = row * this.length + this.pad[row]!;
      for (let q = 0; q < longest; q++) at[i * longest + q] = first + Math.max(0, q - padding[i]!);
      lastAt[i] = first + length - 1;
      for (let j = 0; j < lags; j++) {
        const pos = length - lags + j;
        canonAt[i * lags + j] = first + Math.max(0, pos);
        canonIn[i * lags + j] = pos >= 0 ? 1 : 0;
      }
    });
    const out = new KVCache(picks.length, { padding });
    out.layers = tf.tidy(() => {
      const take = (x: tf.Tensor4D, index: Int32Array, t: number): tf.Tensor4D => {
        const [b, nh, tc, hs] = x.shape;
        const flat = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b * tc, nh * hs]); // [B·Tc, nh·hs]
        const picked = tf.reshape(tf.gather(flat, tf.tensor1d(index, 'int32')), [picks.length, t, nh, hs]); // [B', t, nh, hs]
        return tf.transpose(picked, [0, 2, 1, 3]) as tf.Tensor4D; // [B', nh, t, hs]
      };
      const canonLast = (c: CanonCache): CanonCache => {
        const [b, tc, d] = c.all!.shape;
        const picked = tf.reshape(tf.gather(tf.reshape(c.all!, [b * tc, d]), tf.tensor1d(canonAt, 'int32')), [picks.length, lags, d]); // [B', K−1, D]
        return { last: tf.mul(picked, tf.tensor3d(canonIn, [picks.length, lags, 1])) as tf.Tensor3D };
      };
      return this.layers.map((layer): LayerCache => {
        const prefix: LayerCache = { k: take(layer.k, at, longest), v: take(layer.v, at, longest) }; // [B', nh, longest, hs]
        if (layer.keys) prefix.lastKey = take(layer.keys, lastAt, 1); // [B', nh, 1, hs]
        if (layer.canonA) prefix.canonA = canonLast(layer.canonA);
        if (layer.canonC) prefix.canonC = canonLast(layer.canonC);
        return prefix;
      });
    });
    out.length = longest;
    return out;
  }

  dispose(): void {
    for (const layer of this.layers) {
      layer.k.dispose();
      layer.v.dispose();
      layer.lastKey?.dispose();
      layer.keys?.dispose();
      for (const c of [layer.canonA, layer.canonC]) {
        c?.last.dispose();
        c?.all?.dispose();
      }
    }
    this.layers = [];
    this.length = 0;
  }
}

export class GPT {
  readonly config: ModelConfig;
  readonly wte: tf.Variable; // [V, D], also the output head
  /** Learned positions; null with rotary positions. */
  readonly wpe: tf.Variable | null; // [blockSize, D]
  private readonly rope: Rotary | null;
  readonly blocks: Block[];
  readonly lnF: LayerNorm;
  /** Additive causal mask for full sequences: 0 on and below the diagonal, -1e9 above. */
  private readonly causalMask: tf.Tensor2D; // [blockSize, blockSize]
  private readonly seed: number;
  /** Counts dropout masks drawn, so a seeded run draws the same masks. */
  private dropoutDraws = 0;

  constructor(config: ModelConfig, opts: { seed: number }) {
    validateModelConfig(config);
    if (!Number.isInteger(opts.seed) || opts.seed < 0) {
      throw new Error(`Expected \`seed\` to be a non-negative integer, got ${opts.seed}`);
    }
    this.config = { ...config };
    this.seed = opts.seed;
    const seeds = new SeedSequence(opts.seed);
    const { vocabSize: v, blockSize: t, nEmbd: d } = config;
    this.wte = tf.variable(tf.randomNormal([v, d], 0, 0.02, 'float32', seeds.take()));
    // The seed is drawn either way, so both encodings give the blocks the same initial weights.
    const wpeSeed = seeds.take();
    const rope = config.positionEncoding === 'rope';
    this.wpe = rope ? null : tf.variable(tf.randomNormal([t, d], 0, 0.02, 'float32', wpeSeed));
    this.rope = rope ? new Rotary(t, d / config.nHead) : null;
    this.blocks = Array.from({ length: config.nLayer }, () => new Block(this.config, seeds));
    this.lnF = new LayerNorm(d);
    this.causalMask = tf.tidy(() =>
      tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([t, t]), -1, 0)), MASKED),
    ) as tf.Tensor2D;
  }

  /** Dropout state, for checkpoints that must resume with the same masks. */
  get rngState(): number {
    return this.dropoutDraws;
  }
  set rngState(draws: number) {
    this.dropoutDraws = draws;
  }

  /**
   * Logits for every position: idx [B, T] int32 → [B, T, V].
   *
   * A row may pack several documents. `documents` [B, T] int32 numbers them within each row:
   * a position then attends only to earlier positions of its own document (a block-diagonal
   * causal mask), and `positions` [B, T] int32 gives each token its index within its document,
   * so every document sees the positions it would see alone — as at evaluation, where each
   * prompt starts at 0. Without them the row is one document from position 0.
   */
  forward(
    idx: tf.Tensor2D,
    opts: { training?: boolean; documents?: tf.Tensor2D; positions?: tf.Tensor2D } = {},
  ): tf.Tensor3D {
    const [b, t] = idx.shape;
    if (t > this.config.blockSize) {
      throw new Error(`Sequence length ${t} exceeds the model's blockSize ${this.config.blockSize}`);
    }
    if ((opts.documents === undefined) !== (opts.positions === undefined)) {
      throw new Error('Give `documents` and `positions` together');
    }
    return tf.tidy(() => {
      let mask: tf.Tensor = tf.slice(this.causalMask, [0, 0], [t, t]); // [T, T]
      if (opts.documents) {
        // A constant of the batch (no gradient flows into it), so a comparison is fine here.
        const other = tf.notEqual(tf.reshape(opts.documents, [b, 1, t, 1]), tf.reshape(opts.documents, [b, 1, 1, t])); // [B, 1, T, T]
        mask = tf.add(mask, tf.mul(tf.cast(other, 'float32'), MASKED)); // [B, 1, T, T]
      }
      const { logits } = this.run(idx, { position: opts.positions ?? 0, mask, training: opts.training ?? false });
      return tf.reshape(logits, [b, t, this.config.vocabSize]) as tf.Tensor3D; // [B, T, V]
    });
  }

  /**
   * An empty key/value cache for `forwardCached`; `padding` gives each row's number of leading
   * filler tokens (left padding, see KVCache), which must all lie in the first call's tokens;
   * `keepKeys` keeps what `KVCache.prefixes` needs with smeared keys.
   */
  createCache(batch: number, opts: { padding?: readonly number[]; keepKeys?: boolean } = {}): KVCache {
    return new KVCache(batch, opts);
  }

  /**
   * Feed new tokens idx [B, t] after the positions the cache holds; returns the logits of the
   * last new position [B, V] and appends the new keys/values to the cache.
   */
  forwardCached(idx: tf.Tensor2D, cache: KVCache): tf.Tensor2D {
    const [b, t] = idx.shape;
    const all = this.forwardCachedAll(idx, cache); // [B, t, V]
    const last = tf.tidy(() => tf.reshape(tf.slice(all, [0, t - 1, 0], [b, 1, -1]), [b, this.config.vocabSize])) as tf.Tensor2D; // [B, V]
    all.dispose();
    return last;
  }

  /** As `forwardCached`, but the logits of every new position [B, t, V]. */
  forwardCachedAll(idx: tf.Tensor2D, cache: KVCache): tf.Tensor3D {
    const [b, t] = idx.shape;
    if (b !== cache.batch) {
      throw new Error(`Expected a batch of ${cache.batch} (the cache's), got ${b}`);
    }
    const start = cache.length;
    if (start + t > this.config.blockSize) {
      throw new Error(
        `Cache holds ${start} positions; ${t} more exceed the model's blockSize ${this.config.blockSize}`,
      );
    }
    const padding = cache.padding;
    const padded = padding.some((p) => p > 0);
    if (padded && start === 0 && padding.some((p) => p >= t)) {
      throw new Error(`Expected every row's padding to end within the first ${t} tokens, got ${Math.max(...padding)}`);
    }
    const past = cache.layers;
    const result = tf.tidy(() => {
      // Row i (absolute position start+i) may see keys 0..start+i.
      let mask: tf.Tensor = tf.slice(this.causalMask, [start, 0], [t, start + t]); // [t, start+t]
      let position: number | tf.Tensor2D = start;
      if (padded) {
        // Padding is never a key, and each row's positions count from its first real token.
        const tk = start + t;
        const hidden = new Float32Array(b * tk);
        const own = new Int32Array(b * t);
        padding.forEach((p, r) => {
          hidden.fill(MASKED, r * tk, r * tk + p);
          for (let i = 0; i < t; i++) own[r * t + i] = Math.max(0, start + i - p);
        });
        mask = tf.add(mask, tf.tensor4d(hidden, [b, 1, 1, tk])); // [B, 1, t, start+t]
        position = tf.tensor2d(own, [b, t], 'int32'); // [B, t]
      }
      const { logits, presents } = this.run(idx, {
        position,
        mask,
        training: false,
        past: past.length > 0 ? past : undefined,
        keepKeys: cache.keepKeys,
      });
      return { all: tf.reshape(logits, [b, t, this.config.vocabSize]) as tf.Tensor3D, presents }; // [B, t, V]
    });
    cache.dispose();
    cache.layers = result.presents;
    cache.length = start + t;
    return result.all;
  }

  /**
   * Shared body of both forwards: logits [B·t, V] and each layer's keys/values. `position` is the
   * first position of every row, or each token's own position [B, t].
   */
  private run(
    idx: tf.Tensor2D,
    opts: { position: number | tf.Tensor2D; mask: tf.Tensor; training: boolean; past?: LayerCache[]; keepKeys?: boolean },
  ): { logits: tf.Tensor2D; presents: LayerCache[] } {
    const [b, t] = idx.shape;
    const d = this.config.nEmbd;
    const p = this.config.dropout;
    const dropout =
      opts.training && p > 0
        ? (x: tf.Tensor): tf.Tensor => tf.dropout(x, p, undefined, this.seed * 1_000_003 + 1 + this.dropoutDraws++)
        : (x: tf.Tensor): tf.Tensor => x;
    let x = tf.gather(this.wte, tf.reshape(idx, [b * t])) as tf.Tensor2D; // [B·t, D]
    if (this.wpe) {
      const pos =
        typeof opts.position === 'number'
          ? tf.slice(this.wpe, [opts.position, 0], [t, d]) // [t, D]
          : tf.reshape(tf.gather(this.wpe, tf.reshape(opts.position, [b * t])), [b, t, d]); // [B, t, D]
      x = tf.reshape(tf.add(tf.reshape(x, [b, t, d]), pos), [b * t, d]) as tf.Tensor2D; // [B·t, D]
    }
    x = dropout(x) as tf.Tensor2D;
    const rotary = this.rope ? { rope: this.rope, tables: this.rope.tables(opts.position, b, t) } : undefined;
    // Packed documents or left padding: a token's lag-k predecessor counts only within its
    // document, so a document's first token has no previous key to smear in (k = 1) and canon
    // layers mix in only the earlier tokens of its own document (k = 1 … CANON_WIDTH − 1).
    const lags = typeof opts.position === 'number' ? 0 : this.config.canon ? CANON_WIDTH - 1 : this.config.smearKeys ? 1 : 0;
    const follows = Array.from({ length: lags }, (_, k) => tf.cast(tf.greaterEqual(opts.position, k + 1), 'float32')); // [B, t] each
    const samePrevious = this.config.smearKeys && lags > 0 ? (tf.reshape(follows[0]!, [b, 1, t, 1]) as tf.Tensor4D) : undefined;
    const lagMasks = this.config.canon && lags > 0 ? follows.map((f) => tf.reshape(f, [b * t, 1]) as tf.Tensor2D) : undefined;
    const presents: LayerCache[] = [];
    this.blocks.forEach((block, i) => {
      const out = block.apply(x, { batch: b, mask: opts.mask, past: opts.past?.[i], keepKeys: opts.keepKeys, dropout, rotary, samePrevious, lagMasks });
      x = out.y;
      presents.push(out.present);
    });
    const logits = matMul(this.lnF.apply(x), this.wte as tf.Tensor2D, { transposeB: true }); // [B·t, V]
    return { logits, presents };
  }

  /** Weights by reference-GPT name (`wte.weight`, `h.0.attn.c_attn.weight`, …), [in, out] layout. */
  namedWeights(): Map<string, tf.Variable> {
    const named = new Map<string, tf.Variable>();
    named.set('wte.weight', this.wte);
    if (this.wpe) named.set('wpe.weight', this.wpe);
    this.blocks.forEach((block, i) => {
      const add = (name: string, layer: { weight: tf.Variable; bias: tf.Variable }): void => {
        named.set(`h.${i}.${name}.weight`, layer.weight);
        named.set(`h.${i}.${name}.bias`, layer.bias);
      };
      add('ln_1', block.ln1);
      add('attn.c_attn', block.attn.cAttn);
      add('attn.c_proj', block.attn.cProj);
      if (block.attn.smear) named.set(`h.${i}.attn.smear`, block.attn.smear);
      if (block.canonA) named.set(`h.${i}.canon_a.weight`, block.canonA.weight);
      if (block.canonC) named.set(`h.${i}.canon_c.weight`, block.canonC.weight);
      add('ln_2', block.ln2);
      add('mlp.c_fc', block.mlp.cFc);
      add('mlp.c_proj', block.mlp.cProj);
    });
    named.set('ln_f.weight', this.lnF.weight);
    named.set('ln_f.bias', this.lnF.bias);
    return named;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.namedWeights().values()];
  }

  /** Number of scalar weights (the tied head counted once). */
  paramCount(): number {
    return this.trainableVariables().reduce((sum, w) => sum + w.size, 0);
  }

  dispose(): void {
    for (const w of this.trainableVariables()) w.dispose();
    this.rope?.dispose();
    this.causalMask.dispose();
  }
}
