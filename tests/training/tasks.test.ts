/**
 * Tasks derived from real traces: small programs traced in the sandbox, then the
 * debugger actions, inverse steps and questions checked against what ran.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Trace } from '../../src/schema.js';
import { TracerPool } from '../../tracer/index.js';
import { SPECIAL_TOKENS, SPECIAL_TOKEN_LIST } from '../../training/sequence.js';
import {
  TASKS,
  afterFrame,
  covers,
  deriveTaskExamples,
  encodeTaskExample,
  lineHits,
  nextLineAfter,
  nextTarget,
  inputExample,
  outTarget,
  parseTaskList,
  parseTaskMix,
  splitEntryCall,
  stepTarget,
  taskExampleText,
  untilTarget,
} from '../../training/tasks.js';
import { trainTokenizer } from '../../training/tokenizer.js';

const S = SPECIAL_TOKENS;
const PROGRAMS = {
  recursive: { source: 'def f(n):\n    if n == 0:\n        return 0\n    r = f(n - 1)\n    return r + n\n', entry: 'f(2)' },
  nested: { source: 'def g(a):\n    b = a * 2\n    return b\n\ndef f(x):\n    y = g(x)\n    z = y + 1\n    return z\n', entry: 'f(3)' },
  loop: { source: 'def f(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n', entry: 'f(3)' },
  branch: { source: 'def f(x):\n    if x > 0:\n        y = 1\n    else:\n        y = 2\n    return y\n', entry: 'f(5)' },
  strings: { source: 'def f(s, xs):\n    return s + str(len(xs))', entry: "f('a)(', [1, (2, 3)])" },
  raises: { source: 'def f(x):\n    return 1 // x\n', entry: 'f(0)' },
  script: { source: 'x = 1\ny = x + 1\n', entry: null },
};
const traces: Record<string, Trace> = {};
let pool: TracerPool;

beforeAll(async () => {
  pool = await TracerPool.create({ workers: 1 });
  const programs = Object.entries(PROGRAMS).map(([id, p]) => ({ id, ...p }));
  for await (const t of pool.traceAll(programs)) traces[t.id] = t;
}, 120_000);

afterAll(async () => {
  await pool?.close();
});

/** Index of the k-th (1-based) step matching `pred`. */
function nth(trace: Trace, k: number, pred: (s: Trace['steps'][number]) => boolean): number {
  const hits = trace.steps.flatMap((s, i) => (pred(s) ? [i] : []));
  return hits[k - 1]!;
}

describe('debugger actions on real traces', () => {
  it('next steps over a recursive call to the line after it, in the same invocation', () => {
    const t = traces.recursive!;
    const at = nth(t, 1, (s) => s.event === 'line' && s.line === 4 && s.depth === 0);
    const stop = t.steps[nextTarget(t.steps, at)!]!;
    expect(stop).toMatchObject({ event: 'line', line: 5, depth: 0 });
    expect(stop.locals!.r!.repr).toBe('1');
    // step goes into the call instead.
    expect(t.steps[stepTarget(t.steps, at)!]).toMatchObject({ event: 'call', line: 1, depth: 1 });
  });

  it('out from a nested frame stops at its return, with the return value', () => {
    const t = traces.nested!;
    const at = nth(t, 1, (s) => s.event === 'line' && s.line === 2);
    expect(t.steps[at]!.depth).toBe(1);
    const stop = t.steps[outTarget(t.steps, at)!]!;
    expect(stop).toMatchObject({ event: 'return', line: 3, depth: 1 });
    expect(stop.arg!.repr).toBe('6');
    // out from that return goes on to the caller's return.
    expect(t.steps[outTarget(t.steps, outTarget(t.steps, at)!)!]).toMatchObject({ event: 'return', line: 8, depth: 0 });
  });

  it('until L in a loop runs to the next hit of L with the state of that iteration', () => {
    const t = traces.loop!;
    const first = nth(t, 1, (s) => s.event === 'line' && s.line === 4);
    const stop = t.steps[untilTarget(t.steps, first, 4)!]!;
    expect(stop.line).toBe(4);
    expect(stop.locals!.i!.repr).toBe('1');
    expect(stop.locals!.s!.repr).toBe('0');
    const last = lineHits(t.steps, 4).at(-1)!;
    expect(untilTarget(t.steps, last, 4)).toBeNull();
  });

  it('a backward step across a call boundary gives the caller line that made the call', () => {
    const t = traces.nested!;
    const call = nth(t, 1, (s) => s.event === 'call' && s.depth === 1);
    const examples = deriveTaskExamples(t, { tasks: ['back'], diff: false, perTrace: 100 });
    const ex = examples.find((e) => e.step === call)!;
    expect(ex.answer).toEqual({ kind: 'frame', step: call - 1 });
    const { prompt, completion } = taskExampleText(ex);
    expect(prompt).toBe(
      `${S.traceContextStart}${PROGRAMS.nested.source}f(3)${S.frameSep}${S.callSep}{"a": "3"}${S.actionSep}def g(a):${S.frameSep}${S.actionSep}back${S.frameSep}`,
    );
    expect(completion).toBe(`${S.lineSep}{"x": "3"}${S.actionSep}    y = g(x)${S.frameSep}${S.traceEnd}`);
  });

  it('writes a next example as the frames so far, the command and the stop frame in full', () => {
    const t = traces.loop!;
    const ex = deriveTaskExamples(t, { tasks: ['next'], diff: true, perTrace: 100 }).find((e) => e.step === 3)!;
    const { prompt, completion } = taskExampleText(ex);
    expect(prompt.startsWith(`${S.traceContextStart}${PROGRAMS.loop.source}f(3)${S.frameSep}${S.callSep}{"n": "3"}`)).toBe(true);
    // The prompt keeps the run's diff encoding, the target spells every value.
    expect(prompt).toContain('".."');
    expect(prompt.endsWith(`${S.actionSep}next${S.frameSep}`)).toBe(true);
    expect(completion).toBe(`${S.lineSep}{"n": "3", "s": "0", "i": "0"}${S.actionSep}    for i in range(n):${S.frameSep}${S.traceEnd}`);
  });
});

