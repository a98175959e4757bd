/**
 * Data-parallel training on worker threads (`execwm train --workers n`).
 *
 * Each step splits the batch into n shards of whole rows. The main thread computes the
 * gradients of the first shard while n − 1 gradient workers (grad-worker.ts), each a replica of
 * the model on its own single-threaded backend, compute the others from the same weights; the
 * shards' gradients add up to the whole batch's (each shard's loss divides by the whole batch's
 * target counts, see objective.ts), and the main thread alone applies the optimizer. So the
 * run is the same run as with one worker, up to the order of floating-point sums, and
 * checkpoints and resuming do not change.
 *
 * Why: the wasm backend splits a matrix product across threads only partly (small products,
 * and the element-wise kernels, stay on one thread), while whole forward and backward passes
 * on separate cores scale almost perfectly; the weights and gradients that cross threads each
 * step are a few MB.
 *
 * Dropout (presets with dropout > 0) draws each shard's masks from the model's seeded stream at
 * its own offset, so a run is still reproducible; with a different worker count it draws other
 * masks.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Worker as WorkerType } from 'node:worker_threads';
import type { Batch } from './data.js';
import type * as tf from './tf.js';
import type { GradientSettings } from './gradients.js';
import type { ModelConfig } from './model.js';
import type { ObjectiveCounts } from './objective.js';
import { TrainingError } from './errors.js';

const require = createRequire(import.meta.url);
const { Worker } = require('node:worker_threads') as typeof import('node:worker_threads');

/** What a gradient worker is started with. */
export interface GradientWorkerData {
  modelConfig: ModelConfig;
  seed: number;
  backend: string;
  threads: number;
  settings: GradientSettings;
}

/** One step's work for a worker. */
export interface StepRequest {
  id: number;
  /** Every weight, packed in the model's order (`namedWeights`). */
  weights: Float32Array;
  /** The dropout stream's position for this shard (the model's `rngState`). */
  rngState: number;
  shard: Batch;
  counts: ObjectiveCounts;
}

export type WorkerReply =
  | { type: 'ready'; layout: WeightLayout }
  | { type: 'grads'; id: number; grads: Float32Array; values: number[]; tensors: number }
  | { type: 'error'; id: number; message: string };

/** A shard's gradients, packed like the weights, and its share of [loss, next, output, state]. */
export interface ShardResult {
  grads: Float32Array;
  values: number[];
  /** Tensors alive in the worker after the step (constant from step to step, or it leaks). */
  tensors: number;
}

/** Each weight's name and size, in the model's order: what a replica must match. */
export type WeightLayout = { name: string; size: number }[];

export function weightLayout(weights: Map<string, tf.Tensor>): WeightLayout {
  return [...weights].map(([name, w]) => ({ name, size: w.size }));
}

/** Tensors' values end to end, in the order given (weights to a worker, gradients back). */
export function packTensors(tensors: Iterable<tf.Tensor>): Float32Array {
  const list = [...tensors];
  const packed = new Float32Array(list.reduce((n, t) => n + t.size, 0));
  let at = 0;
  for (const t of list) {
    packed.set(t.dataSync() as Float32Array, at);
    at += t.size;
  }
  return packed;
}

/**
 * Dropout draws between one shard's stream and the next: far more than a run draws (a few per
 * layer and step), so the shards' masks never repeat one another.
 */
export const SHARD_RNG_STRIDE = 2 ** 28;

/** A step's shard i of n: rows [⌊i·B/n⌋, ⌊(i+1)·B/n⌋) of the batch. */
export function batchShard(batch: Batch, i: number, n: number): Batch {
  const from = Math.floor((i * batch.batchSize) / n);
  const to = Math.floor(((i + 1) * batch.batchSize) / n);
  const T = batch.blockSize;
  const cut = <A extends Int32Array | Uint8Array>(a: A): A => a.slice(from * T, to * T) as A;
  return {
    batchSize: to - from,
    blockSize: T,
    inputs: cut(batch.inputs),
    labels: cut(batch.labels),
    kinds: cut(batch.kinds),
    documents: cut(batch.documents),
    positions: cut(batch.positions),
  };
}

