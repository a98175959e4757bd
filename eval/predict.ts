/**
 * Prediction with a trained GPT: greedy decoding, batched across frames, with a
 * key/value cache (`GPT.forwardCached`), plus the recompute-the-whole-prefix path
 * the equivalence test and the benchmark compare it with.
 *
 * Requests are sorted by prompt length and decoded `batchSize` at a time, each
 * prompt left-padded to its batch's longest. Padding is masked out of attention
 * and each row counts its positions from its first real token (see KVCache), so
 * a row decodes as it would alone; rows that end leave the batch. A prompt that
 * is a prefix of another (a trace's earlier frames) is not fed at all: its keys
 * and values are cut from the longer prompt's cache.
 *
 * Three uses:
 * - teacher-forced: for each call/line frame, the prompt is the true trace up to
 *   the frame's event separator (cut into a window like training's when it is
 *   longer than the context: the context, then as many whole preceding frames as
 *   fit), and the model writes the locals until a special token;
 * - rollout: from the context alone the model writes the whole trace;
 * - direct output: the context, then `<|return_sep|>`; the value after `<|arg_sep|>`.
 */
import type { Trace } from '../src/schema.js';
import type { GPT, KVCache } from '../training/model.js';
import { SPECIAL_TOKENS, contextSegments, encodeSegments, encodeTrace, sourceLine, type SequenceOptions } from '../training/sequence.js';
import * as tf from '../training/tf.js';
import type { Tokenizer } from '../training/tokenizer.js';
import { decodeState, stateStrings, type DecodeOptions as StateDecodeOptions, type RolloutFrame, type StateStrings } from './metrics.js';

/** One greedy continuation to compute. */
export interface DecodeRequest {
  prompt: readonly number[];
  /** At most this many new tokens (the stop token included). */
  maxNewTokens: number;
}

export interface DecodeResult {
  /** The new tokens, without the stop token. */
  ids: number[];
  /** The stop token that ended the continuation, or null when `maxNewTokens` ran out. */
  stop: number | null;
}

export interface DecodeOptions {
  /** Ends a continuation (the token is not part of `ids`). */
  isStop: (id: number) => boolean;
  /** Most requests decoded together; default 32. */
  batchSize?: number;
  /** `cache` (default) decodes incrementally; `recompute` re-runs the full prefix for every token. */
  mode?: 'cache' | 'recompute';
  /** Called after each batch with the number of requests it finished. */
  onProgress?: (done: number) => void;
}

/** Greedy next tokens from logits [B, V]. */
function argmaxRows(logits: tf.Tensor2D): Int32Array {
  const ids = tf.tidy(() => tf.argMax(logits, 1)); // [B]
  const out = ids.dataSync() as Int32Array;
  ids.dispose();
  return Int32Array.from(out);
}

/** Rows left-padded to the longest: ids, and each row's padding (filler id 0, never seen). */
function leftPad(rows: readonly (readonly number[])[]): { ids: Int32Array; padding: number[]; length: number } {
  const length = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * length);
  const padding = rows.map((r, i) => {
    ids.set(r, i * length + length - r.length);
    return length - r.length;
  });
  return { ids, padding, length };
}

/**
 * lockstep's feed for a cache whose rows are `rows`: drops the rows that ended from the cache,
 * then feeds each live row its token and returns the greedy next ones.
 */
function cachedStep(model: GPT, cache: KVCache, rows: readonly number[]): (live: readonly number[], fed: readonly number[]) => Int32Array {
  let held = rows;
  return (live, fed) => {
    if (live.length !== held.length) {
      cache.keepRows(live.map((row) => held.indexOf(row)));
      held = [...live];
    }
    const idx = tf.tensor2d([...fed], [fed.length, 1], 'int32'); // [B, 1]
    const logits = model.forwardCached(idx, cache); // [B, V]
    idx.dispose();
    const ids = argmaxRows(logits);
    logits.dispose();
    return ids;
  };
}