describe('REval-style questions on real traces', () => {
  it('coverage says which lines run', () => {
    const t = traces.branch!;
    expect(covers(t.steps, 3)).toBe(true);
    expect(covers(t.steps, 5)).toBe(false);
    const answers = Object.fromEntries(
      deriveTaskExamples(t, { tasks: ['coverage'], diff: false, perTrace: 100 }).map((e) => [e.command, e.answer.kind === 'text' ? e.answer.text : '']),
    );
    expect(answers).toEqual({ 'coverage 2': 'yes', 'coverage 3': 'yes', 'coverage 5': 'no', 'coverage 6': 'yes' });
  });

  it('next line after the k-th hit follows the loop and into calls', () => {
    const loop = traces.loop!;
    const hits = lineHits(loop.steps, 3);
    expect(hits.map((h) => nextLineAfter(loop.steps, h))).toEqual(['4', '4', '4', '5']);
    const nested = traces.nested!;
    expect(nextLineAfter(nested.steps, lineHits(nested.steps, 6)[0]!)).toBe('2');
    expect(nextLineAfter(nested.steps, lineHits(nested.steps, 8)[0]!)).toBe('end');
  });

  it('value after the k-th hit is the state once the line ran', () => {
    const t = traces.loop!;
    const ex = deriveTaskExamples(t, { tasks: ['value'], diff: false, perTrace: 100 });
    const byCommand = Object.fromEntries(ex.map((e) => [e.command, e.answer.kind === 'text' ? e.answer.text : '']));
    expect(byCommand['value s 2 1']).toBe('"0"');
    expect(byCommand['value s 4 3']).toBe('"3"');
    expect(byCommand['value i 3 2']).toBe('"1"');
    // The value after a call line is the caller's state once the call returned.
    const nested = traces.nested!;
    expect(nested.steps[afterFrame(nested.steps, lineHits(nested.steps, 6)[0]!)!]!.locals!.y!.repr).toBe('6');
    const q = deriveTaskExamples(nested, { tasks: ['value'], diff: false, perTrace: 100 }).find((e) => e.command === 'value y 6 1')!;
    expect(taskExampleText(q)).toEqual({
      prompt: `${S.traceContextStart}${PROGRAMS.nested.source}f(3)${S.frameSep}${S.actionSep}value y 6 1${S.frameSep}`,
      completion: `"6"${S.frameSep}${S.traceEnd}`,
    });
  });

  it('the output question is the output example', () => {
    const [ex] = deriveTaskExamples(traces.recursive!, { tasks: ['output'], diff: false });
    expect(taskExampleText(ex!).completion).toBe(`${S.actionSep}    return r + n${S.argSep}"3"${S.frameSep}${S.traceEnd}`);
  });
});