/** Starts a worker on the compiled module, or on the TypeScript source with tsx's loader (tests, `tsx`). */
function spawn(data: GradientWorkerData): WorkerType {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./grad-worker.js', here), { workerData: data });
  const pkg = require.resolve('tsx/package.json');
  const entry = (require(pkg) as { exports: Record<string, { import: { default: string } }> }).exports['./esm/api']!.import.default;
  const tsxApi = pathToFileURL(path.join(path.dirname(pkg), entry)).href;
  const code =
    "const { workerData } = require('node:worker_threads');" +
    'import(workerData.tsxApi).then((m) => m.register()).then(() => import(workerData.module));';
  return new Worker(code, { eval: true, workerData: { ...data, tsxApi, module: new URL('./grad-worker.ts', here).href } });
}

interface Pending {
  resolve: (r: ShardResult) => void;
  reject: (e: Error) => void;
}

/** One gradient worker and the request it is answering. */
class GradientWorker {
  private pending: Pending | null = null;
  private failure: Error | null = null;

  private constructor(private readonly worker: WorkerType) {}

  /** Starts a worker and waits until its replica is built; refuses one whose weights differ from `layout`. */
  static start(data: GradientWorkerData, layout: WeightLayout): Promise<GradientWorker> {
    const worker = spawn(data);
    const w = new GradientWorker(worker);
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => {
        void worker.terminate();
        reject(new TrainingError(`A gradient worker failed to start: ${e.message}`));
      };
      worker.once('message', (m: WorkerReply) => {
        if (m.type === 'error') return fail(new Error(m.message));
        if (m.type !== 'ready') return fail(new Error(`unexpected first message ${m.type}`));
        const same = m.layout.length === layout.length && m.layout.every((l, i) => l.name === layout[i]!.name && l.size === layout[i]!.size);
        if (!same) return fail(new Error('its model has other weights than the main thread'));
        w.listen();
        resolve(w);
      });
      worker.once('error', fail);
    });
  }

  private listen(): void {
    this.worker.on('message', (m: WorkerReply) => {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      if (m.type === 'grads') p.resolve({ grads: m.grads, values: m.values, tensors: m.tensors });
      else p.reject(new TrainingError(`A gradient worker failed: ${m.type === 'error' ? m.message : 'unexpected reply'}`));
    });
    const down = (e: Error) => {
      this.failure = new TrainingError(`A gradient worker stopped: ${e.message}`);
      this.pending?.reject(this.failure);
      this.pending = null;
    };
    this.worker.on('error', down);
    this.worker.on('exit', (code) => down(new Error(`it exited with code ${code}`)));
  }

  compute(request: StepRequest): Promise<ShardResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('A gradient worker got a step before answering the last'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      const { shard } = request;
      this.worker.postMessage(request, [shard.inputs.buffer, shard.labels.buffer, shard.kinds.buffer, shard.documents.buffer, shard.positions.buffer] as ArrayBuffer[]);
    });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.worker.removeAllListeners('error');
    this.worker.on('error', () => {});
    await this.worker.terminate();
  }
}

/** The n − 1 gradient workers of a run with n workers (the main thread is the first). */
export class GradientWorkers {
  private nextId = 0;

  private constructor(private readonly workers: GradientWorker[]) {}

  /** Starts `count` workers (in parallel) with replicas of a model of `layout`'s weights. */
  static async start(count: number, data: GradientWorkerData, layout: WeightLayout): Promise<GradientWorkers> {
    const started = await Promise.allSettled(Array.from({ length: count }, () => GradientWorker.start(data, layout)));
    const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(ok.map((w) => w.close()));
      throw failed.reason;
    }
    return new GradientWorkers(ok);
  }

  /** Workers besides the main thread. */
  get count(): number {
    return this.workers.length;
  }

  /**
   * Sends shard i + 1 of `batch` to worker i (the main thread keeps shard 0) and resolves with
   * their results in shard order. The shards' typed arrays are handed over, not copied.
   */
  compute(batch: Batch, weights: Float32Array, counts: ObjectiveCounts, rngState: number): Promise<ShardResult[]> {
    const n = this.workers.length + 1;
    const id = this.nextId++;
    return Promise.all(
      this.workers.map((w, i) => w.compute({ id, weights, rngState: rngState + (i + 1) * SHARD_RNG_STRIDE, shard: batchShard(batch, i + 1, n), counts })),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
