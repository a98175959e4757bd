/**
 * Encoded traces → fixed-length training rows.
 *
 * A row holds `blockSize + 1` tokens: inputs are its first `blockSize`, targets
 * the same shifted by one. Each token also carries a *target kind* saying
 * whether predicting it counts and for which objective ({@link KIND_NONE},
 * {@link KIND_NEXT} for code/action tokens, {@link KIND_STATE}, {@link KIND_OUTPUT} for the
 * answer of an output example).
 *
 * A trace longer than a row is cut into windows on frame boundaries. Every
 * window starts with the trace's context (the source must stay in view), a
 * continuation window then repeats the frame just before its first new frame
 * so the model sees the state it continues from; the repeated tokens are
 * inputs only (kind none), so nothing is counted twice.
 *
 * Output examples (sequence.ts) and task examples (tasks.ts) are windows of
 * their own whose prompt is inputs only.
 *
 * Short windows are packed into rows (first fit over a few open rows, in a
 * seeded order); the first token of each packed trace is never a target and
 * the padding tail is never one either. Each token also records which
 * document (window) of its row it belongs to and its position within that
 * document, so the model attends within one document only and numbers its
 * positions from 0, as it does when it meets the document alone at evaluation.
 */
import { ROLE_OUTPUT, ROLE_STATE, SPECIAL_TOKENS, type EncodedOutputExample, type EncodedTrace } from './sequence.js';
import type { Tokenizer } from './tokenizer.js';
import { Rng, type RngState } from '../src/rng.js';

export const KIND_NONE = 0;
export const KIND_NEXT = 1;
export const KIND_STATE = 2;
/** The answer of an output example (its return value). */
export const KIND_OUTPUT = 3;

const KIND_OF_ROLE: Record<number, number> = { [ROLE_STATE]: KIND_STATE, [ROLE_OUTPUT]: KIND_OUTPUT };

/** A piece of a trace that fits one row. */
export interface Window {
  ids: Int32Array;
  /** Target kind per token (as the target of the previous position). */
  kinds: Uint8Array;
}

/** Rows of `rowLength` tokens stored flat. */
export interface Rows {
  rowLength: number;
  count: number;
  ids: Int32Array;
  kinds: Uint8Array;
  /** Per token, the document (window) of its row it belongs to: 0, 1, …; the padding tail is one more. */
  documents: Uint16Array;
  /** Per token, its position within its document (the padding tail counts on from 0 too). */
  positions: Uint16Array;
}

function kindsOf(roles: Uint8Array, from: number, to: number, counted: (i: number) => boolean): Uint8Array {
  const out = new Uint8Array(to - from);
  for (let i = from; i < to; i++) {
    out[i - from] = counted(i) ? (KIND_OF_ROLE[roles[i]!] ?? KIND_NEXT) : KIND_NONE;
  }
  return out;
}

/**
 * Cuts an encoded trace into windows of at most `rowLength` tokens, or returns
 * null when even the context plus one frame does not fit.
 */
export function windowTrace(enc: EncodedTrace, rowLength: number): Window[] | null {
  const n = enc.ids.length;
  // The first token starts a document: no previous position predicts it.
  if (n <= rowLength) return [{ ids: enc.ids, kinds: kindsOf(enc.roles, 0, n, (i) => i > 0) }];
  const ctx = enc.contextLength;
  if (enc.frames.length === 0) return null;
  // Frame k covers [bounds[k], bounds[k+1]); the last one also holds <|trace_end|>.
  const bounds = enc.frames.map((f) => f.start);
  bounds.push(n);
  const frameLen = (k: number) => bounds[k + 1]! - bounds[k]!;
  const windows: Window[] = [];
  let k = 0;
  while (k < enc.frames.length) {
    const first = windows.length === 0;
    let overlap = first ? 0 : frameLen(k - 1);
    if (ctx + overlap + frameLen(k) > rowLength) overlap = 0;
    if (ctx + overlap + frameLen(k) > rowLength) return null;
    let used = ctx + overlap;
    let e = k;
    while (e < enc.frames.length && used + frameLen(e) <= rowLength) used += frameLen(e++);
    const ids = new Int32Array(used);
    const kinds = new Uint8Array(used);
    ids.set(enc.ids.subarray(0, ctx), 0);
    kinds.set(kindsOf(enc.roles, 0, ctx, (i) => first && i > 0), 0);
    const from = bounds[k]! - overlap;
    const to = bounds[e]!;
    ids.set(enc.ids.subarray(from, to), ctx);
    kinds.set(kindsOf(enc.roles, from, to, (i) => i >= bounds[k]!), ctx);
    windows.push({ ids, kinds });
    k = e;
  }
  return windows;
}

