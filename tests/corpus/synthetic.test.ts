import { describe, expect, it } from 'vitest';

import { DEFAULT_LIMITS } from '../../src/schema.js';
import { CorpusError } from '../../corpus/errors.js';
import { SplitMix32 } from '../../src/rng.js';
import { PRESETS, PRESET_NAMES, generateOne, generatePrograms, iteratePrograms, programId, resolveKnobs, type Candidate } from '../../corpus/synthetic.js';
import { ACCUMULATOR_TYPES, TYPES, VALUE_TYPES } from '../../corpus/synthetic/value-types.js';
import { requiredInCi } from '../helpers.js';
import { pythonAvailable, runInPython, type ReferenceRun } from './synthetic-reference.js';

const PER_PRESET = 300;
const hasPython = requiredInCi(pythonAvailable(), 'python3 (the reference that runs generated programs) is not on PATH');

describe('generatePrograms', () => {
  it('gives identical programs for the same seed and options', () => {
    const a = generatePrograms({ count: 30, seed: 7, preset: 'hard' });
    const b = generatePrograms({ count: 30, seed: 7, preset: 'hard' });
    expect(b).toEqual(a);
    const c = generatePrograms({ count: 30, seed: 8, preset: 'hard' });
    expect(c.map((p) => p.id)).not.toEqual(a.map((p) => p.id));
  });

  it('extends the same sequence when more programs are asked for', () => {
    const few = generatePrograms({ count: 20, seed: 3 });
    const more = generatePrograms({ count: 60, seed: 3 });
    expect(more.slice(0, 20)).toEqual(few);
  });

  it('streams the same programs one at a time', () => {
    const it = iteratePrograms({ seed: 3, preset: 'easy' });
    const streamed = Array.from({ length: 10 }, () => it.next().value);
    expect(streamed).toEqual(generatePrograms({ count: 10, seed: 3, preset: 'easy' }));
  });

  it('says so when the knobs leave no room for programs', () => {
    expect(() => generatePrograms({ count: 5, seed: 1, preset: 'easy', features: [], minEvents: 50 })).toThrow(CorpusError);
  });

  it('never repeats a program (distinct ids, distinct source + entry)', () => {
    const programs = generatePrograms({ count: 400, seed: 1, preset: 'easy' });
    expect(new Set(programs.map((p) => p.id)).size).toBe(programs.length);
    expect(new Set(programs.map((p) => `${p.source}\n${p.entry}`)).size).toBe(programs.length);
  });

  it('labels programs with a stable id of normalized source + entry and their preset', () => {
    const [p] = generatePrograms({ count: 1, seed: 5, preset: 'easy' });
    expect(p!.origin).toBe('synthetic:easy');
    expect(p!.id).toBe(programId(p!.source, p!.entry));
    expect(p!.id).toBe(programId(p!.source.replace(/\n/g, '  \r\n'), p!.entry));
    expect(p!.entry).toMatch(/^f\(.*\)$/);
    expect(p!.source).toMatch(/^def /);
  });

  it('lets a knob override its preset and rejects knobs that make no sense', () => {
    const k = resolveKnobs({ preset: 'hard', maxDepth: 1, features: ['arith', 'for'] });
    expect(k.maxDepth).toBe(1);
    expect(k.statements).toBe(PRESETS.hard.statements);
    expect(() => resolveKnobs({ statements: 0 })).toThrow(/statements/);
    expect(() => resolveKnobs({ features: ['goto' as never] })).toThrow(/Unknown features: goto/);
    expect(() => resolveKnobs({ minEvents: 900, maxEvents: 100 })).toThrow(/minEvents/);
    expect(() => generatePrograms({ count: -1, seed: 1 })).toThrow(/count/);
  });

  it('gives made-up names to the share of variables freshNames asks for, and nothing changes at 0', () => {
    expect(generatePrograms({ count: 20, seed: 4, preset: 'medium', freshNames: 0 })).toEqual(generatePrograms({ count: 20, seed: 4, preset: 'medium' }));
    const pools = new Set(TYPES.flatMap((t) => [...VALUE_TYPES[t].names, ...(VALUE_TYPES[t].param?.names ?? [])]));
    const paramsOf = (source: string): string[] => /^def f\(([^)]*)\)/m.exec(source)![1]!.split(', ');
    const fresh = generatePrograms({ count: 50, seed: 4, preset: 'medium', freshNames: 1 });
    const params = fresh.flatMap((p) => paramsOf(p.source));
    expect(params.filter((n) => pools.has(n))).toEqual([]);
    for (const n of params) expect(n).toMatch(/^[a-z]+(_[a-z]+)?[1-9]?$/);
    const half = generatePrograms({ count: 200, seed: 4, preset: 'easy', freshNames: 0.5 }).flatMap((p) => paramsOf(p.source));
    const share = half.filter((n) => !pools.has(n)).length / half.length;
    expect(share).toBeGreaterThan(0.35);
    expect(share).toBeLessThan(0.65);
    expect(() => resolveKnobs({ freshNames: 1.5 })).toThrow(/freshNames/);
  });

  it('uses only the enabled features', () => {
    const programs = generatePrograms({ count: 100, seed: 2, preset: 'hard', features: ['arith', 'compare', 'for', 'list'], helpers: 0 });
    for (const p of programs) {
      expect(p.source).not.toMatch(/\bwhile\b|\bif\b|'|\{|\bdef (?!f\()/);
    }
  });

  it('uses every feature across a hard batch', () => {
    const text = generatePrograms({ count: 300, seed: 4, preset: 'hard' })
      .map((p) => p.source)
      .join('\n');
    const patterns: Record<string, RegExp> = {
      while: /\bwhile\b/,
      for: /\bfor\b/,
      elif: /\belif\b/,
      else: /\belse:/,
      break: /\bbreak\b|\bcontinue\b/,
      listcomp: /\[[^\]]* for [^\]]*\]/,
      dictcomp: /\{[^}]*: [^}]* for [^}]*\}/,
      helper: /^def (?!f\()/m,
      recursion: /def (fact|fib|sum_to|digit_sum|gcd|power|to_binary|reverse_str|is_palindrome|total_of|count_of|largest)\(/,
      string_method: /\.(upper|lower|replace|split|join|find|startswith)\(/,
      list_method: /\.(append|pop|insert|sort|extend)\(/,
      dict_method: /\.(get|items|keys)\(/,
      tuple_unpack: /^\s+\w+, \w+ = /m,
      bool_op: /\b(and|or|not)\b/,
    };
    const missing = Object.entries(patterns)
      .filter(([, re]) => !re.test(text))
      .map(([name]) => name);
    expect(missing).toEqual([]);
  });
});

