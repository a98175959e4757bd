import { describe, expect, it } from 'vitest';
import {
  ROLE_ACTION,
  ROLE_CODE,
  ROLE_OUTPUT,
  ROLE_STATE,
  SPECIAL_TOKEN_LIST,
  SPECIAL_TOKENS,
  encodeOutputExample,
  encodeTrace,
  lineOperands,
  outputExampleSegments,
  traceToSegments,
  traceToText,
} from '../../training/sequence.js';
import { KIND_NEXT, KIND_NONE, KIND_OUTPUT, KIND_STATE, buildRows, makeBatch, outputExampleWindow, windowTrace } from '../../training/data.js';
import { trainTokenizer } from '../../training/tokenizer.js';
import { designExample, loopTrace, makeTrace, step, val } from './fixtures.js';

const S = SPECIAL_TOKENS;
const texts = [designExample(), loopTrace(5), loopTrace(12)].flatMap((t) =>
  traceToSegments(t, { diff: true }).filter((s) => !s.special).map((s) => s.text),
);
const tok = trainTokenizer(texts, { vocabSize: 400, specialTokens: SPECIAL_TOKEN_LIST });

describe('CWM training sequence', () => {
  it('writes the DESIGN.md example exactly', () => {
    expect(traceToText(designExample(), { diff: false })).toBe(
      `${S.traceContextStart}def f(x):\n    y = x + 1\n    return y\nf(3)${S.frameSep}` +
        `${S.callSep}{"x": "3"}${S.actionSep}def f(x):${S.frameSep}` +
        `${S.lineSep}{"x": "3"}${S.actionSep}    y = x + 1${S.frameSep}` +
        `${S.lineSep}{"x": "3", "y": "4"}${S.actionSep}    return y${S.frameSep}` +
        `${S.returnSep}${S.actionSep}    return y${S.argSep}"4"${S.frameSep}` +
        S.traceEnd,
    );
  });

  it('diff encoding writes ".." for values unchanged since the previous line of the same call', () => {
    const text = traceToText(designExample(), { diff: true });
    // The first line after the call spells everything; the next one diffs against it.
    expect(text).toContain(`${S.lineSep}{"x": "3"}${S.actionSep}    y = x + 1`);
    expect(text).toContain(`${S.lineSep}{"x": "..", "y": "4"}${S.actionSep}    return y`);
  });

  it('diff look-back stops at a nested call and return', () => {
    const trace = makeTrace({
      source: 'def g(a):\n    return a\ndef f(x):\n    y = g(x)\n    return y\n',
      entry: 'f(1)',
      steps: [
        step('call', 3, { locals: { x: '1' } }),
        step('line', 4, { locals: { x: '1' } }),
        step('call', 1, { func: 'g', depth: 1, locals: { a: '1' } }),
        step('line', 2, { func: 'g', depth: 1, locals: { a: '1' } }),
        step('return', 2, { func: 'g', depth: 1, arg: '1' }),
        step('line', 5, { locals: { x: '1', y: '1' } }),
        step('return', 5, { arg: '1' }),
      ],
    });
    const text = traceToText(trace, { diff: true });
    expect(text).toContain(`${S.lineSep}{"x": "1", "y": "1"}${S.actionSep}    return y`);
    expect(text).not.toContain('".."');
  });

  it('diff look-back passes over an exception caught in the same frame', () => {
    const trace = makeTrace({
      source: 'def f(x):\n    try:\n        1 / 0\n    except ZeroDivisionError:\n        x = 2\n    return x\n',
      entry: 'f(1)',
      steps: [
        step('call', 1, { locals: { x: '1' } }),
        step('line', 2, { locals: { x: '1' } }),
        step('line', 3, { locals: { x: '1' } }),
        step('exception', 3, { arg: 'ZeroDivisionError: division by zero' }),
        step('line', 4, { locals: { x: '1' } }),
        step('line', 5, { locals: { x: '1' } }),
        step('line', 6, { locals: { x: '2' } }),
        step('return', 6, { arg: '2' }),
      ],
    });
    const text = traceToText(trace, { diff: true });
    expect(text).toContain(`${S.exceptionSep}${S.actionSep}        1 / 0${S.argSep}"ZeroDivisionError: division by zero"${S.frameSep}`);
    expect(text).toContain(`${S.lineSep}{"x": ".."}${S.actionSep}    except ZeroDivisionError:`);
    expect(text).toContain(`${S.lineSep}{"x": "2"}${S.actionSep}    return x`);
  });

  it('with operands, writes after each line the current values of the locals it names', () => {
    const text = traceToText(loopTrace(2), { diff: true, changedOnly: true, operands: true });
    const plain = traceToText(loopTrace(2), { diff: true, changedOnly: true });
    // Exactly the plain text with blocks inserted after line actions: remove them and nothing else differs.
    expect(text.replace(/<\|arg_sep\|>\{[^}]*\}(?=<\|frame_sep\|>)/g, '')).toBe(plain);
    // The call frame's `def` line carries none; each block holds the values of the frame it ends.
    expect(text).toContain(`${S.callSep}{"n": "2"}${S.actionSep}def f(n):${S.frameSep}`);
    expect(text).toContain(`{"s": "0"}${S.actionSep}    for i in range(n):${S.argSep}{"n": "2"}${S.frameSep}`);
    expect(text).toContain(`        s += i${S.argSep}{"s": "0", "i": "1"}${S.frameSep}`);
    expect(text).toContain(`    for i in range(n):${S.argSep}{"i": "1", "n": "2"}${S.frameSep}`);
    expect(text).toContain(`    return s${S.argSep}{"s": "1"}${S.frameSep}${S.returnSep}`);
    // A line naming no bound local (`s = 0` before s exists) gets no block.
    expect(text).toContain(`    s = 0${S.frameSep}`);
  });

  it('finds operands outside strings and comments, not attribute names or keywords, in order of use', () => {
    const locals = { xs: val('[1]'), i: val('0'), s: val("'a'"), d: val('{}'), append: val('1'), None: val('1') };
    expect(lineOperands('    xs.append(i)  # i again, s', locals)).toEqual(['xs', 'i']);
    expect(lineOperands('    d["xs"] = s + \'i\' + "s\\"i" + s', locals)).toEqual(['d', 's']);
    expect(lineOperands('    if i not in xs and d is None:', locals)).toEqual(['i', 'xs', 'd']);
    expect(lineOperands('    return xsi + i2', locals)).toEqual([]);
    expect(lineOperands('    return i', null)).toEqual([]);
  });

  it('with operands, keeps every frame\'s state span on the locals alone', () => {
    const trace = loopTrace(3);
    const plain = encodeTrace(trace, tok, { diff: true, changedOnly: true });
    const withOps = encodeTrace(trace, tok, { diff: true, changedOnly: true, operands: true });
    expect(withOps.ids.length).toBeGreaterThan(plain.ids.length);
    const states = (e: typeof plain) => e.frames.map((f) => tok.decode(e.ids.slice(f.stateStart, f.stateEnd)));
    expect(states(withOps)).toEqual(states(plain));
    for (const f of withOps.frames) expect(withOps.roles[f.stateEnd]).toBe(ROLE_ACTION);
  });

  it('gives roles code to the context, state to locals and values, action to the rest', () => {
    const enc = encodeTrace(designExample(), tok, { diff: false });
    expect(enc.ids.length).toBe(enc.roles.length);
    for (let i = 0; i < enc.contextLength; i++) expect(enc.roles[i]).toBe(ROLE_CODE);
    for (const f of enc.frames) {
      expect(enc.roles[f.start]).toBe(ROLE_ACTION);
      for (let i = f.stateStart; i < f.stateEnd; i++) expect(enc.roles[i]).toBe(ROLE_STATE);
      expect(enc.roles[f.stateEnd]).toBe(ROLE_ACTION);
      expect(enc.ids[f.end - 1]).toBe(tok.specialId(S.frameSep));
    }
    expect(enc.ids.at(-1)).toBe(tok.specialId(S.traceEnd));
  });

  it('locates each frame: locals right after the event separator, ended by <|action_sep|>', () => {
    const trace = designExample();
    const enc = encodeTrace(trace, tok, { diff: false });
    expect(enc.frames.map((f) => f.event)).toEqual(['call', 'line', 'line', 'return']);
    const [call, , line2, ret] = enc.frames;
    expect(call!.stateStart).toBe(call!.start + 1);
    expect(enc.ids[call!.stateEnd]).toBe(tok.specialId(S.actionSep));
    expect(tok.decode(enc.ids.slice(line2!.stateStart, line2!.stateEnd))).toBe('{"x": "3", "y": "4"}');
    expect(enc.ids[ret!.stateStart - 1]).toBe(tok.specialId(S.argSep));
    expect(tok.decode(enc.ids.slice(ret!.stateStart, ret!.stateEnd))).toBe('"4"');
    expect(tok.decode(enc.ids)).toBe(traceToText(trace, { diff: false }));
  });

  it('keeps a short trace in one window whose every token but the first is a target', () => {
    const enc = encodeTrace(designExample(), tok, { diff: false });
    const ws = windowTrace(enc, 1000)!;
    expect(ws).toHaveLength(1);
    expect(ws[0]!.kinds[0]).toBe(KIND_NONE);
    expect([...ws[0]!.kinds.slice(1)].every((k) => k !== KIND_NONE)).toBe(true);
  });

  it('cuts a long trace into windows that each start with the source context', () => {
    const enc = encodeTrace(loopTrace(12), tok, { diff: true });
    const rowLength = enc.contextLength + 80;
    const ws = windowTrace(enc, rowLength)!;
    expect(ws.length).toBeGreaterThan(2);
    const context = [...enc.ids.slice(0, enc.contextLength)];
    let counted = 0;
    ws.forEach((w, i) => {
      expect(w.ids.length).toBeLessThanOrEqual(rowLength);
      expect([...w.ids.slice(0, enc.contextLength)]).toEqual(context);
      // The repeated context is counted once, in the first window only.
      const ctxCounted = [...w.kinds.slice(1, enc.contextLength)].some((k) => k !== KIND_NONE);
      expect(ctxCounted).toBe(i === 0);
      counted += w.kinds.filter((k) => k !== KIND_NONE).length;
    });
    // Every target of the trace is counted exactly once over all windows.
    expect(counted).toBe(enc.ids.length - 1);
  });

  it('refuses to window a trace whose context does not fit', () => {
    const enc = encodeTrace(loopTrace(3), tok, { diff: false });
    expect(windowTrace(enc, enc.contextLength + 2)).toBeNull();
  });

  it('packs short traces into full rows with labels -1 on padding and document starts', () => {
    const traces = Array.from({ length: 20 }, (_, i) => loopTrace(i % 4));
    const { rows, stats } = buildRows(
      traces.map((t) => encodeTrace(t, tok, { diff: false })),
      { blockSize: 1024, tokenizer: tok, seed: 1 },
    );
    expect(stats.skipped).toBe(0);
    expect(rows.count).toBeLessThan(traces.length);
    const batch = makeBatch(rows, [0, 1]);
    const pad = tok.specialId(S.pad);
    const start = tok.specialId(S.traceContextStart);
    for (let i = 0; i < batch.labels.length; i++) {
      if (batch.labels[i] === pad || batch.labels[i] === start) throw new Error('pad/start must not be a target');
      if (batch.kinds[i] === KIND_NONE) expect(batch.labels[i]).toBe(-1);
      else expect([KIND_NEXT, KIND_STATE]).toContain(batch.kinds[i]);
    }
    expect(stats.stateTokens).toBeGreaterThan(0);
    expect(stats.nextTokens).toBeGreaterThan(0);
  });

  it('numbers each packed document and its positions from 0, so no document sees another', () => {
    const traces = Array.from({ length: 20 }, (_, i) => loopTrace(i % 4));
    const { rows } = buildRows(
      traces.map((t) => encodeTrace(t, tok, { diff: false })),
      { blockSize: 1024, tokenizer: tok, seed: 1 },
    );
    const start = tok.specialId(S.traceContextStart);
    const pad = tok.specialId(S.pad);
    let documentsSeen = 0;
    for (let r = 0; r < rows.count; r++) {
      const base = r * rows.rowLength;
      for (let i = base; i < base + rows.rowLength; i++) {
        const first = i === base || rows.documents[i] !== rows.documents[i - 1];
        if (first) {
          // A new document starts at position 0 with the next number, with a trace's first token or the padding.
          expect(rows.positions[i]).toBe(0);
          expect(rows.documents[i]).toBe(i === base ? 0 : rows.documents[i - 1]! + 1);
          expect([start, pad]).toContain(rows.ids[i]);
          if (rows.ids[i] === start) documentsSeen++;
        } else {
          expect(rows.positions[i]).toBe(rows.positions[i - 1]! + 1);
        }
      }
    }
    expect(documentsSeen).toBe(traces.length);
    const batch = makeBatch(rows, [0]);
    expect(Array.from(batch.positions)).toEqual(Array.from(rows.positions.subarray(0, batch.blockSize)));
    expect(Array.from(batch.documents)).toEqual(Array.from(rows.documents.subarray(0, batch.blockSize)));
  });
});