/** An output example as one window (targets after its prompt), or null when it does not fit a row. */
export function outputExampleWindow(ex: EncodedOutputExample, rowLength: number): Window | null {
  if (ex.ids.length > rowLength) return null;
  return { ids: ex.ids, kinds: kindsOf(ex.roles, 0, ex.ids.length, (i) => i >= ex.promptLength) };
}

/** How many open rows first-fit packing looks at; more packs tighter but costs time. */
const OPEN_ROWS = 16;

/** Packs windows into rows of `rowLength` tokens in a seeded order, padding each row's tail. */
export function packWindows(windows: readonly Window[], options: { rowLength: number; padId: number; seed: number }): Rows {
  const { rowLength, padId, seed } = options;
  const order = new Rng(seed).permutation(windows.length);
  const rows: Window[][] = [];
  const fill: number[] = [];
  let open: number[] = [];
  for (const w of order) {
    const len = windows[w]!.ids.length;
    let target = open.find((r) => fill[r]! + len <= rowLength);
    if (target === undefined) {
      target = rows.length;
      rows.push([]);
      fill.push(0);
      open.push(target);
      if (open.length > OPEN_ROWS) open = open.slice(1);
    }
    rows[target]!.push(windows[w]!);
    fill[target]! += len;
  }
  const ids = new Int32Array(rows.length * rowLength).fill(padId);
  const kinds = new Uint8Array(rows.length * rowLength);
  const documents = new Uint16Array(rows.length * rowLength);
  const positions = new Uint16Array(rows.length * rowLength);
  const number = (from: number, to: number, doc: number) => {
    documents.fill(doc, from, to);
    for (let i = from; i < to; i++) positions[i] = i - from;
  };
  rows.forEach((row, r) => {
    const end = (r + 1) * rowLength;
    let at = r * rowLength;
    row.forEach((w, doc) => {
      ids.set(w.ids, at);
      kinds.set(w.kinds, at);
      number(at, at + w.ids.length, doc);
      at += w.ids.length;
    });
    number(at, end, row.length);
  });
  return { rowLength, count: rows.length, ids, kinds, documents, positions };
}

/** A batch as flat arrays: inputs, labels (-1 = not a target) and the target kinds. */
export interface Batch {
  batchSize: number;
  blockSize: number;
  /** Input ids [B*T]. */
  inputs: Int32Array;
  /** Target ids [B*T], -1 where the target does not count. */
  labels: Int32Array;
  /** Target kinds [B*T] ({@link KIND_NEXT}/{@link KIND_STATE}/{@link KIND_OUTPUT}/{@link KIND_NONE}). */
  kinds: Uint8Array;
  /** Document of each input within its row [B*T] (see {@link Rows}). */
  documents: Int32Array;
  /** Position of each input within its document [B*T]. */
  positions: Int32Array;
}

/** Assembles the rows `indices` into a batch. */
export function makeBatch(rows: Rows, indices: readonly number[]): Batch {
  const T = rows.rowLength - 1;
  const B = indices.length;
  const inputs = new Int32Array(B * T);
  const labels = new Int32Array(B * T);
  const kinds = new Uint8Array(B * T);
  const documents = new Int32Array(B * T);
  const positions = new Int32Array(B * T);
  indices.forEach((r, b) => {
    const base = r * rows.rowLength;
    inputs.set(rows.ids.subarray(base, base + T), b * T);
    documents.set(rows.documents.subarray(base, base + T), b * T);
    positions.set(rows.positions.subarray(base, base + T), b * T);
    kinds.set(rows.kinds.subarray(base + 1, base + 1 + T), b * T);
    for (let t = 0; t < T; t++) {
      labels[b * T + t] = kinds[b * T + t] === KIND_NONE ? -1 : rows.ids[base + 1 + t]!;
    }
  });
  return { batchSize: B, blockSize: T, inputs, labels, kinds, documents, positions };
}