/**
 * Greedy decoding in lockstep. `ids` are the first next tokens of rows `live`; `take(row, id)`
 * records a row's token and says whether the row goes on; `feed(live, fed)` feeds each row that
 * goes on its token and returns the ids that follow.
 */
function lockstep(
  live: readonly number[],
  ids: Int32Array,
  take: (row: number, id: number) => boolean,
  feed: (live: readonly number[], fed: readonly number[]) => Int32Array,
): void {
  for (;;) {
    const fed: number[] = [];
    live = live.filter((row, k) => {
      const goesOn = take(row, ids[k]!);
      if (goesOn) fed.push(ids[k]!);
      return goesOn;
    });
    if (live.length === 0) return;
    ids = feed(live, fed);
  }
}

/** Next ids from re-running the whole left-padded prefix of each row (the reference the cache must equal). */
function recomputeNext(model: GPT, seqs: readonly (readonly number[])[]): Int32Array {
  const { ids, padding, length: t } = leftPad(seqs);
  const b = seqs.length;
  const logits = tf.tidy(() => {
    const idx = tf.tensor2d(ids, [b, t], 'int32'); // [B, T]
    let packing: { documents: tf.Tensor2D; positions: tf.Tensor2D } | undefined;
    if (padding.some((p) => p > 0)) {
      // The padding as a document of its own before each row's, whose positions start at 0.
      const documents = new Int32Array(b * t);
      const positions = new Int32Array(b * t);
      padding.forEach((p, r) => {
        for (let j = p; j < t; j++) {
          documents[r * t + j] = 1;
          positions[r * t + j] = j - p;
        }
      });
      packing = { documents: tf.tensor2d(documents, [b, t], 'int32'), positions: tf.tensor2d(positions, [b, t], 'int32') };
    }
    const all = model.forward(idx, packing); // [B, T, V]
    return tf.reshape(tf.slice(all, [0, t - 1, 0], [b, 1, -1]), [b, -1]) as tf.Tensor2D; // [B, V]
  });
  const next = argmaxRows(logits);
  logits.dispose();
  return next;
}

/**
 * For each request, the request whose prompt it is a prefix of and whose prefill it can share
 * (itself when none): in lexicographic order a prompt that is a prefix of any other is one of
 * the next prompt, and that one's host is its host.
 */
function prefixHosts(requests: readonly DecodeRequest[], todo: readonly number[]): Map<number, number> {
  const compare = (a: readonly number[], b: readonly number[]): number => {
    const n = Math.min(a.length, b.length);
    for (let j = 0; j < n; j++) if (a[j] !== b[j]) return a[j]! - b[j]!;
    return a.length - b.length;
  };
  const sorted = [...todo].sort((a, b) => compare(requests[a]!.prompt, requests[b]!.prompt) || a - b);
  const host = new Map<number, number>();
  for (let k = sorted.length - 1; k >= 0; k--) {
    const i = sorted[k]!;
    const after = sorted[k + 1];
    const prompt = requests[i]!.prompt;
    const isPrefix = after !== undefined && prompt.every((id, j) => requests[after]!.prompt[j] === id);
    host.set(i, isPrefix ? host.get(after)! : i);
  }
  return host;
}

/**
 * Cached decoding: the longest prompts are fed `batchSize` at a time, and every prompt that is a
 * prefix of one of them (a teacher-forced trace's earlier frames) decodes from a cut of that
 * cache instead of a prefill of its own, `batchSize` rows at a time in order of length.
 */
