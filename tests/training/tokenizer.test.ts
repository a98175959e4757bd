import { describe, expect, it } from 'vitest';
import { SPECIAL_TOKEN_LIST, SPECIAL_TOKENS, traceToSegments } from '../../training/sequence.js';
import { Tokenizer, bytesToString, reverseNumbers, stringToBytes, trainTokenizer } from '../../training/tokenizer.js';
import { Rng } from '../../src/rng.js';
import { cruxevalPseudoTraces, designExample, loopTrace } from './fixtures.js';

function segmentTexts(traces: ReturnType<typeof cruxevalPseudoTraces>): string[] {
  return traces.flatMap((t) => traceToSegments(t, { diff: false }).filter((s) => !s.special).map((s) => s.text));
}

const crux = cruxevalPseudoTraces();
const corpusTraces = crux.length > 0 ? crux : [designExample(), loopTrace(3), loopTrace(7)];

describe('byte-level BPE tokenizer', () => {
  const tok = trainTokenizer(segmentTexts(corpusTraces.slice(0, 400)), { vocabSize: 1024, specialTokens: SPECIAL_TOKEN_LIST });

  it('learns merges up to the requested vocabulary and is deterministic', () => {
    expect(tok.vocabSize).toBeLessThanOrEqual(1024);
    expect(tok.vocabSize).toBeGreaterThan(256 + SPECIAL_TOKEN_LIST.length + 100);
    const again = trainTokenizer(segmentTexts(corpusTraces.slice(0, 400)), { vocabSize: 1024, specialTokens: SPECIAL_TOKEN_LIST });
    expect(again.toJSON()).toEqual(tok.toJSON());
  });

  it('round-trips the text of every trace of the test set', () => {
    for (const t of corpusTraces) {
      for (const s of traceToSegments(t, { diff: true })) {
        if (s.special) continue;
        expect(tok.decode(tok.encode(s.text))).toBe(s.text);
      }
    }
  });

  it('round-trips unicode, control characters, lone surrogates and random strings', () => {
    const samples = ['', 'héllo wörld', '日本語のテキスト', '😀👍🏽 emoji', '\u0000\u0001\t\r\n', '\ud800 lone \udfff', 'x = "<|frame_sep|>"'];
    const rng = new Rng(7);
    for (let n = 0; n < 300; n++) {
      let s = '';
      const len = rng.int(40);
      for (let i = 0; i < len; i++) {
        const r = rng.next();
        s += r < 0.5 ? String.fromCharCode(32 + rng.int(95)) : r < 0.8 ? String.fromCharCode(rng.int(0x10000)) : String.fromCodePoint(0x10000 + rng.int(0x10ffff - 0x10000));
      }
      samples.push(s);
    }
    for (const s of samples) expect(tok.decode(tok.encode(s))).toBe(s);
  });

  it('gives each special token a single id and never produces one from plain text', () => {
    for (const sp of SPECIAL_TOKEN_LIST) {
      expect(tok.encodeWithSpecials(sp)).toEqual([tok.specialId(sp)]);
      expect(tok.encode(sp).some((id) => tok.isSpecial(id))).toBe(false);
    }
    const text = `${SPECIAL_TOKENS.lineSep}{"x": "3"}${SPECIAL_TOKENS.actionSep}`;
    const ids = tok.encodeWithSpecials(text);
    expect(ids[0]).toBe(tok.specialId(SPECIAL_TOKENS.lineSep));
    expect(ids.at(-1)).toBe(tok.specialId(SPECIAL_TOKENS.actionSep));
    expect(tok.decode(ids)).toBe(text);
  });

  it('splits digits one per token', () => {
    for (const s of ['1234567890', 'x = 1000000', '[10, 200, 3000]', '3.14159']) {
      const ids = tok.encode(s);
      const digits = ids.filter((id) => /\d/.test(bytesToString(tok.tokenBytes(id))));
      for (const id of digits) expect(bytesToString(tok.tokenBytes(id))).toMatch(/^\d$/);
      expect(digits.length).toBe(s.replace(/\D/g, '').length);
    }
  });

  it('saves to JSON and loads an identical tokenizer', () => {
    const loaded = new Tokenizer(JSON.parse(JSON.stringify(tok.toJSON())));
    const s = corpusTraces[0]!.source;
    expect(loaded.encode(s)).toEqual(tok.encode(s));
    expect(loaded.vocabSize).toBe(tok.vocabSize);
  });

  it('refuses a malformed tokenizer file', () => {
    expect(() => new Tokenizer({ format: 'execwm-bpe', version: 1, specialTokens: [], merges: [[5, 999]] })).toThrow(/invalid id/);
    expect(() => new Tokenizer({ format: 'nope', version: 1, specialTokens: [], merges: [] } as never)).toThrow(/Not an execwm tokenizer/);
  });

  it('decodes invalid byte sequences to replacement characters instead of throwing', () => {
    expect(bytesToString([0xff, 0x41, 0xc3])).toBe('\ufffdA\ufffd');
    expect(bytesToString(stringToBytes('ok ✓'))).toBe('ok ✓');
  });

  it('encodes thousands of traces quickly', () => {
    const many = Array.from({ length: 3000 }, (_, i) => corpusTraces[i % corpusTraces.length]!);
    const t0 = performance.now();
    let n = 0;
    for (const t of many) for (const s of traceToSegments(t, { diff: false })) if (!s.special) n += tok.encode(s.text).length;
    expect(n).toBeGreaterThan(0);
    // A guard against a quadratic slip, not a benchmark: ~0.5 s here, so 60 s holds on two loaded cores.
    expect(performance.now() - t0).toBeLessThan(60_000);
  }, 90_000);
});