describe('input prediction on real traces', () => {
  it('asks for the arguments of the entry call given the source without the call and the return value', () => {
    const ex = inputExample(traces.nested!)!;
    expect(ex).toMatchObject({ task: 'input', step: null, command: 'input f', answer: { kind: 'text', text: '3' } });
    expect(taskExampleText(ex)).toEqual({
      prompt: `${S.traceContextStart}${PROGRAMS.nested.source}${S.frameSep}${S.returnSep}${S.actionSep}    return z${S.argSep}"7"${S.frameSep}${S.actionSep}input f${S.frameSep}`,
      completion: `3${S.frameSep}${S.traceEnd}`,
    });
    // The entry call never appears in the prompt.
    expect(taskExampleText(ex).prompt).not.toContain('f(3)');
  });

  it('keeps the argument list as written, brackets and quotes inside strings included', () => {
    const ex = deriveTaskExamples(traces.strings!, { tasks: ['input'], diff: false })[0]!;
    const { prompt, completion } = taskExampleText(ex);
    expect(prompt).toBe(
      `${S.traceContextStart}${PROGRAMS.strings.source}${S.frameSep}${S.returnSep}${S.actionSep}    return s + str(len(xs))${S.argSep}"'a)(2'"${S.frameSep}${S.actionSep}input f${S.frameSep}`,
    );
    expect(completion).toBe(`'a)(', [1, (2, 3)]${S.frameSep}${S.traceEnd}`);
  });

  it('has no example for a program that raised or a script', () => {
    expect(traces.raises!.status).toBe('exception');
    expect(inputExample(traces.raises!)).toBeNull();
    expect(deriveTaskExamples(traces.script!, { tasks: ['input'], diff: false })).toEqual([]);
  });

  it('splits only plain calls NAME(ARGS)', () => {
    expect(splitEntryCall('f(3, [1, 2])')).toEqual({ name: 'f', args: '3, [1, 2]' });
    expect(splitEntryCall('f()')).toEqual({ name: 'f', args: '' });
    expect(splitEntryCall('g("(", \')\')')).toEqual({ name: 'g', args: '"(", \')\'' });
    expect(splitEntryCall("f('''a ' ) ''')")).toEqual({ name: 'f', args: "'''a ' ) '''" });
    expect(splitEntryCall('f(1) + 1')).toBeNull();
    expect(splitEntryCall('f(1), f(2)')).toBeNull();
    expect(splitEntryCall('obj.m(2)')).toBeNull();
    expect(splitEntryCall('f(1')).toBeNull();
    expect(splitEntryCall('f([1)]')).toBeNull();
    expect(splitEntryCall('f(1  # )\n)')).toEqual({ name: 'f', args: '1  # )\n' });
  });
});

describe('task examples', () => {
  it('draws at most perTrace examples per task, the same ones for the same seed', () => {
    const t = traces.loop!;
    const a = deriveTaskExamples(t, { tasks: TASKS, diff: true, perTrace: 2, seed: 7 });
    const b = deriveTaskExamples(t, { tasks: TASKS, diff: true, perTrace: 2, seed: 7 });
    expect(a.map((e) => e.command + e.step)).toEqual(b.map((e) => e.command + e.step));
    for (const task of TASKS) expect(a.filter((e) => e.task === task).length).toBeLessThanOrEqual(2);
    expect(new Set(a.map((e) => e.task))).toEqual(new Set(TASKS));
  });

  it('encodes with no new special tokens, dropping early frames to fit', () => {
    const t = traces.loop!;
    const texts = Object.values(traces).map((x) => x.source);
    const tok = trainTokenizer(texts, { vocabSize: 320, specialTokens: SPECIAL_TOKEN_LIST });
    const ex = deriveTaskExamples(t, { tasks: ['until'], diff: false, perTrace: 100 }).at(-1)!;
    const full = encodeTaskExample(ex, tok, 10_000)!;
    expect(tok.decode(Array.from(full.ids))).toBe(Object.values(taskExampleText(ex)).join(''));
    const cut = encodeTaskExample(ex, tok, full.ids.length - 1)!;
    expect(cut.ids.length).toBeLessThan(full.ids.length);
    expect(tok.decode(Array.from(cut.ids.subarray(cut.promptLength)))).toBe(taskExampleText(ex).completion);
    expect(encodeTaskExample(ex, tok, 10)).toBeNull();
  });

  it('parses task lists and mixes, input prediction among them', () => {
    expect(parseTaskMix('input:2,next')).toEqual({ input: 2, next: 1 });
    expect(parseTaskMix('all').input).toBe(1);
    expect(parseTaskList('input')).toEqual(['input']);
    expect(parseTaskList('all')).toEqual([...TASKS]);
    expect(parseTaskList('next, out,next')).toEqual(['next', 'out']);
    expect(() => parseTaskList('jump')).toThrow(/Unknown task "jump"/);
  });
});