function decodeShared(
  model: GPT,
  requests: readonly DecodeRequest[],
  todo: readonly number[],
  take: (row: number, id: number) => boolean,
  options: { batchSize: number; onProgress?: (done: number) => void },
): void {
  const host = prefixHosts(requests, todo);
  const guestsOf = new Map<number, number[]>();
  for (const i of todo) {
    const h = host.get(i)!;
    if (!guestsOf.has(h)) guestsOf.set(h, []);
    guestsOf.get(h)!.push(i);
  }
  const byLength = (a: number, b: number): number => requests[a]!.prompt.length - requests[b]!.prompt.length || a - b;
  const hosts = [...guestsOf.keys()].sort(byLength);
  for (let h = 0; h < hosts.length; h += options.batchSize) {
    const hostBatch = hosts.slice(h, h + options.batchSize);
    const { ids, padding, length } = leftPad(hostBatch.map((i) => requests[i]!.prompt));
    const cache = model.createCache(hostBatch.length, { padding, keepKeys: true });
    let logits: tf.Tensor2D | null = null;
    try {
      // Not inside tf.tidy: the cache's new tensors must outlive this call.
      const idx = tf.tensor2d(ids, [hostBatch.length, length], 'int32'); // [Bh, T]
      const all = model.forwardCachedAll(idx, cache); // [Bh, T, V]
      logits = tf.reshape(all, [hostBatch.length * length, -1]) as tf.Tensor2D; // [Bh·T, V]
      tf.dispose([idx, all]);
      const guests = hostBatch.flatMap((i, row) => guestsOf.get(i)!.map((g) => ({ g, row }))).sort((a, b) => byLength(a.g, b.g));
      for (let k = 0; k < guests.length; k += options.batchSize) {
        const batch = guests.slice(k, k + options.batchSize);
        const picks = batch.map(({ g, row }) => ({ row, length: requests[g]!.prompt.length }));
        // Each guest's first token: the host's logits at the guest's last prompt position.
        const at = tf.tensor1d(picks.map(({ row, length: n }) => row * length + padding[row]! + n - 1), 'int32');
        const firstLogits = tf.gather(logits, at); // [B, V]
        const first = argmaxRows(firstLogits);
        tf.dispose([at, firstLogits]);
        const prefixes = cache.prefixes(picks);
        const held = batch.map(({ g }) => g);
        try {
          lockstep(held, first, take, cachedStep(model, prefixes, held));
        } finally {
          prefixes.dispose();
        }
        options.onProgress?.(batch.length);
      }
    } finally {
      logits?.dispose();
      cache.dispose();
    }
  }
}

/**
 * Greedy continuations of many prompts, in the order given. Each generates up to its own
 * `maxNewTokens` within its own room in the context (blockSize − its prompt length).
 */
export function decodeGreedy(model: GPT, requests: readonly DecodeRequest[], options: DecodeOptions): DecodeResult[] {
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new Error(`Expected \`batchSize\` to be a positive integer, got ${batchSize}`);
  }
  const block = model.config.blockSize;
  for (const r of requests) {
    if (r.prompt.length === 0) throw new Error('Expected a non-empty prompt');
    if (r.prompt.length > block) {
      throw new Error(`Prompt of ${r.prompt.length} tokens exceeds the model's blockSize ${block}`);
    }
  }
  const results: DecodeResult[] = requests.map(() => ({ ids: [], stop: null }));
  const budget = requests.map((r) => Math.min(r.maxNewTokens, block - r.prompt.length));
  const take = (i: number, id: number): boolean => {
    if (options.isStop(id)) {
      results[i]!.stop = id;
      return false;
    }
    results[i]!.ids.push(id);
    return results[i]!.ids.length < budget[i]!;
  };
  const todo = requests.flatMap((_, i) => (budget[i]! > 0 ? [i] : []));
  if (todo.length < requests.length) options.onProgress?.(requests.length - todo.length);
  if (options.mode !== 'recompute') {
    decodeShared(model, requests, todo, take, { batchSize, onProgress: options.onProgress });
    return results;
  }
  const sorted = [...todo].sort((a, b) => requests[a]!.prompt.length - requests[b]!.prompt.length || a - b);
  for (let k = 0; k < sorted.length; k += batchSize) {
    const batch = sorted.slice(k, k + batchSize);
    const seqs = batch.map((i) => [...requests[i]!.prompt]);
    const rowOf = new Map(batch.map((i, r) => [i, r]));
    lockstep(batch, recomputeNext(model, seqs), take, (live, fed) => {
      live.forEach((i, j) => seqs[rowOf.get(i)!]!.push(fed[j]!));
      return recomputeNext(model, live.map((i) => seqs[rowOf.get(i)!]!));
    });
    options.onProgress?.(batch.length);
  }
  return results;
}

