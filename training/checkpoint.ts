/**
 * Checkpoints: everything needed to continue a run exactly, or to use its model.
 *
 *   <run>/checkpoint/
 *     checkpoint.json   step, ModelConfig, TrainConfig, corpus manifest id,
 *                       sampler + dropout RNG state, Adam t, the tensor table,
 *                       and the SHA-256 of weights.bin
 *     weights.bin       float32 little-endian: every weight, then Adam m, then v
 *     tokenizer.json    the tokenizer the model was trained with
 *
 * Written atomically: a fresh `checkpoint.tmp/` is filled and fsynced, the old
 * checkpoint moved to `checkpoint.prev/`, the new one renamed into place, and
 * the old one removed. A `kill -9` at any moment leaves a whole checkpoint in
 * `checkpoint/` or, in the instant between the two renames, in `checkpoint.prev/`;
 * reading falls back to it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from './tf.js';
import * as v from 'valibot';
import { schemaIssue } from '../corpus/errors.js';
import { POSITION_ENCODINGS, TRAIN_CONFIG_SCHEMA, type TrainConfig } from './config.js';
import type { SamplerState } from './data.js';
import { TrainingError } from './errors.js';
import { GPT, validateModelConfig, type ModelConfig } from './model.js';
import { deriveSeed } from './rng.js';
import { DIGIT_ORDERS, Tokenizer } from './tokenizer.js';

export const CHECKPOINT_DIR = 'checkpoint';
const FORMAT = 'execwm-checkpoint';
const VERSION = 1;

export interface TensorEntry {
  /** `weight/<name>`, `adam_m/<name>` or `adam_v/<name>`. */
  name: string;
  shape: number[];
  /** Offset in float32 elements into weights.bin. */
  offset: number;
}

/** Contents of checkpoint.json. */
export interface CheckpointMeta {
  format: typeof FORMAT;
  version: typeof VERSION;
  /** Optimizer steps completed. */
  step: number;
  modelConfig: ModelConfig;
  trainConfig: TrainConfig;
  /** Id of the corpus manifest the run trained on. */
  manifestId: string;
  sampler: SamplerState;
  /** Dropout masks drawn so far (GPT.rngState). */
  modelRngState: number;
  /** Adam's update count. */
  adamT: number;
  /** Tokens trained on so far. */
  tokensSeen: number;
  tensors: TensorEntry[];
  weightsSha256: string;
}

const number4 = v.tuple([v.number(), v.number(), v.number(), v.number()]);

/**
 * checkpoint.json, checked field by field when read (see {@link readCheckpoint}); the train
 * config fills what older checkpoints lack. Model config fields in the order training writes them.
 */
const CHECKPOINT_SCHEMA = v.object({
  format: v.literal(FORMAT),
  version: v.literal(VERSION),
  step: v.number(),
  modelConfig: v.object({
    blockSize: v.number(),
    nLayer: v.number(),
    nHead: v.number(),
    nEmbd: v.number(),
    dropout: v.number(),
    vocabSize: v.number(),
    positionEncoding: v.optional(v.picklist(POSITION_ENCODINGS)),
    smearKeys: v.optional(v.boolean()),
    canon: v.optional(v.boolean()),
  }),
  trainConfig: TRAIN_CONFIG_SCHEMA,
  manifestId: v.string(),
  sampler: v.object({ rng: number4, order: v.array(v.number()), cursor: v.number(), epoch: v.number() }),
  modelRngState: v.number(),
  adamT: v.number(),
  tokensSeen: v.number(),
  tensors: v.array(v.object({ name: v.string(), shape: v.array(v.number()), offset: v.number() })),
  weightsSha256: v.string(),
}) satisfies v.GenericSchema<unknown, CheckpointMeta>;

/** tokenizer.json (see tokenizer.ts). */
const TOKENIZER_SCHEMA = v.object({
  format: v.literal('execwm-bpe'),
  version: v.literal(1),
  specialTokens: v.array(v.string()),
  merges: v.array(v.tuple([v.number(), v.number()])),
  digitOrder: v.optional(v.picklist(DIGIT_ORDERS)),
});