describe('least-significant-digit-first numbers', () => {
  const texts = segmentTexts(corpusTraces.slice(0, 200));
  const msd = trainTokenizer(texts, { vocabSize: 1024, specialTokens: SPECIAL_TOKEN_LIST });
  const lsd = trainTokenizer(texts, { vocabSize: 1024, specialTokens: SPECIAL_TOKEN_LIST, digitOrder: 'lsd' });
  const spell = (tok: Tokenizer, s: string) => tok.encode(s).map((id) => bytesToString(tok.tokenBytes(id))).join('');

  it('reverses the digits of numbers, not of names, and is its own inverse', () => {
    expect(reverseNumbers('x = 120 + 7')).toBe('x = 021 + 7');
    expect(reverseNumbers('{"total": "1305", "xs": "[10, 23, 4]"}')).toBe('{"total": "5031", "xs": "[01, 32, 4]"}');
    expect(reverseNumbers('x12 = a_34 + v2 * 56')).toBe('x12 = a_34 + v2 * 65');
    expect(reverseNumbers('-3.1415e-12 1e10')).toBe('-3.5141e-21 1e10');
    const rng = new Rng(3);
    for (let n = 0; n < 500; n++) {
      let s = '';
      for (let i = rng.int(30); i > 0; i--) s += 'ab_1234567890 .,-x'[rng.int(18)];
      expect(reverseNumbers(reverseNumbers(s))).toBe(s);
    }
  });

  it('learns the same merges and spells every number backwards in its ids', () => {
    expect(lsd.merges).toEqual(msd.merges);
    expect(spell(lsd, 'total = 1305')).toBe('total = 5031');
    expect(spell(msd, 'total = 1305')).toBe('total = 1305');
    expect(lsd.encode('[10, 23]')).toEqual(msd.encode('[01, 32]'));
  });

  it('decodes back to numbers as written, for every trace of the test set', () => {
    for (const t of corpusTraces) {
      for (const s of traceToSegments(t, { diff: true })) {
        if (!s.special) expect(lsd.decode(lsd.encode(s.text))).toBe(s.text);
      }
    }
  });

  it('saves its digit order and loads it; a file without one reads as msd', () => {
    const json = JSON.parse(JSON.stringify(lsd.toJSON())) as ReturnType<Tokenizer['toJSON']>;
    expect(json.digitOrder).toBe('lsd');
    expect(new Tokenizer(json).encode('x = 120')).toEqual(lsd.encode('x = 120'));
    expect(msd.toJSON()).not.toHaveProperty('digitOrder');
    expect(new Tokenizer({ ...json, digitOrder: undefined }).digitOrder).toBe('msd');
    expect(() => new Tokenizer({ ...json, digitOrder: 'middle' as never })).toThrow(/digit order/);
  });
});