/** The special-token ids decoding needs. */
export interface SpecialIds {
  frameSep: number;
  actionSep: number;
  argSep: number;
  callSep: number;
  returnSep: number;
  traceEnd: number;
}

export function specialIds(tokenizer: Tokenizer): SpecialIds {
  const id = (t: string): number => tokenizer.specialId(t);
  return {
    frameSep: id(SPECIAL_TOKENS.frameSep),
    actionSep: id(SPECIAL_TOKENS.actionSep),
    argSep: id(SPECIAL_TOKENS.argSep),
    callSep: id(SPECIAL_TOKENS.callSep),
    returnSep: id(SPECIAL_TOKENS.returnSep),
    traceEnd: id(SPECIAL_TOKENS.traceEnd),
  };
}

/** A teacher-forced frame to predict: its step, its prompt and its generation budget. */
export interface FrameRequest extends DecodeRequest {
  /** Index of the step in `trace.steps`. */
  step: number;
}

export interface FramePlan {
  requests: FrameRequest[];
  /** Call/line frames that could not be evaluated: even the context and the frame's separator leave no room. */
  skipped: number;
}

/**
 * The prompts for every call/line frame of a trace. Generation may run to the true
 * state's token count plus 8 (an output that much longer cannot be the truth); the
 * prompt is the whole prefix when that fits the context, otherwise the context
 * followed by the longest run of whole frames just before.
 */
export function planFrames(
  trace: Trace,
  tokenizer: Tokenizer,
  options: SequenceOptions & { blockSize: number },
): FramePlan {
  const enc = encodeTrace(trace, tokenizer, { diff: options.diff, changedOnly: options.changedOnly, operands: options.operands });
  const ids = enc.ids;
  const ctx = Array.from(ids.subarray(0, enc.contextLength));
  const requests: FrameRequest[] = [];
  let skipped = 0;
  for (const [k, f] of enc.frames.entries()) {
    if (f.event !== 'call' && f.event !== 'line') continue;
    const truthLength = f.stateEnd - f.stateStart;
    const budget = truthLength + 8;
    const room = options.blockSize - budget;
    if (f.stateStart <= room) {
      requests.push({ step: f.step, prompt: Array.from(ids.subarray(0, f.stateStart)), maxNewTokens: budget });
      continue;
    }
    let from = f.start;
    const fits = (start: number): boolean => ctx.length + (f.stateStart - start) <= room;
    if (!fits(from)) {
      skipped += 1;
      continue;
    }
    for (let j = k - 1; j >= 0 && fits(enc.frames[j]!.start); j--) from = enc.frames[j]!.start;
    requests.push({ step: f.step, prompt: [...ctx, ...Array.from(ids.subarray(from, f.stateStart))], maxNewTokens: budget });
  }
  return { requests, skipped };
}

/**
 * Teacher-forced outputs, one generated locals text per request (in order). The
 * locals end at the first special token, normally `<|action_sep|>`.
 */
export function predictFrames(
  model: GPT,
  tokenizer: Tokenizer,
  requests: readonly DecodeRequest[],
  options: Omit<DecodeOptions, 'isStop'>,
): { texts: string[]; generatedTokens: number } {
  const results = decodeGreedy(model, requests, { ...options, isStop: (id) => tokenizer.isSpecial(id) });
  let generatedTokens = 0;
  const texts = results.map((r) => {
    generatedTokens += r.ids.length + (r.stop === null ? 0 : 1);
    return tokenizer.decode(r.ids);
  });
  return { texts, generatedTokens };
}

/** The true trace as rollout compares it, frame by frame. */
export function trueRolloutFrames(trace: Trace): RolloutFrame[] {
  const lines = trace.source.split('\n');
  return trace.steps.map((s) => ({
    event: s.event,
    state: s.locals === null ? null : stateStrings(s.locals),
    action: sourceLine(lines, s.line),
    arg: s.locals === null ? (s.arg?.repr ?? '') : null,
  }));
}

