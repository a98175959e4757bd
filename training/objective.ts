/**
 * The training objective (DESIGN.md "Objectives"):
 *
 *   loss = L_next + λ · L_state                (μ unset, the default)
 *   loss = L_next + μ · L_output + λ · L_state (μ set)
 *
 * `L_next` is the mean cross-entropy over targets that are code or action
 * tokens — and, by default, the answers of output examples (their return
 * values), which are next-token targets for every λ. `L_state` is the mean over
 * state targets (locals, return values of trace frames). With μ set, the answers
 * leave `L_next` for a mean of their own, `L_output`, weighted by μ: a task
 * weight rather than a token count (docs/results.md measures μ = 1: it cost
 * state accuracy and bought no output accuracy). `L_output` is computed and
 * logged either way. Targets labelled -1 count for none. A weight of 0 leaves
 * its term out of the loss entirely.
 */
import * as tf from './tf.js';

export interface ObjectiveInput {
  /** Model output [B, T, V]. */
  logits: tf.Tensor3D;
  /** Target ids [B, T] int32; -1 where the target does not count. */
  labels: tf.Tensor2D;
  /** [B, T] float32: 1 where the target is a state token, 0 otherwise. */
  isState: tf.Tensor2D;
  /** [B, T] float32: 1 where the target is an output example's answer; absent: none is. */
  isOutput?: tf.Tensor2D;
  /** λ, the weight of the state loss. */
  stateWeight: number;
  /** μ, the weight of a separate output loss; null or absent: the answers count as next tokens. */
  outputWeight?: number | null;
  /**
   * Target counts of the whole batch when `labels` hold only a part of it (a data-parallel
   * shard, see parallel.ts): each mean then divides by the whole batch's count, so the parts'
   * losses and gradients add up to the whole batch's. Absent: the counts of `labels` itself.
   */
  counts?: ObjectiveCounts;
}

/** How many targets each mean of the objective averages over. */
export interface ObjectiveCounts {
  next: number;
  output: number;
  state: number;
}

/**
 * The counts `cwmObjective` divides by, from a batch's counts of target kinds (data.ts
 * `countKinds`): the answers count among next tokens unless μ gives them a mean of their own.
 */
export function objectiveCounts(kinds: { next: number; state: number; output: number }, outputWeight: number | null = null): ObjectiveCounts {
  return { next: kinds.next + (outputWeight === null ? kinds.output : 0), output: kinds.output, state: kinds.state };
}

export interface ObjectiveOutput {
  /** The optimised scalar: next + μ · output + λ · state. */
  loss: tf.Scalar;
  /** Mean cross-entropy over code + action targets (0 when there are none). */
  next: tf.Scalar;
  /** Mean cross-entropy over output-example answers (0 when there are none). */
  output: tf.Scalar;
  /** Mean cross-entropy over state targets (0 when there are none). */
  state: tf.Scalar;
}

/**
 * Cross-entropy of each row of `logits` [N, V] against `oneHot` [N, V] (its target row) → [N],
 * with the closed-form gradient (softmax − oneHot)·dy. Written with softmax because the wasm
 * backend runs softmax vectorised (XNNPACK) but `exp`, hence logSumExp, as a scalar loop ~8×
 * slower. The log-normaliser needs no exp either: the row's largest probability is
 * exp(0)/Σ exp(x − max), so logSumExp = max − log(max p), and max p ≥ 1/V never underflows.
 */
export function crossEntropy(logits: tf.Tensor2D, oneHot: tf.Tensor2D): tf.Tensor1D {
  const ce = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const p = tf.softmax(x); // [N, V]
    const logSumExp = tf.sub(tf.max(x, -1), tf.log(tf.max(p, -1))); // [N]
    const picked = tf.sum(tf.mul(x, oneHot), -1); // [N]
    save([p, oneHot]); // oneHot too: a gradient scope disposes what its forward made
    return {
      value: tf.sub(logSumExp, picked) as tf.Tensor1D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(tf.sub(saved[0]!, saved[1]!), tf.reshape(dy, [-1, 1])), // [N, V]
    };
  });
  return ce(logits) as tf.Tensor1D;
}

/** Both losses and their weighted sum; call inside a tidy or a gradient scope. */
export function cwmObjective(input: ObjectiveInput): ObjectiveOutput {
  const { logits, labels, isState, isOutput, stateWeight, outputWeight = null, counts } = input;
  const [b, t, v] = logits.shape;
  const flat = tf.reshape(logits, [b * t, v]) as tf.Tensor2D; // [N, V]
  const ids = tf.reshape(labels, [b * t]) as tf.Tensor1D; // [N]
  const valid = tf.cast(tf.greaterEqual(ids, 0), 'float32'); // [N]
  // Cast once here, not in each product with the logits (wasm's OneHot writes int32 whatever dtype it is given).
  const targets = tf.cast(tf.oneHot(tf.maximum(ids, tf.scalar(0, 'int32')), v), 'float32') as tf.Tensor2D; // [N, V]
  const ce = crossEntropy(flat, targets); // [N]
  const stateW = tf.mul(valid, tf.reshape(isState, [b * t])); // [N]
  const outputW = isOutput ? tf.mul(valid, tf.reshape(isOutput, [b * t])) : tf.zerosLike(valid); // [N]
  const nextW = outputWeight === null ? tf.sub(valid, stateW) : tf.sub(tf.sub(valid, stateW), outputW); // [N]
  const mean = (w: tf.Tensor1D, count: number | undefined): tf.Scalar =>
    tf.div(tf.sum(tf.mul(ce, w)), count === undefined ? tf.maximum(tf.sum(w), 1) : Math.max(count, 1)) as tf.Scalar;
  const next = mean(nextW as tf.Tensor1D, counts?.next);
  const output = mean(outputW as tf.Tensor1D, counts?.output);
  const state = mean(stateW as tf.Tensor1D, counts?.state);
  let loss = next;
  if (outputWeight !== null && outputWeight !== 0) loss = tf.add(loss, tf.mul(output, outputWeight)) as tf.Scalar;
  if (stateWeight !== 0) loss = tf.add(loss, tf.mul(state, stateWeight)) as tf.Scalar;
  return { loss, next, output, state };
}