describe('output examples', () => {
  const withResult = (t: ReturnType<typeof designExample>, repr: string) => ({ ...t, result: val(repr) });

  it('write the context, <|return_sep|> and the entry call\'s return frame with its value', () => {
    const segments = outputExampleSegments(withResult(designExample(), '4'))!;
    expect(segments.map((s) => s.text).join('')).toBe(
      `${S.traceContextStart}def f(x):\n    y = x + 1\n    return y\nf(3)${S.frameSep}` +
        `${S.returnSep}${S.actionSep}    return y${S.argSep}"4"${S.frameSep}${S.traceEnd}`,
    );
    expect(segments.find((s) => s.text === '"4"')!.role).toBe('output');
  });

  it('take the return that closes the entry call, not a nested one', () => {
    const trace = makeTrace({
      source: 'def g(a):\n    return a * 2\ndef f(x):\n    return g(x) + 1\n',
      entry: 'f(1)',
      steps: [
        step('call', 3, { locals: { x: '1' } }),
        step('line', 4, { locals: { x: '1' } }),
        step('call', 1, { func: 'g', depth: 1, locals: { a: '1' } }),
        step('line', 2, { func: 'g', depth: 1, locals: { a: '1' } }),
        step('return', 2, { func: 'g', depth: 1, arg: '2' }),
        step('return', 4, { arg: '3' }),
      ],
    });
    const text = outputExampleSegments(withResult(trace, '3'))!.map((s) => s.text).join('');
    expect(text).toContain(`${S.actionSep}    return g(x) + 1${S.argSep}"3"`);
  });

  it('exist only for function programs that returned a value', () => {
    expect(outputExampleSegments(designExample())).toBeNull(); // result null: the call raised or was cut off
    const script = makeTrace({ source: 'x = 1\n', entry: null, steps: [step('line', 1, { func: '<module>' })] });
    expect(outputExampleSegments({ ...script, result: val('None') })).toBeNull();
  });

  it('make only the tokens after the prompt targets, the value as the output loss, the rest as next-token loss', () => {
    const ex = encodeOutputExample(withResult(designExample(), '4'), tok)!;
    expect(ex.ids[ex.promptLength - 1]).toBe(tok.specialId(S.returnSep));
    expect(Array.from(ex.ids.subarray(0, ex.promptLength - 1))).toEqual(
      Array.from(encodeTrace(designExample(), tok, { diff: false }).ids.subarray(0, ex.promptLength - 1)),
    );
    const w = outputExampleWindow(ex, 1024)!;
    for (let i = 0; i < ex.promptLength; i++) expect(w.kinds[i]).toBe(KIND_NONE);
    const expected = Array.from(ex.roles.subarray(ex.promptLength), (r) => (r === ROLE_OUTPUT ? KIND_OUTPUT : KIND_NEXT));
    expect(Array.from(w.kinds.subarray(ex.promptLength))).toEqual(expected);
    // The answer `"4"` is output loss; the return line, separators and closing tokens next-token loss.
    expect(expected.filter((k) => k === KIND_OUTPUT).length).toBe(tok.encode('"4"').length);
    expect(expected.filter((k) => k === KIND_NEXT).length).toBeGreaterThan(3);
    expect(outputExampleWindow(ex, ex.ids.length - 1)).toBeNull();
  });

  it('are packed beside the traces and counted', () => {
    const traces = [withResult(designExample(), '4'), loopTrace(3)];
    const { stats } = buildRows(
      traces.map((t) => encodeTrace(t, tok, { diff: false })),
      { blockSize: 1024, tokenizer: tok, seed: 1, outputExamples: traces.flatMap((t) => encodeOutputExample(t, tok) ?? []) },
    );
    expect(stats.outputExamples).toBe(traces.filter((t) => t.result !== null).length);
    expect(stats.windows).toBe(traces.length + stats.outputExamples);
  });
});