const EVENT_OF: Record<string, string> = {
  [SPECIAL_TOKENS.callSep]: 'call',
  [SPECIAL_TOKENS.lineSep]: 'line',
  [SPECIAL_TOKENS.returnSep]: 'return',
  [SPECIAL_TOKENS.exceptionSep]: 'exception',
};

/**
 * Parses generated frames (the text after the context, up to `<|trace_end|>`) into
 * rollout frames. `".."` resolves against the previous generated frame when both are
 * `line` frames (adjacent line frames always belong to the same call); a
 * changed-locals-only diff against the latest state of its invocation, as the
 * encoder writes it. Anything malformed is kept as a frame that matches nothing.
 */
export function parseRolloutFrames(text: string, options: { diff: boolean; changedOnly?: boolean }): RolloutFrame[] {
  const body = text.split(SPECIAL_TOKENS.traceEnd)[0]!;
  const chunks = body.split(SPECIAL_TOKENS.frameSep);
  if (chunks[chunks.length - 1] === '') chunks.pop();
  const frames: RolloutFrame[] = [];
  /** The latest state of each open invocation (the reference of a changed-locals-only diff). */
  const open: (StateStrings | null)[] = [];
  for (const chunk of chunks) {
    const sep = Object.keys(EVENT_OF).find((s) => chunk.startsWith(s));
    const event = sep ? EVENT_OF[sep]! : 'malformed';
    const rest = sep ? chunk.slice(sep.length) : chunk;
    const a = rest.indexOf(SPECIAL_TOKENS.actionSep);
    if (a < 0) {
      frames.push({ event: 'malformed', state: null, action: rest, arg: null });
      continue;
    }
    const head = rest.slice(0, a);
    const tail = rest.slice(a + SPECIAL_TOKENS.actionSep.length);
    if (event === 'call' || event === 'line') {
      const prev = frames[frames.length - 1];
      const previous =
        !options.diff || event === 'call'
          ? null
          : options.changedOnly
            ? (open[open.length - 1] ?? null)
            : prev?.event === 'line'
              ? prev.state
              : null;
      const state = parseState(head, { ...options, previous });
      // A line's operand block (`<|arg_sep|>{...}`, see SequenceOptions.operands) is not part of its action.
      const g = tail.indexOf(SPECIAL_TOKENS.argSep);
      frames.push({ event, state, action: g < 0 ? tail : tail.slice(0, g), arg: null });
      if (event === 'call') open.push(state);
      else if (open.length > 0) open[open.length - 1] = state;
    } else {
      if (event === 'return') open.pop();
      const g = tail.indexOf(SPECIAL_TOKENS.argSep);
      const action = g < 0 ? tail : tail.slice(0, g);
      const arg = g < 0 ? null : parseJsonString(tail.slice(g + SPECIAL_TOKENS.argSep.length));
      frames.push({ event, state: null, action, arg });
    }
  }
  return frames;
}

function parseJsonString(text: string): string | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

function parseState(text: string, options: StateDecodeOptions): StateStrings | null {
  const decoded = decodeState(text, options);
  return decoded.ok ? decoded.values : null;
}

/** The entry call's return value in a rollout: the last return that closes the first frame. */
export function rolloutOutput(frames: readonly RolloutFrame[]): string | null {
  let depth = 0;
  let out: string | null = null;
  for (const f of frames) {
    if (f.event === 'call') depth += 1;
    else if (f.event === 'return') {
      depth -= 1;
      if (depth === 0) out = f.arg;
    }
  }
  return out;
}

export function contextIds(trace: Pick<Trace, 'source' | 'entry'>, tokenizer: Tokenizer): number[] {
  return encodeSegments(contextSegments(trace), tokenizer).ids;
}

