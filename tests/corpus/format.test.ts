import { describe, expect, it } from 'vitest';
import { decodeShard, encodeShard, type CorpusTrace } from '../../corpus/format.js';
import type { Trace } from '../../src/schema.js';
import { incrementTrace, randomTrace, v } from './fixtures.js';

const asCorpus = (t: Trace, split: CorpusTrace['split'] = 'train', origin = ''): CorpusTrace => ({ ...t, split, origin });

function expectSameTrace(got: CorpusTrace, want: CorpusTrace): void {
  // JSON strings compare key order too: reconstructed locals must keep the frame's order.
  expect(JSON.stringify(got.steps)).toBe(JSON.stringify(want.steps));
  const { steps: _a, ...restGot } = got;
  const { steps: _b, ...restWant } = want;
  expect(restGot).toEqual(restWant);
}

describe('shard encoding', () => {
  it('round-trips a simple trace with full locals at every step', () => {
    const t = asCorpus(incrementTrace(), 'val', 'synthetic:easy');
    const [back] = [...decodeShard(encodeShard([t], '{}'))];
    expectSameTrace(back, t);
  });

  it('reconstructs 300 random traces losslessly: deletions, reorders, ids, __proto__, unicode', () => {
    const traces = Array.from({ length: 300 }, (_, i) => asCorpus(randomTrace(i), i % 3 === 0 ? 'test' : 'train', `o${i % 4}`));
    const back = [...decodeShard(encodeShard(traces, '{}'))];
    expect(back).toHaveLength(300);
    back.forEach((b, i) => expectSameTrace(b, traces[i]));
  });

  it('stores only changed locals for a long loop (delta smaller than full states)', () => {
    const steps: Trace['steps'] = [{ event: 'call', line: 1, func: 'f', depth: 0, locals: { n: v('200') }, arg: null, stdout: '' }];
    const locals: Record<string, ReturnType<typeof v>> = { n: v('200'), big: v(`'${'x'.repeat(150)}'`, 'str') };
    for (let i = 0; i < 200; i++) {
      locals.i = v(String(i));
      steps.push({ event: 'line', line: 3, func: 'f', depth: 0, locals: { ...locals }, arg: null, stdout: '' });
    }
    const t = asCorpus({ ...incrementTrace(), steps });
    const bytes = encodeShard([t], '{}');
    const fullJson = JSON.stringify(t).length;
    expect(bytes.length).toBeLessThan(fullJson / 3);
    expectSameTrace([...decodeShard(bytes)][0], t);
  });

  it('gives identical bytes for identical input (fixed dictionary ids, no clock)', () => {
    const traces = Array.from({ length: 20 }, (_, i) => asCorpus(randomTrace(i)));
    const a = encodeShard(traces, '{"k":1}');
    encodeShard([asCorpus(randomTrace(99))], '{}'); // other work in between must not matter
    const b = encodeShard(traces, '{"k":1}');
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('encodes an empty shard and a trace without steps', () => {
    expect([...decodeShard(encodeShard([], '{}'))]).toEqual([]);
    const t = asCorpus({ ...incrementTrace(), steps: [], status: 'syntax_error', message: 'SyntaxError: bad', result: null });
    expectSameTrace([...decodeShard(encodeShard([t], '{}'))][0], t);
  });

  it('skips decoding rows the filter rejects', () => {
    const traces = [asCorpus(incrementTrace('a'), 'train'), asCorpus(incrementTrace('b'), 'test')];
    const back = [...decodeShard(encodeShard(traces, '{}'), { keep: (split) => split === 'test' })];
    expect(back.map((t) => t.id)).toEqual(['b']);
  });
});
