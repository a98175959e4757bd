/**
 * The gradients of one batch — or of one shard of a batch, for data-parallel training
 * (parallel.ts) — under the CWM objective, and the optimizer step they feed. The training loop
 * and the gradient workers share them, so a shard computed on another thread is the same
 * arithmetic as one computed here.
 */
import * as tf from './tf.js';
import { KIND_OUTPUT, KIND_STATE, countKinds, type Batch } from './data.js';
import type { GPT } from './model.js';
import { cwmObjective, objectiveCounts, type ObjectiveCounts } from './objective.js';
import type { AdamW } from './optim.js';
import { batchShard, packTensors, type GradientWorkers, type ShardResult } from './parallel.js';

/** The objective's settings a gradient needs (TrainConfig's fields of the same names). */
export interface GradientSettings {
  stateWeight: number;
  outputWeight: number | null;
}

/** The tensors of a batch (created in the caller's tidy scope). */
export function batchTensors(batch: Batch): {
  x: tf.Tensor2D;
  labels: tf.Tensor2D;
  isState: tf.Tensor2D;
  isOutput: tf.Tensor2D;
  documents: tf.Tensor2D;
  positions: tf.Tensor2D;
} {
  const shape: [number, number] = [batch.batchSize, batch.blockSize];
  const isState = new Float32Array(batch.kinds.length);
  const isOutput = new Float32Array(batch.kinds.length);
  batch.kinds.forEach((k, i) => {
    isState[i] = k === KIND_STATE ? 1 : 0;
    isOutput[i] = k === KIND_OUTPUT ? 1 : 0;
  });
  return {
    x: tf.tensor2d(batch.inputs, shape, 'int32'), // [B, T]
    labels: tf.tensor2d(batch.labels, shape, 'int32'), // [B, T]
    isState: tf.tensor2d(isState, shape, 'float32'), // [B, T]
    isOutput: tf.tensor2d(isOutput, shape, 'float32'), // [B, T]
    documents: tf.tensor2d(batch.documents, shape, 'int32'), // [B, T]
    positions: tf.tensor2d(batch.positions, shape, 'int32'), // [B, T]
  };
}

/**
 * The loss on `batch` and its gradient for every weight (by the names of `weights`), with the
 * loss's three terms [next, output, state]. With `counts` (the whole batch's, see
 * objective.ts), `batch` is one shard and everything returned is that shard's share: the shards'
 * losses and gradients add up to the whole batch's. Call inside `tf.tidy`; the returned tensors
 * belong to its scope.
 */
export function batchGradients(
  model: GPT,
  weights: Map<string, tf.Variable>,
  batch: Batch,
  settings: GradientSettings,
  counts?: ObjectiveCounts,
): { loss: tf.Scalar; parts: [tf.Scalar, tf.Scalar, tf.Scalar]; grads: Map<string, tf.Tensor> } {
  const { x, labels, isState, isOutput, documents, positions } = batchTensors(batch);
  let parts: tf.Scalar[] = [];
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.forward(x, { training: true, documents, positions }); // [B, T, V]
    const o = cwmObjective({ logits, labels, isState, isOutput, stateWeight: settings.stateWeight, outputWeight: settings.outputWeight, counts });
    // variableGrads disposes everything but its result; keep the parts for logging.
    parts = [tf.keep(o.next), tf.keep(o.output), tf.keep(o.state)];
    return o.loss;
  }, [...weights.values()]);
  const byName = new Map<string, tf.Tensor>();
  for (const [name, w] of weights) byName.set(name, grads[w.name]!);
  // The terms were kept, and kept tensors outlive every tidy: their clones belong to the caller's
  // scope like the rest. With zero weights the loss is one of the terms, so each goes once.
  const [loss, ...terms] = [value, ...parts].map((t) => tf.clone(t)) as tf.Scalar[];
  tf.dispose([...new Set([value, ...parts])]);
  return { loss: loss!, parts: terms as [tf.Scalar, tf.Scalar, tf.Scalar], grads: byName };
}

/**
 * One optimizer step on `batch`; returns the loss, its three terms and the gradient norm before
 * clipping. With gradient workers, the main thread computes the first shard while they compute
 * the others, and the optimizer applies the sum (parallel.ts).
 */
export async function optimizerStep(
  state: { model: GPT; weights: Map<string, tf.Variable>; optimizer: AdamW; workers?: GradientWorkers },
  batch: Batch,
  settings: GradientSettings,
  lr: number,
): Promise<number[]> {
  const { model, weights, optimizer, workers } = state;
  // With workers, every shard divides by the whole batch's target counts.
  const counts = workers ? objectiveCounts(countKinds(batch.kinds), settings.outputWeight) : undefined;
  const remote = workers ? workers.compute(batch, packTensors(weights.values()), counts!, model.rngState) : null;
  const mine = workers ? batchShard(batch, 0, workers.count + 1) : batch;
  let here;
  try {
    here = tf.tidy(() => {
      const g = batchGradients(model, weights, mine, settings, counts);
      // A plain object: tidy keeps the tensors it finds in arrays and objects, not in a Map.
      return { values: [g.loss, ...g.parts], grads: Object.fromEntries(g.grads) };
    });
  } catch (err) {
    remote?.catch(() => {}); // the step failed here; what the workers say no longer matters
    throw err;
  }
  let others: ShardResult[] = [];
  try {
    others = remote ? await remote : [];
  } catch (err) {
    tf.dispose([...here.values, ...Object.values(here.grads)]);
    throw err;
  }
  const [loss, next, output, stateLoss, gradNorm] = tf.tidy(() => {
    const grads: Record<string, tf.Tensor> = {};
    let at = 0;
    for (const [name, w] of weights) {
      const parts = [here.grads[name]!, ...others.map((o) => tf.tensor(o.grads.subarray(at, at + w.size), w.shape, 'float32'))];
      grads[name] = parts.length === 1 ? parts[0]! : tf.addN(parts);
      at += w.size;
    }
    const norm = optimizer.apply(grads, lr);
    return [...here.values.map((v, i) => (others.length === 0 ? v : tf.add(v, others.reduce((sum, o) => sum + o.values[i]!, 0)))), norm];
  });
  // Without workers the scalars are this shard's own terms: read all before disposing any, each once.
  const scalars = [loss!, next!, output!, stateLoss!, gradNorm!];
  const values = scalars.map((t) => t.dataSync()[0]!);
  for (const t of new Set([...scalars, ...here.values, ...Object.values(here.grads)])) t.dispose();
  return values;
}