/** What a training run saves; tensors are read from the live variables. */
export interface CheckpointState extends Omit<CheckpointMeta, 'format' | 'version' | 'tensors' | 'weightsSha256'> {
  weights: Map<string, tf.Variable>;
  adamM: Map<string, tf.Variable>;
  adamV: Map<string, tf.Variable>;
  tokenizer: Tokenizer;
}

/** A checkpoint read from disk, tensors still as arrays. */
export interface CheckpointFiles {
  dir: string;
  meta: CheckpointMeta;
  tokenizer: Tokenizer;
  /** By entry name (`weight/wte.weight`, `adam_m/…`). */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

async function writeFileSynced(file: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Saves `state` into `<runDir>/checkpoint/` atomically. */
export async function saveCheckpoint(runDir: string, state: CheckpointState): Promise<void> {
  const entries: [string, tf.Variable][] = [];
  for (const [name, w] of state.weights) entries.push([`weight/${name}`, w]);
  for (const [name, m] of state.adamM) entries.push([`adam_m/${name}`, m]);
  for (const [name, v] of state.adamV) entries.push([`adam_v/${name}`, v]);
  const total = entries.reduce((n, [, t]) => n + t.size, 0);
  const data = new Float32Array(total);
  const tensors: TensorEntry[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    data.set(await t.data<'float32'>(), offset);
    tensors.push({ name, shape: [...t.shape], offset });
    offset += t.size;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const { weights: _w, adamM: _m, adamV: _v, tokenizer, ...rest } = state;
  const meta: CheckpointMeta = {
    format: FORMAT,
    version: VERSION,
    ...rest,
    tensors,
    weightsSha256: createHash('sha256').update(bytes).digest('hex'),
  };
  const final = path.join(runDir, CHECKPOINT_DIR);
  const tmp = `${final}.tmp`;
  const prev = `${final}.prev`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await writeFileSynced(path.join(tmp, 'weights.bin'), bytes);
  await writeFileSynced(path.join(tmp, 'tokenizer.json'), JSON.stringify(tokenizer.toJSON()));
  await writeFileSynced(path.join(tmp, 'checkpoint.json'), `${JSON.stringify(meta, null, 1)}\n`);
  if (existsSync(final)) {
    await rm(prev, { recursive: true, force: true });
    await rename(final, prev);
  }
  await rename(tmp, final);
  await rm(prev, { recursive: true, force: true });
}

/**
 * The checkpoint folder for `dir`: `dir` itself when it holds checkpoint.json,
 * else `dir/checkpoint/`, else `dir/checkpoint.prev/` (a save interrupted between
 * its renames). Null when there is none.
 */
export function findCheckpoint(dir: string): string | null {
  for (const d of [dir, path.join(dir, CHECKPOINT_DIR), path.join(dir, `${CHECKPOINT_DIR}.prev`)]) {
    if (existsSync(path.join(d, 'checkpoint.json'))) return d;
  }
  return null;
}

/** Reads and verifies a checkpoint; any damage is a TrainingError naming the file. */
export async function readCheckpoint(dir: string): Promise<CheckpointFiles> {
  const found = findCheckpoint(dir);
  if (found === null) throw new TrainingError(`No checkpoint in ${dir} (expected ${path.join(dir, CHECKPOINT_DIR, 'checkpoint.json')})`);
  const bad = (why: string) => new TrainingError(`Corrupt checkpoint ${found}: ${why}`);
  const readJson = async (file: string): Promise<unknown> => {
    try {
      return JSON.parse(await readFile(path.join(found, file), 'utf8'));
    } catch (err) {
      throw bad(`${file} is unreadable (${(err as Error).message})`);
    }
  };
  const check = <S extends v.GenericSchema>(file: string, schema: S, json: unknown): v.InferOutput<S> => {
    const result = v.safeParse(schema, json);
    if (!result.success) throw bad(`${file}: ${schemaIssue(result.issues)}`);
    return result.output;
  };
  const json = await readJson('checkpoint.json');
  const { format, version } = (json ?? {}) as { format?: unknown; version?: unknown };
  if (format !== FORMAT || version !== VERSION) {
    throw bad(`not an execwm checkpoint of version ${VERSION} (format ${String(format)}, version ${String(version)})`);
  }
  // The one place checkpoint.json is read: older checkpoints get their missing fields here.
  const meta: CheckpointMeta = check('checkpoint.json', CHECKPOINT_SCHEMA, json);
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(check('tokenizer.json', TOKENIZER_SCHEMA, await readJson('tokenizer.json')));
  } catch (err) {
    throw err instanceof TrainingError ? err : bad(`tokenizer.json: ${(err as Error).message}`);
  }
  try {
    validateModelConfig(meta.modelConfig);
  } catch (err) {
    throw bad(`model config: ${(err as Error).message}`);
  }
  if (meta.modelConfig.vocabSize !== tokenizer.vocabSize) {
    throw bad(`the model has ${meta.modelConfig.vocabSize} token ids, the tokenizer ${tokenizer.vocabSize}`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path.join(found, 'weights.bin'));
  } catch (err) {
    throw bad(`weights.bin is unreadable (${(err as Error).message})`);
  }
  if (createHash('sha256').update(bytes).digest('hex') !== meta.weightsSha256) {
    throw bad('weights.bin does not match its checksum');
  }
  // Copy into an aligned buffer: a Buffer's offset need not be a multiple of 4.
  const floats = new Float32Array(new Uint8Array(bytes).buffer);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const e of meta.tensors) {
    const size = e.shape.reduce((a, b) => a * b, 1);
    if (e.offset + size > floats.length) throw bad(`tensor ${e.name} lies outside weights.bin`);
    tensors.set(e.name, { shape: e.shape, data: floats.subarray(e.offset, e.offset + size) });
  }
  return { dir: found, meta, tokenizer, tensors };
}

/** Copies saved values into variables, checking names and shapes. */
export function assignTensors(files: CheckpointFiles, prefix: string, targets: Map<string, tf.Variable>): void {
  for (const [name, variable] of targets) {
    const saved = files.tensors.get(`${prefix}/${name}`);
    if (!saved) throw new TrainingError(`Checkpoint ${files.dir} lacks tensor ${prefix}/${name}`);
    if (saved.shape.join(',') !== variable.shape.join(',')) {
      throw new TrainingError(
        `Checkpoint ${files.dir}: ${prefix}/${name} has shape [${saved.shape}], the model expects [${variable.shape}]`,
      );
    }
    tf.tidy(() => variable.assign(tf.tensor(saved.data, saved.shape, 'float32')));
  }
}

/** A trained model ready for inference (set the tfjs backend first). */
export interface LoadedCheckpoint {
  model: GPT;
  tokenizer: Tokenizer;
  modelConfig: ModelConfig;
  trainConfig: TrainConfig;
  step: number;
  /** Id of the corpus manifest the run trained on. */
  manifestId: string;
  /** SHA-256 of the checkpoint's weights.bin. */
  weightsSha256: string;
}

/** Loads the model and tokenizer of a run folder or checkpoint folder. */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const files = await readCheckpoint(dir);
  const { modelConfig, trainConfig, step, manifestId, weightsSha256 } = files.meta;
  const model = new GPT(modelConfig, { seed: deriveSeed(trainConfig.seed, 'model') });
  try {
    assignTensors(files, 'weight', model.namedWeights());
  } catch (err) {
    model.dispose();
    throw err;
  }
  model.rngState = files.meta.modelRngState;
  return { model, tokenizer: files.tokenizer, modelConfig, trainConfig, step, manifestId, weightsSha256 };
}