/** Counts of what went into a set of rows. */
export interface RowStats {
  traces: number;
  /** Traces whose context plus one frame does not fit a row. */
  skipped: number;
  /** Output examples packed (those that fit a row). */
  outputExamples: number;
  /** Derived task examples packed (training/tasks.ts; those that fit a row). */
  taskExamples: number;
  windows: number;
  rows: number;
  /** Target tokens per kind. */
  nextTokens: number;
  stateTokens: number;
  /** Answer tokens of the output examples. */
  outputTokens: number;
}

/** Windows and packs encoded traces (and any output examples) into rows; reports what was skipped. */
export function buildRows(
  encoded: Iterable<EncodedTrace>,
  options: {
    blockSize: number;
    tokenizer: Tokenizer;
    seed: number;
    outputExamples?: Iterable<EncodedOutputExample>;
    /** Task examples: like output examples, targets after the prompt (training/tasks.ts). */
    taskExamples?: Iterable<EncodedOutputExample>;
  },
): { rows: Rows; stats: RowStats } {
  const rowLength = options.blockSize + 1;
  const windows: Window[] = [];
  let traces = 0;
  let skipped = 0;
  for (const enc of encoded) {
    traces++;
    const ws = windowTrace(enc, rowLength);
    if (ws === null) skipped++;
    else windows.push(...ws);
  }
  /** Adds the examples that fit a row as windows of their own; returns how many did. */
  const addExamples = (examples: Iterable<EncodedOutputExample>): number => {
    let added = 0;
    for (const ex of examples) {
      const w = outputExampleWindow(ex, rowLength);
      if (w === null) continue;
      windows.push(w);
      added++;
    }
    return added;
  };
  const outputExamples = addExamples(options.outputExamples ?? []);
  const taskExamples = addExamples(options.taskExamples ?? []);
  const rows = packWindows(windows, { rowLength, padId: options.tokenizer.specialId(SPECIAL_TOKENS.pad), seed: options.seed });
  const counts = countKinds(rows.kinds);
  return {
    rows,
    stats: { traces, skipped, outputExamples, taskExamples, windows: windows.length, rows: rows.count, nextTokens: counts.next, stateTokens: counts.state, outputTokens: counts.output },
  };
}

/** Target tokens of each kind among `kinds` (rows or a batch). */
export function countKinds(kinds: Uint8Array): { next: number; state: number; output: number } {
  const counts = { next: 0, state: 0, output: 0 };
  for (const k of kinds) {
    if (k === KIND_NEXT) counts.next++;
    else if (k === KIND_STATE) counts.state++;
    else if (k === KIND_OUTPUT) counts.output++;
  }
  return counts;
}

/** Saved form of a {@link BatchSampler}. */
export interface SamplerState {
  rng: RngState;
  order: number[];
  cursor: number;
  epoch: number;
}

/**
 * Draws batches of row indices: a seeded shuffle of all rows, walked in order,
 * reshuffled each epoch. Its whole state is saved in checkpoints.
 */
export class BatchSampler {
  private constructor(
    private readonly rowCount: number,
    private readonly rng: Rng,
    private order: number[],
    private cursor: number,
    private epochCount: number,
  ) {}

  static create(rowCount: number, seed: number): BatchSampler {
    const rng = new Rng(seed);
    return new BatchSampler(rowCount, rng, rng.permutation(rowCount), 0, 0);
  }

  static restore(rowCount: number, state: SamplerState): BatchSampler {
    if (state.order.length !== rowCount) {
      throw new Error(`Sampler state covers ${state.order.length} rows, the data has ${rowCount}`);
    }
    return new BatchSampler(rowCount, new Rng(state.rng), [...state.order], state.cursor, state.epoch);
  }

  get epoch(): number {
    return this.epochCount;
  }

  next(batchSize: number): number[] {
    const out: number[] = [];
    while (out.length < batchSize) {
      if (this.cursor >= this.order.length) {
        this.order = this.rng.permutation(this.rowCount);
        this.cursor = 0;
        this.epochCount++;
      }
      out.push(this.order[this.cursor++]!);
    }
    return out;
  }

  state(): SamplerState {
    return { rng: this.rng.state(), order: [...this.order], cursor: this.cursor, epoch: this.epochCount };
  }
}
