/**
 * A gradient worker of data-parallel training (see parallel.ts): a worker thread holding a
 * replica of the model on its own backend. For each step it takes the current weights and a
 * shard of the batch, and answers with the shard's gradients (packed in the weights' order) and
 * its share of the loss. It keeps no state between steps but the replica's tensors: the weights
 * come with every step, so the replica is always the model the main thread is training.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from './tf.js';
import { setupBackend, type BackendName } from './backend.js';
import { batchGradients } from './gradients.js';
import { GPT } from './model.js';
import { packTensors, weightLayout, type GradientWorkerData, type StepRequest, type WorkerReply } from './parallel.js';

const port = parentPort!;
const init = workerData as GradientWorkerData;

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

async function start(): Promise<{ model: GPT; weights: Map<string, tf.Variable> }> {
  await setupBackend(init.backend as BackendName, { threads: init.threads });
  const model = new GPT(init.modelConfig, { seed: init.seed });
  return { model, weights: model.namedWeights() };
}

function step(replica: { model: GPT; weights: Map<string, tf.Variable> }, request: StepRequest): void {
  const { model, weights } = replica;
  // In a tidy: `assign` takes the new tensor's data, and the tensor itself must go, or each step
  // would keep a copy of every weight alive.
  tf.tidy(() => {
    let offset = 0;
    for (const w of weights.values()) {
      w.assign(tf.tensor(request.weights.subarray(offset, offset + w.size), w.shape, 'float32'));
      offset += w.size;
    }
  });
  model.rngState = request.rngState;
  // Set inside, not returned: tidy would walk a returned array's half a million numbers for tensors.
  let grads: Float32Array | null = null;
  const values = tf.tidy(() => {
    const g = batchGradients(model, weights, request.shard, init.settings, request.counts);
    grads = packTensors([...weights.keys()].map((name) => g.grads.get(name)!));
    return [g.loss, ...g.parts].map((t) => t.dataSync()[0]!);
  });
  reply({ type: 'grads', id: request.id, grads: grads!, values, tensors: tf.memory().numTensors }, [grads!.buffer as ArrayBuffer]);
}

try {
  const replica = await start();
  port.on('message', (request: StepRequest) => {
    try {
      step(replica, request);
    } catch (err) {
      reply({ type: 'error', id: request.id, message: (err as Error).message ?? String(err) });
    }
  });
  reply({ type: 'ready', layout: weightLayout(replica.weights) });
} catch (err) {
  reply({ type: 'error', id: -1, message: (err as Error).message ?? String(err) });
}