/**
 * Generates a whole trace from the context (batch of one). When the context fills,
 * the cache is rebuilt from a training-like window: the context, the last whole
 * frames that fit in half the block, and the frame being written. It stops at
 * `<|trace_end|>`, after `maxTokens`, or (`stopAtFirstReturn`) at the first return to
 * depth 0. `generateRollouts` writes the same tokens for many traces at once.
 */
export function generateRollout(
  model: GPT,
  tokenizer: Tokenizer,
  trace: Pick<Trace, 'source' | 'entry'>,
  options: { maxTokens: number; stopAtFirstReturn?: boolean },
): { text: string; tokens: number } {
  const sp = specialIds(tokenizer);
  const ctx = contextIds(trace, tokenizer);
  const block = model.config.blockSize;
  if (ctx.length >= block) return { text: '', tokens: 0 };
  const generated: number[] = [];
  /** Start (in `generated`) of each frame. */
  const frameStarts: number[] = [0];
  const cache = model.createCache(1);
  const feed = (ids: number[]): tf.Tensor2D => {
    const idx = tf.tensor2d([ids], [1, ids.length], 'int32'); // [1, t]
    const logits = model.forwardCached(idx, cache); // [1, V]
    idx.dispose();
    return logits;
  };
  let depth = 0;
  let event: number | null = null;
  let logits: tf.Tensor2D | null = feed(ctx);
  try {
    while (logits !== null && generated.length < options.maxTokens) {
      const id = argmaxRows(logits)[0]!;
      logits.dispose();
      logits = null;
      generated.push(id);
      if (id === sp.traceEnd) break;
      if (frameStarts[frameStarts.length - 1] === generated.length - 1) event = id;
      if (id === sp.frameSep) {
        frameStarts.push(generated.length);
        if (event === sp.callSep) depth += 1;
        if (event === sp.returnSep && --depth <= 0 && options.stopAtFirstReturn) break;
      }
      if (cache.length + 1 <= block) {
        logits = feed([id]);
        continue;
      }
      // The context is full: restart the cache from a window like training's.
      cache.dispose();
      let from = frameStarts[frameStarts.length - 1]!;
      for (let j = frameStarts.length - 2; j >= 0 && ctx.length + (generated.length - frameStarts[j]!) <= block / 2; j--) {
        from = frameStarts[j]!;
      }
      const window = [...ctx, ...generated.slice(from)];
      if (window.length >= block) break;
      logits = feed(window);
    }
  } finally {
    logits?.dispose();
    cache.dispose();
  }
  return { text: tokenizer.decode(generated), tokens: generated.length };
}

/** One rollout to generate: a program's context, and at most `maxTokens` new tokens. */
export interface RolloutRequest {
  trace: Pick<Trace, 'source' | 'entry'>;
  maxTokens: number;
}

export interface RolloutOptions {
  /** Stop at the first return to depth 0 (the entry's own return). */
  stopAtFirstReturn?: boolean;
  /** Most rollouts decoded together; default 32. */
  batchSize?: number;
  /** Called with the number of rollouts just finished. */
  onProgress?: (done: number) => void;
}

/** A rollout between steps: what it wrote, where its frames start, and what its cache holds. */
interface RolloutRow {
  index: number;
  maxTokens: number;
  ctx: number[];
  generated: number[];
  /** Start (in `generated`) of each frame. */
  frameStarts: number[];
  depth: number;
  /** The current frame's event token, once written. */
  event: number | null;
  /** What the next prefill feeds: the context, or a window after the context filled. */
  prompt: number[];
  /** Positions in the row's cache. */
  held: number;
}

/**
 * Many rollouts, each exactly as `generateRollout` writes it alone, decoded `batchSize` at a
 * time in lockstep (prompts left-padded to the longest, see KVCache). A rollout whose context
 * fills leaves its batch with its training-like window and is prefilled again, with the other
 * waiting windows and contexts, in a later batch.
 */
