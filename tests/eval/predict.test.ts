import { beforeAll, describe, expect, it } from 'vitest';
import type { Trace } from '../../src/schema.js';
import { MODEL_PRESETS } from '../../training/config.js';
import { GPT } from '../../training/model.js';
import { SPECIAL_TOKEN_LIST, SPECIAL_TOKENS, traceToText } from '../../training/sequence.js';
import * as tf from '../../training/tf.js';
import { trainTokenizer, type Tokenizer } from '../../training/tokenizer.js';
import { MostFrequentValues } from '../../eval/baselines.js';
import { scoreRollout } from '../../eval/metrics.js';
import { TeacherForcedEvaluator } from '../../eval/teacher.js';
import { encodeOutputExample, encodeTrace } from '../../training/sequence.js';
import {
  decodeGreedy,
  directOutputRequest,
  generateRollout,
  generateRollouts,
  contextIds,
  parseDirectOutput,
  parseRolloutFrames,
  planFrames,
  rolloutOutput,
  trueRolloutFrames,
  type DecodeRequest,
  type DecodeResult,
} from '../../eval/predict.js';
import { loopTrace, step } from './fixtures.js';

const loop = (n: number): Trace => loopTrace({ start: 0, n });

let tokenizer: Tokenizer;
let model: GPT;

beforeAll(async () => {
  await tf.setBackend('cpu');
  tokenizer = trainTokenizer([1, 2, 3, 6].map((n) => traceToText(loop(n), { diff: true })), {
    vocabSize: 300,
    specialTokens: SPECIAL_TOKEN_LIST,
  });
  model = new GPT({ ...MODEL_PRESETS.tiny, blockSize: 96, vocabSize: tokenizer.vocabSize }, { seed: 7 });
});

describe('greedy decoding', () => {
  it('gives the same tokens with the key/value cache as recomputing the full prefix', () => {
    const requests: DecodeRequest[] = [
      { prompt: [5, 9, 200, 3], maxNewTokens: 20 },
      { prompt: [1, 2, 3, 4], maxNewTokens: 12 },
      { prompt: [7, 7, 7, 7, 7, 7, 7], maxNewTokens: 25 },
      { prompt: [260], maxNewTokens: 30 },
      { prompt: Array.from({ length: 80 }, (_, i) => (i * 37) % 290), maxNewTokens: 40 },
    ];
    const neverStop = { isStop: () => false, batchSize: 2 };
    const before = tf.memory().numTensors;
    const cached = decodeGreedy(model, requests, { ...neverStop, mode: 'cache' });
    const recomputed = decodeGreedy(model, requests, { ...neverStop, mode: 'recompute' });
    expect(tf.memory().numTensors).toBe(before);
    expect(cached).toEqual(recomputed);
    expect(cached.map((r) => r.ids.length)).toEqual([20, 12, 25, 30, 16]); // the last one is cut by blockSize 96
    // Batching rows (left-padded to a common length) gives each row what it gets alone.
    const alone = requests.map((r) => decodeGreedy(model, [r], { ...neverStop, mode: 'cache' })[0]);
    expect(alone).toEqual(cached);
  });

  it('stops at a stop token and leaves it out', () => {
    const free = decodeGreedy(model, [{ prompt: [1, 2, 3], maxNewTokens: 10 }], { isStop: () => false })[0]!;
    const stopAt = free.ids[3]!;
    const r = decodeGreedy(model, [{ prompt: [1, 2, 3], maxNewTokens: 10 }], { isStop: (id) => id === stopAt })[0]!;
    expect(r.stop).toBe(stopAt);
    expect(r.ids).toEqual(free.ids.slice(0, free.ids.indexOf(stopAt)));
  });
});

