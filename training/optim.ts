/**
 * AdamW with global-norm gradient clipping.
 *
 * tfjs ships Adam with L2 folded into the gradient; AdamW (Loshchilov & Hutter)
 * decays the weights directly, `w -= lr · wd · w`, outside the adaptive step,
 * which is what GPT training recipes assume. Decay applies to matrices and
 * embeddings (rank ≥ 2), not to biases and LayerNorm gains (nanoGPT's split).
 * The moments are named like the weights so a checkpoint can save and restore
 * them exactly.
 */
import * as tf from './tf.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /** Clip the global gradient norm to this; 0 turns clipping off. */
  gradClip: number;
}

export class AdamW {
  /** Number of updates applied (Adam's t, used for bias correction). */
  t = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(
    private readonly weights: Map<string, tf.Variable>,
    private readonly options: AdamWOptions,
  ) {
    for (const [name, w] of weights) {
      this.m.set(name, tf.variable(tf.zerosLike(w), false, `adam_m/${name}`));
      this.v.set(name, tf.variable(tf.zerosLike(w), false, `adam_v/${name}`));
    }
  }

  /**
   * One update with learning rate `lr`; returns the global gradient norm
   * before clipping (a scalar the caller disposes). Call inside `tf.tidy`.
   */
  apply(grads: Record<string, tf.Tensor>, lr: number): tf.Scalar {
    const { beta1, beta2, epsilon, weightDecay, gradClip } = this.options;
    this.t += 1;
    const names = [...this.weights.keys()];
    const norm = tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!))))) as tf.Scalar;
    const scale = gradClip > 0 ? tf.minimum(1, tf.div(gradClip, tf.add(norm, 1e-6))) : tf.scalar(1);
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const name of names) {
      const w = this.weights.get(name)!;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const g = tf.mul(grads[name]!, scale);
      m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
      v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
      const step = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), epsilon));
      const decayed = w.rank >= 2 && weightDecay > 0 ? tf.mul(w, 1 - lr * weightDecay) : w;
      w.assign(tf.sub(decayed, tf.mul(step, lr)));
    }
    return tf.keep(norm);
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
  }
}