export function generateRollouts(
  model: GPT,
  tokenizer: Tokenizer,
  requests: readonly RolloutRequest[],
  options: RolloutOptions = {},
): { text: string; tokens: number }[] {
  const batchSize = options.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new Error(`Expected \`batchSize\` to be a positive integer, got ${batchSize}`);
  }
  const sp = specialIds(tokenizer);
  const block = model.config.blockSize;
  const results = requests.map(() => ({ text: '', tokens: 0 }));
  const finish = (row: RolloutRow): false => {
    results[row.index] = { text: tokenizer.decode(row.generated), tokens: row.generated.length };
    options.onProgress?.(1);
    return false;
  };
  const waiting: RolloutRow[] = [];
  let empty = 0;
  requests.forEach((r, index) => {
    const ctx = contextIds(r.trace, tokenizer);
    if (ctx.length >= block || r.maxTokens <= 0) empty += 1;
    else waiting.push({ index, maxTokens: r.maxTokens, ctx, generated: [], frameStarts: [0], depth: 0, event: null, prompt: ctx, held: 0 });
  });
  if (empty > 0) options.onProgress?.(empty);
  /** Records a row's next token; whether the row goes on in its batch (else it ended or waits for a restart). */
  const take = (row: RolloutRow, id: number): boolean => {
    const { generated, frameStarts } = row;
    generated.push(id);
    if (id === sp.traceEnd) return finish(row);
    if (frameStarts[frameStarts.length - 1] === generated.length - 1) row.event = id;
    if (id === sp.frameSep) {
      frameStarts.push(generated.length);
      if (row.event === sp.callSep) row.depth += 1;
      if (row.event === sp.returnSep && --row.depth <= 0 && options.stopAtFirstReturn) return finish(row);
    }
    if (generated.length >= row.maxTokens) return finish(row);
    if (row.held + 1 <= block) {
      row.held += 1;
      return true;
    }
    // The context is full: restart from a window like training's.
    let from = frameStarts[frameStarts.length - 1]!;
    for (let j = frameStarts.length - 2; j >= 0 && row.ctx.length + (generated.length - frameStarts[j]!) <= block / 2; j--) {
      from = frameStarts[j]!;
    }
    const window = [...row.ctx, ...generated.slice(from)];
    if (window.length >= block) return finish(row);
    row.prompt = window;
    waiting.push(row);
    return false;
  };
  while (waiting.length > 0) {
    // Similar lengths together, for little padding.
    waiting.sort((a, b) => a.prompt.length - b.prompt.length || a.index - b.index);
    const batch = waiting.splice(0, batchSize);
    const { ids, padding, length } = leftPad(batch.map((r) => r.prompt));
    const cache = model.createCache(batch.length, { padding });
    try {
      const idx = tf.tensor2d(ids, [batch.length, length], 'int32'); // [B, T]
      const logits = model.forwardCached(idx, cache); // [B, V]
      idx.dispose();
      const first = argmaxRows(logits);
      logits.dispose();
      for (const row of batch) row.held = row.prompt.length;
      const inCache = batch.map((_, k) => k);
      lockstep(inCache, first, (k, id) => take(batch[k]!, id), cachedStep(model, cache, inCache));
    } finally {
      cache.dispose();
    }
  }
  return results;
}

/** Direct output requests: the context and `<|return_sep|>`; up to `maxNewTokens` for the rest of the frame. */
export function directOutputRequest(trace: Pick<Trace, 'source' | 'entry'>, tokenizer: Tokenizer, maxNewTokens: number): DecodeRequest {
  return { prompt: [...contextIds(trace, tokenizer), tokenizer.specialId(SPECIAL_TOKENS.returnSep)], maxNewTokens };
}

/** The value a direct-output continuation names (`<|action_sep|>line<|arg_sep|>"value"`, up to any `<|frame_sep|>`), or null. */
export function parseDirectOutput(text: string): string | null {
  const frame = text.split(SPECIAL_TOKENS.frameSep)[0]!;
  const g = frame.indexOf(SPECIAL_TOKENS.argSep);
  if (g < 0) return null;
  return parseJsonString(frame.slice(g + SPECIAL_TOKENS.argSep.length));
}