describe.each([
  ['learned', false],
  ['learned', true],
  ['rope', false],
  ['rope', true],
] as const)('greedy decoding of prompts of mixed lengths (%s positions, smeared keys %s)', (positionEncoding, smearKeys) => {
  const blockSize = 48;
  let mixed: GPT;
  beforeAll(() => {
    mixed = new GPT({ ...MODEL_PRESETS.tiny, blockSize, vocabSize: 60, positionEncoding, smearKeys }, { seed: 3 });
    // Sharper than the initial weights, so the next token depends on the whole prompt.
    tf.tidy(() => {
      for (const [name, w] of mixed.namedWeights()) if (!name.includes('ln_')) w.assign(tf.mul(w, 6));
      mixed.blocks.forEach((block, i) => block.attn.smear?.assign(tf.tensor1d([1.5 - i, -0.5 + i])));
    });
  });

  const prompt = (length: number, salt: number): number[] => Array.from({ length }, (_, i) => (i * 7 + salt * 13 + 1) % 60);
  const requests: DecodeRequest[] = [
    { prompt: prompt(1, 0), maxNewTokens: 20 },
    { prompt: prompt(3, 1), maxNewTokens: 9 },
    { prompt: prompt(4, 2), maxNewTokens: 0 },
    { prompt: prompt(6, 3), maxNewTokens: 30 },
    { prompt: prompt(11, 4), maxNewTokens: 5 },
    { prompt: prompt(12, 5), maxNewTokens: 16 },
    { prompt: prompt(12, 6), maxNewTokens: 1 },
    { prompt: prompt(19, 7), maxNewTokens: 40 },
    { prompt: prompt(27, 8), maxNewTokens: 12 },
    { prompt: prompt(40, 9), maxNewTokens: 30 }, // cut by the context at 8
    { prompt: prompt(47, 10), maxNewTokens: 4 }, // room for 1
    { prompt: prompt(48, 11), maxNewTokens: 4 }, // no room
    { prompt: prompt(2, 12), maxNewTokens: 60 }, // cut by the context at 46
    // Prefixes of one prompt (as a trace's frames are), decoded from its cache.
    { prompt: prompt(17, 20), maxNewTokens: 12 },
    { prompt: prompt(1, 20), maxNewTokens: 10 },
    { prompt: prompt(5, 20), maxNewTokens: 0 },
    { prompt: prompt(33, 20), maxNewTokens: 30 }, // cut by the context at 15
    { prompt: prompt(40, 20), maxNewTokens: 3 },
    { prompt: prompt(17, 20), maxNewTokens: 25 },
  ];
  /** Decoding each request alone on the cpu backend takes a while on a loaded machine. */
  const SLOW = 180_000;
  const aloneEach = (options: { isStop: (id: number) => boolean; mode?: 'cache' | 'recompute' }): DecodeResult[] =>
    requests.map((r) => decodeGreedy(mixed, [r], { ...options, batchSize: 1 })[0]!);

  it('gives each row the tokens it gets decoded alone', () => {
    const neverStop = { isStop: () => false };
    const before = tf.memory().numTensors;
    const together = decodeGreedy(mixed, requests, { ...neverStop, batchSize: 32 });
    expect(tf.memory().numTensors).toBe(before);
    expect(together).toEqual(aloneEach(neverStop));
    expect(together.map((r) => r.ids.length)).toEqual([20, 9, 0, 30, 5, 16, 1, 29, 12, 8, 1, 0, 46, 12, 10, 0, 15, 3, 25]);
  }, SLOW);

  it('gives each row the tokens it gets decoded alone when rows stop at different steps', () => {
    // Stop at a token some rows write early and others never.
    const counts = new Map<number, number>();
    for (const r of decodeGreedy(mixed, requests, { isStop: () => false })) {
      for (const id of new Set(r.ids.slice(0, 4))) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const stopId = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
    const stopping = { isStop: (id: number) => id === stopId };
    const stopped = decodeGreedy(mixed, requests, { ...stopping, batchSize: 32 });
    expect(stopped).toEqual(aloneEach(stopping));
    expect(stopped.filter((r) => r.stop === stopId).length).toBeGreaterThan(1);
    expect(stopped.some((r) => r.stop === null && r.ids.length > 4)).toBe(true);
    // In batches of 5 (several batches of prompts and of prefixes) and by recomputing the prefix.
    expect(decodeGreedy(mixed, requests, { ...stopping, batchSize: 5 })).toEqual(stopped);
    expect(decodeGreedy(mixed, requests, { ...stopping, batchSize: 32, mode: 'recompute' })).toEqual(stopped);
  }, SLOW);
});

describe('teacher-forced prompts', () => {
  it('uses the true prefix up to the event separator, or a window that keeps the context', () => {
    const trace = loop(6);
    const plan = planFrames(trace, tokenizer, { diff: true, blockSize: 96 });
    const ctxText = traceToText({ ...trace, steps: [] }, { diff: true }).replace('<|trace_end|>', '');
    const stateSteps = trace.steps.flatMap((s, i) => (s.locals ? [i] : []));
    expect(plan.requests.length + plan.skipped).toBe(stateSteps.length);
    expect(plan.requests.length).toBeGreaterThan(0);
    for (const r of plan.requests) {
      const text = tokenizer.decode(r.prompt);
      expect(text.startsWith(ctxText)).toBe(true);
      expect(text.endsWith(trace.steps[r.step]!.event === 'call' ? '<|call_sep|>' : '<|line_sep|>')).toBe(true);
      expect(r.prompt.length + r.maxNewTokens).toBeLessThanOrEqual(96);
    }
    // Early frames see the whole prefix; later ones a window whose frames are whole.
    const full = traceToText(trace, { diff: true });
    expect(full.startsWith(tokenizer.decode(plan.requests[0]!.prompt))).toBe(true);
    const last = tokenizer.decode(plan.requests[plan.requests.length - 1]!.prompt);
    expect(full.startsWith(last)).toBe(false);
    expect(last.slice(ctxText.length).startsWith('<|line_sep|>')).toBe(true);
  });
});

describe('teacher-forced oracle', () => {
  it('scores a model that writes the true state tokens at 100%, with and without diff encoding', () => {
    const encodings = [{ diff: false }, { diff: true }, { diff: true, changedOnly: true }];
    for (const encoding of encodings) {
      const { diff } = encoding;
      const trace = loop(6);
      const enc = encodeTrace(trace, tokenizer, encoding);
      const truthByStep = new Map(enc.frames.map((f) => [f.step, tokenizer.decode(enc.ids.subarray(f.stateStart, f.stateEnd))]));
      const plan = planFrames(trace, tokenizer, { ...encoding, blockSize: 96 });
      const ev = new TeacherForcedEvaluator({ ...encoding, mostFrequent: MostFrequentValues.fit([]) });
      ev.add(trace, new Map(plan.requests.map((r) => [r.step, truthByStep.get(r.step)!])));
      const r = ev.result().model;
      expect(r.frames).toBe(plan.requests.length);
      expect(r).toMatchObject({ variableAccuracy: 1, stateExactMatch: 1, undecodableShare: 0 });
      if (diff && !encoding.changedOnly) expect([...truthByStep.values()].some((t) => t.includes('".."'))).toBe(true);
      if (encoding.changedOnly) expect([...truthByStep.values()]).toContain('{}');
    }
  });
});

describe('rollout parsing', () => {
  it('reads a generated trace back into frames that match the truth, resolving ".."', () => {
    const trace = loop(2);
    const text = traceToText(trace, { diff: true });
    const after = text.slice(text.indexOf('<|frame_sep|>') + '<|frame_sep|>'.length);
    const frames = parseRolloutFrames(after, { diff: true });
    expect(scoreRollout(trueRolloutFrames(trace), frames)).toMatchObject({ exact: true });
    expect(rolloutOutput(frames)).toBe('1');
    const broken = parseRolloutFrames(after.replace('"i": "1"', '"i": "2"'), { diff: true });
    const score = scoreRollout(trueRolloutFrames(trace), broken);
    expect(score.exact).toBe(false);
    expect(score.firstDivergence).toBe(trace.steps.findIndex((s) => s.locals?.i?.repr === '1'));
    expect(rolloutOutput(parseRolloutFrames('<|call_sep|>{}<|action_sep|>x<|frame_sep|>garbage', { diff: true }))).toBeNull();
  });

  it('reads a changed-locals-only rollout back, each diff against the latest state of its own call', () => {
    const trace: Trace = {
      ...loop(1),
      source: 'def g(k):\n    return k\ndef f(n):\n    a = g(n)\n    b = g(a)\n    return b\n',
      entry: 'f(1)',
      steps: [
        step('call', 3, { n: '1' }),
        step('line', 4, { n: '1' }),
        step('call', 1, { k: '1' }, { func: 'g', depth: 1 }),
        step('line', 2, { k: '1' }, { func: 'g', depth: 1 }),
        step('return', 2, null, { func: 'g', depth: 1, arg: '1' }),
        step('line', 5, { n: '1', a: '1' }),
        step('call', 1, { k: '1' }, { func: 'g', depth: 1 }),
        step('line', 2, { k: '1' }, { func: 'g', depth: 1 }),
        step('return', 2, null, { func: 'g', depth: 1, arg: '1' }),
        step('line', 6, { n: '1', a: '1', b: '1' }),
        step('return', 6, null, { arg: '1' }),
      ],
    };
    const encoding = { diff: true, changedOnly: true };
    const text = traceToText(trace, encoding);
    expect(text).toContain('<|line_sep|>{"b": "1"}<|action_sep|>    return b');
    const after = text.slice(text.indexOf('<|frame_sep|>') + '<|frame_sep|>'.length);
    expect(scoreRollout(trueRolloutFrames(trace), parseRolloutFrames(after, encoding))).toMatchObject({ exact: true });
  });

  it('reads a rollout with operand blocks back: a line\'s action is its source line alone', () => {
    const trace = loop(3);
    const encoding = { diff: true, changedOnly: true, operands: true };
    const text = traceToText(trace, encoding);
    expect(text).toContain('<|arg_sep|>{"');
    const after = text.slice(text.indexOf('<|frame_sep|>') + '<|frame_sep|>'.length);
    const frames = parseRolloutFrames(after, encoding);
    expect(frames.map((f) => f.action)).toEqual(trueRolloutFrames(trace).map((f) => f.action));
    expect(scoreRollout(trueRolloutFrames(trace), frames)).toMatchObject({ exact: true });
    expect(rolloutOutput(frames)).toBe(trace.result!.repr);
  });

  it('asks for a direct output with exactly the prompt of a training output example', () => {
    const trace = loop(3);
    const ex = encodeOutputExample(trace, tokenizer)!;
    expect(directOutputRequest(trace, tokenizer, 16).prompt).toEqual(Array.from(ex.ids.subarray(0, ex.promptLength)));
    const continuation = tokenizer.decode(Array.from(ex.ids.subarray(ex.promptLength)));
    expect(parseDirectOutput(continuation)).toBe(trace.result!.repr);
  });

  it('reads the value of a direct output continuation', () => {
    expect(parseDirectOutput('<|action_sep|>    return s<|arg_sep|>"[1, 2]"')).toBe('[1, 2]');
    expect(parseDirectOutput('<|action_sep|>    return s')).toBeNull();
  });

  it('generates a rollout from the context without leaking tensors, past the block size', () => {
    const before = tf.memory().numTensors;
    const out = generateRollout(model, tokenizer, loop(3), { maxTokens: 150 });
    expect(out.tokens).toBeGreaterThan(0);
    expect(out.tokens).toBeLessThanOrEqual(150);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('batched rollouts', () => {
  const blockSize = 64;
  let rolling: GPT;
  beforeAll(() => {
    rolling = new GPT({ ...MODEL_PRESETS.tiny, blockSize, vocabSize: tokenizer.vocabSize }, { seed: 5 });
    // Sharper than the initial weights, so the next token depends on the whole prompt.
    tf.tidy(() => {
      for (const [name, w] of rolling.namedWeights()) if (!name.includes('ln_')) w.assign(tf.mul(w, 6));
    });
  });
  /**
   * The tokenizer with the frame, call, return and trace-end separators moved to tokens this
   * random model writes often, so its rollouts have frames, calls, returns and ends.
   */
  const remapped = (frameSep: number, callSep: number, returnSep: number, traceEnd: number): Tokenizer => {
    const ids = new Map<string, number>([
      [SPECIAL_TOKENS.frameSep, frameSep],
      [SPECIAL_TOKENS.callSep, callSep],
      [SPECIAL_TOKENS.returnSep, returnSep],
      [SPECIAL_TOKENS.traceEnd, traceEnd],
    ]);
    return Object.create(tokenizer, { specialId: { value: (t: string) => ids.get(t) ?? tokenizer.specialId(t) } }) as Tokenizer;
  };
  // Contexts of 24 to 38 tokens, one longer than the block, and budgets that cut some rollouts.
  const programs = Array.from({ length: 8 }, (_, k) => ({ source: `def f(${'ab'.repeat(k)}):\n    return ${k}\n`, entry: `f(${k})` }));
  programs.push({ source: `def f():\n    return ${'1 + '.repeat(40)}1\n`, entry: 'f()' });
  // Short contexts, whose windows keep whole earlier frames.
  programs.push({ source: 's', entry: '' }, { source: 'n', entry: 'f(n)' }, { source: 'i', entry: 's' });
  const budgets = [60, 50, 100, 30, 90, 100, 80, 100, 50, 90, 100, 80];
  const SLOW = 180_000;

  // One test per case and stop mode: each is synchronous work, and a worker busy for a minute
  // without a break misses the test runner's heartbeat.
  it.each([
    ['frames, calls, returns and trace ends', [82, 2, 29, 66], true],
    ['contexts that fill', [89, 11, 91, 42], true],
    ['nested calls: every empty frame a call', [82, 82, 2, 66], true],
    ['short frames, kept whole in windows', [66, 174, 89, 42], false],
  ] as const)('writes what each trace writes alone (%s)', (_, map, ends) => {
    const tok = remapped(map[0], map[1], map[2], map[3]);
    const requests = programs.map((trace, i) => ({ trace, maxTokens: budgets[i]! }));
    requests.push({ trace: programs[2]!, maxTokens: 0 });
    const room = requests.map((r) => blockSize - contextIds(r.trace, tok).length);
    expect(room.some((n) => n <= 0)).toBe(true);
    const alone = requests.map((r) => generateRollout(rolling, tok, r.trace, { maxTokens: r.maxTokens }));
    let progress = 0;
    const before = tf.memory().numTensors;
    const together = generateRollouts(rolling, tok, requests, { onProgress: (n) => (progress += n) });
    expect(tf.memory().numTensors).toBe(before);
    expect(progress).toBe(requests.length);
    expect(together).toEqual(alone);
    // Several batches, restarted rows joining rows that start.
    expect(generateRollouts(rolling, tok, requests, { batchSize: 3 })).toEqual(alone);
    // The cases the batches must get right: windows after a full context, budgets, trace ends.
    expect(alone.some((out, i) => out.tokens > room[i]!)).toBe(true);
    expect(alone.some((out, i) => out.tokens > 0 && out.tokens === requests[i]!.maxTokens)).toBe(true);
    if (ends) expect(alone.some((out, i) => out.tokens < requests[i]!.maxTokens && out.text.endsWith(tok.decode([map[3]])))).toBe(true);
  }, SLOW);

  it.each([
    ['frames, calls, returns and trace ends', [82, 2, 29, 66], true],
    ['contexts that fill', [89, 11, 91, 42], false],
    ['nested calls: every empty frame a call', [82, 82, 2, 66], true],
  ] as const)('stops each trace at its first return as it does alone (%s)', (_, map, returns) => {
    const tok = remapped(map[0], map[1], map[2], map[3]);
    const requests = programs.map((trace, i) => ({ trace, maxTokens: budgets[i]! }));
    const alone = requests.map((r) => generateRollout(rolling, tok, r.trace, { maxTokens: r.maxTokens, stopAtFirstReturn: true }));
    expect(generateRollouts(rolling, tok, requests, { stopAtFirstReturn: true })).toEqual(alone);
    expect(generateRollouts(rolling, tok, requests, { stopAtFirstReturn: true, batchSize: 3 })).toEqual(alone);
    if (returns) {
      const free = requests.map((r) => generateRollout(rolling, tok, r.trace, { maxTokens: r.maxTokens }));
      expect(alone.filter((out, i) => out.tokens < free[i]!.tokens).length).toBeGreaterThan(0);
    }
  }, SLOW);
});