describe('value types', () => {
  it('draws accumulators from exactly the types that describe one', () => {
    expect([...ACCUMULATOR_TYPES].sort()).toEqual(TYPES.filter((t) => VALUE_TYPES[t].accumulator).sort());
  });
});

describe.skipIf(!hasPython)('generated programs in CPython', () => {
  const runs = new Map<string, { cands: Candidate[]; ref: ReferenceRun[] }>();
  const batch = (preset: string): { cands: Candidate[]; ref: ReferenceRun[] } => {
    let b = runs.get(preset);
    if (!b) {
      const rng = new SplitMix32(1234);
      const knobs = resolveKnobs({ preset: preset as never });
      const cands: Candidate[] = [];
      while (cands.length < PER_PRESET) {
        const c = generateOne(rng, knobs);
        if (c) cands.push(c);
      }
      b = { cands, ref: runInPython(cands) };
      runs.set(preset, b);
    }
    return b;
  };

  it('medium with made-up names: every program returns in CPython exactly what the reference interpreter returns', () => {
    const rng = new SplitMix32(99);
    const knobs = resolveKnobs({ preset: 'medium', freshNames: 0.5 });
    const cands: Candidate[] = [];
    while (cands.length < 150) {
      const c = generateOne(rng, knobs);
      if (c) cands.push(c);
    }
    const ref = runInPython(cands);
    expect(ref.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(cands.filter((c, i) => c.result !== ref[i]!.result)).toEqual([]);
  });

  for (const preset of PRESET_NAMES) {
    it(`${preset}: every program compiles, returns without raising, and stays within the event budget`, () => {
      const { ref } = batch(preset);
      const failures = ref.filter((r) => r.status !== 'ok');
      expect(failures).toEqual([]);
      for (const r of ref) expect(r.events).toBeLessThanOrEqual(DEFAULT_LIMITS.maxSteps);
      expect(Math.max(...ref.map((r) => r.events))).toBeLessThanOrEqual(2 * PRESETS[preset].maxEvents);
    });

    it(`${preset}: the reference interpreter returns exactly what CPython returns`, () => {
      const { cands, ref } = batch(preset);
      const diffs = cands.filter((c, i) => c.result !== ref[i]!.result).map((c, i) => ({ source: c.source, entry: c.entry, ours: c.result, python: ref[i]!.result }));
      expect(diffs).toEqual([]);
    });
  }

  it('orders presets by difficulty: mean events easy < medium < hard', () => {
    const mean = (p: string): number => {
      const { ref } = batch(p);
      return ref.reduce((s, r) => s + r.events, 0) / ref.length;
    };
    const [easy, medium, hard] = PRESET_NAMES.map(mean);
    expect(easy).toBeLessThan(medium!);
    expect(medium).toBeLessThan(hard!);
    expect(easy).toBeGreaterThanOrEqual(10);
    expect(hard).toBeLessThanOrEqual(600);
  });
});
