import { describe, expect, it } from 'vitest';
import type { Step, Trace } from '../../src/schema.js';
import { diffReferenceIndices, traceToSegments } from '../../training/sequence.js';
import {
  MostFrequentValues,
  copyPreviousPrediction,
  previousFrameIndices,
} from '../../eval/baselines.js';
import { difficultyOf, inferRoles, positionOf } from '../../eval/breakdowns.js';
import {
  StateTally,
  decodeState,
  scoreRollout,
  scoreState,
  summarizeOutputs,
  summarizeRollouts,
  type RolloutFrame,
} from '../../eval/metrics.js';
import { TeacherForcedEvaluator } from '../../eval/teacher.js';
import { sample } from '../../eval/run.js';
import { step, v } from './fixtures.js';

/** def f(x): y = x + 1; return y — called as f(3). */
const TRACE: Trace = {
  id: 't1',
  source: 'def f(x):\n    y = x + 1\n    return y\n',
  entry: 'f(3)',
  status: 'ok',
  message: null,
  result: v('4'),
  steps: [
    step('call', 1, { x: '3' }),
    step('line', 2, { x: '3' }),
    step('line', 3, { x: '3', y: '4' }),
    step('return', 3, null, { arg: '4' }),
  ],
  stdout: '',
};

describe('decodeState and scoreState', () => {
  const truth = { x: '3', y: '4' };
  const noPrev = { previous: null, diff: false };

  it('counts an identical state as all correct and an exact match', () => {
    const s = scoreState(truth, decodeState('{"x": "3", "y": "4"}', noPrev));
    expect(s).toMatchObject({ decodable: true, exact: true, extra: [] });
    expect(s.variables.map((x) => x.correct)).toEqual([true, true]);
  });

  it('counts a missing variable as wrong and no exact match', () => {
    const s = scoreState(truth, decodeState('{"x": "3"}', noPrev));
    expect(s.exact).toBe(false);
    expect(s.variables).toEqual([
      { name: 'x', truth: '3', predicted: '3', correct: true },
      { name: 'y', truth: '4', predicted: null, correct: false },
    ]);
  });

  it('keeps every true variable correct but refuses exact match when a variable is extra', () => {
    const s = scoreState(truth, decodeState('{"x": "3", "y": "4", "z": "0"}', noPrev));
    expect(s.variables.every((x) => x.correct)).toBe(true);
    expect(s.extra).toEqual(['z']);
    expect(s.exact).toBe(false);
  });

  it('keeps undecodable output as data: not JSON, not an object, non-string values', () => {
    for (const text of ['{"x": "3"', '["3"]', '{"x": 3}', 'null', '']) {
      const d = decodeState(text, noPrev);
      expect(d.ok).toBe(false);
      const s = scoreState(truth, d);
      expect(s).toMatchObject({ decodable: false, exact: false });
      expect(s.variables.every((x) => !x.correct && x.predicted === null)).toBe(true);
    }
  });

  it('resolves ".." against the previous true state under diff encoding only', () => {
    const previous = { x: '3' };
    const diffed = decodeState('{"x": "..", "y": "4"}', { previous, diff: true });
    expect(scoreState(truth, diffed).exact).toBe(true);
    const literal = decodeState('{"x": "..", "y": "4"}', { previous, diff: false });
    expect(scoreState(truth, literal).variables[0]!.correct).toBe(false);
    // ".." for a variable the previous state does not hold cannot be resolved: wrong.
    const unknown = decodeState('{"x": "3", "y": ".."}', { previous, diff: true });
    expect(scoreState(truth, unknown).variables[1]).toMatchObject({ predicted: '..', correct: false });
  });

  it('applies a changed-locals-only state to the previous true state: new values, null removes', () => {
    const previous = { x: '3', y: '1', z: '0' };
    const d = decodeState('{"y": "4", "z": null}', { previous, diff: true, changedOnly: true });
    expect(d).toEqual({ ok: true, values: { x: '3', y: '4' } });
    expect(scoreState(truth, d).exact).toBe(true);
    // An empty diff is the copy of the previous state; without a previous state the text is the whole state.
    expect(decodeState('{}', { previous, diff: true, changedOnly: true })).toEqual({ ok: true, values: previous });
    expect(decodeState('{"x": "3"}', { previous: null, diff: true, changedOnly: true })).toEqual({ ok: true, values: { x: '3' } });
    expect(decodeState('{"x": null}', { previous: null, diff: true, changedOnly: true }).ok).toBe(false);
  });

  it('sums frames into accuracy, exact match and undecodable share', () => {
    const t = new StateTally();
    t.add(scoreState(truth, decodeState('{"x": "3", "y": "4"}', noPrev)));
    t.add(scoreState(truth, decodeState('{"x": "3"}', noPrev)));
    t.add(scoreState(truth, decodeState('oops', noPrev)));
    t.add(scoreState({}, decodeState('{}', noPrev)));
    expect(t.summary()).toEqual({
      frames: 4,
      variables: 6,
      variableAccuracy: 3 / 6,
      stateExactMatch: 2 / 4,
      undecodableShare: 1 / 4,
    });
  });
});

describe('diff base', () => {
  it('resolves every ".." the sequence encoder writes back to the true state', () => {
    const steps = [
      step('call', 1, { n: '2' }),
      step('line', 2, { n: '2' }),
      step('line', 3, { n: '2', i: '0' }),
      step('call', 1, { k: '0' }, { func: 'g', depth: 1 }),
      step('line', 2, { k: '0' }, { func: 'g', depth: 1 }),
      step('return', 2, null, { func: 'g', depth: 1, arg: '0' }),
      step('line', 3, { n: '2', i: '0' }),
      step('line', 4, { n: '2', i: '1' }),
      step('return', 4, null, { arg: '1' }),
    ];
    const trace: Trace = { ...TRACE, steps };
    const frames = traceToSegments(trace, { diff: true }).filter((s) => s.role === 'state' && s.text.startsWith('{'));
    const bases = diffReferenceIndices(steps, {});
    const stateSteps = steps.flatMap((s, i) => (s.locals ? [i] : []));
    expect(frames.length).toBe(stateSteps.length);
    let sawUnchanged = 0;
    stateSteps.forEach((i, k) => {
      if (frames[k]!.text.includes('".."')) sawUnchanged += 1;
      const base = bases[i];
      const previous = base === null ? null : Object.fromEntries(Object.entries(steps[base]!.locals!).map(([n, x]) => [n, x.repr]));
      const d = decodeState(frames[k]!.text, { previous, diff: true });
      expect(scoreState(Object.fromEntries(Object.entries(steps[i]!.locals!).map(([n, x]) => [n, x.repr])), d).exact).toBe(true);
    });
    expect(sawUnchanged).toBeGreaterThan(0);
  });

  it('diffs changed-locals-only states against the step copy-previous-state copies, across nested calls', () => {
    const steps = [
      step('call', 1, { n: '2' }),
      step('line', 2, { n: '2' }),
      step('call', 1, { k: '0' }, { func: 'g', depth: 1 }),
      step('line', 2, { k: '0' }, { func: 'g', depth: 1 }),
      step('return', 2, null, { func: 'g', depth: 1, arg: '0' }),
      step('line', 3, { n: '2', i: '0' }),
      step('call', 1, { k: '1' }, { func: 'g', depth: 1 }),
      step('return', 1, null, { func: 'g', depth: 1, arg: '1' }),
      step('line', 4, { n: '2', i: '1' }),
      step('return', 4, null, { arg: '1' }),
    ];
    const refs = diffReferenceIndices(steps, { changedOnly: true });
    expect(refs).toEqual(previousFrameIndices(steps));
    expect(refs).toEqual([null, 0, null, 2, null, 1, null, null, 5, null]);
  });

  it('resolves every changed-locals-only state the encoder writes, across a caught exception', () => {
    const steps = [
      step('call', 1, { n: '2' }),
      step('line', 2, { n: '2' }),
      step('line', 3, { n: '2', i: '0' }),
      step('exception', 3, null, { arg: 'ValueError: x' }),
      step('line', 4, { n: '2', i: '0' }),
      step('line', 5, { n: '2', i: '0', e: '1' }),
      step('line', 6, { n: '2', e: '1' }),
      step('return', 6, null, { arg: '1' }),
    ];
    const trace: Trace = { ...TRACE, steps };
    const frames = traceToSegments(trace, { diff: true, changedOnly: true }).filter((s) => s.role === 'state' && s.text.startsWith('{'));
    const bases = diffReferenceIndices(steps, { changedOnly: true });
    expect(bases[4]).toBe(2); // the exception between two lines of one call is passed over
    const stateSteps = steps.flatMap((s, i) => (s.locals ? [i] : []));
    expect(frames.map((f) => f.text)).toEqual(['{"n": "2"}', '{}', '{"i": "0"}', '{}', '{"e": "1"}', '{"i": null}']);
    stateSteps.forEach((i, k) => {
      const base = bases[i];
      const previous = base === null ? null : Object.fromEntries(Object.entries(steps[base]!.locals!).map(([n, x]) => [n, x.repr]));
      const d = decodeState(frames[k]!.text, { previous, diff: true, changedOnly: true });
      expect(scoreState(Object.fromEntries(Object.entries(steps[i]!.locals!).map(([n, x]) => [n, x.repr])), d).exact).toBe(true);
    });
  });
});

describe('baselines', () => {
  it('copy-previous predicts the previous frame of the same call; new variables are missing', () => {
    const steps = [
      step('call', 1, { x: '3' }),
      step('line', 2, { x: '3' }),
      step('call', 1, { k: '1' }, { func: 'g', depth: 1 }),
      step('line', 2, { k: '1' }, { func: 'g', depth: 1 }),
      step('return', 2, null, { func: 'g', depth: 1 }),
      step('line', 3, { x: '3', y: '4' }),
    ];
    expect(previousFrameIndices(steps)).toEqual([null, 0, null, 2, null, 1]);
    const s = scoreState({ x: '3', y: '4' }, copyPreviousPrediction({ x: '3' }));
    expect(s.variables.map((x) => x.correct)).toEqual([true, false]);
    expect(scoreState({ x: '3' }, copyPreviousPrediction(null)).variables[0]!.predicted).toBeNull();
  });

  it('most-frequent predicts per name from training, with a global fallback', () => {
    const train = [
      { steps: [step('line', 1, { i: '0', s: "''" }), step('line', 2, { i: '1', s: "''" }), step('line', 3, { i: '1' }), step('line', 4, { i: '1' })] },
    ];
    const mf = MostFrequentValues.fit(train);
    expect(mf.valueFor('i')).toBe('1');
    expect(mf.valueFor('s')).toBe("''");
    expect(mf.valueFor('never_seen')).toBe('1');
    const again = MostFrequentValues.fromJSON(JSON.parse(JSON.stringify(mf)));
    expect(again.predict(['i', 'q'])).toEqual({ ok: true, values: { i: '1', q: '1' } });
  });
});

describe('teacher-forced evaluator', () => {
  it('scores the model beside both baselines and flags the baselines it does not beat', () => {
    const mf = MostFrequentValues.fit([TRACE]);
    const ev = new TeacherForcedEvaluator({ diff: false, mostFrequent: mf });
    const view = ev.add({ ...TRACE, origin: 'synthetic:easy' }, new Map([
      [0, '{"x": "3"}'],
      [1, '{"x": "3"}'],
      [2, '{"x": "3", "y": "5"}'],
    ]));
    const r = ev.result();
    expect(r.model).toMatchObject({ frames: 3, variables: 4, variableAccuracy: 3 / 4, stateExactMatch: 2 / 3 });
    // copy-previous: call frame has nothing (x missing), line 2 copies x, line 3 copies x but y is new.
    expect(r.baselines.copyPrevious).toMatchObject({ variableAccuracy: 2 / 4, stateExactMatch: 1 / 3 });
    expect(r.baselines.mostFrequent.variableAccuracy).toBe(1);
    expect(r.flags).toEqual([
      'model does not beat baseline most-frequent-value on variable accuracy (75.0% vs 100.0%)',
      'model does not beat baseline most-frequent-value on state exact match (66.7% vs 100.0%)',
    ]);
    expect(view.steps[2]!.mismatches).toEqual(['y']);
    const byEvent = Object.fromEntries(r.breakdowns.event.map((row) => [row.key, row]));
    expect(byEvent.call!.figures.model.variableAccuracy).toBe(1);
    expect(byEvent.line!.figures.model.stateExactMatch).toBe(1 / 2);
    expect(r.breakdowns.difficulty.map((row) => row.key)).toEqual(['easy']);
    expect(r.breakdowns.valueType[0]).toMatchObject({ key: 'int', variables: 4 });
  });
});

describe('breakdown tags', () => {
  it('infers loop counters, accumulators and containers where the source tells', () => {
    const source = [
      'def f(xs):',
      '    total = 0',
      '    out = []',
      '    i = 0',
      '    while i < 3:',
      '        i += 1',
      '    for x in xs:',
      '        total += x',
      '        out.append(x)',
      '    name = "a"',
      '    return total',
    ].join('\n');
    const steps: Step[] = [
      {
        ...step('line', 10, {}),
        locals: { xs: v('[1]', 'list'), total: v('1'), out: v('[1]', 'list'), i: v('3'), x: v('1'), name: v("'a'", 'str') },
      },
    ];
    const roles = inferRoles(source, steps);
    expect(Object.fromEntries(roles)).toEqual({
      xs: 'container',
      total: 'accumulator',
      out: 'accumulator',
      i: 'loop counter',
      x: 'loop counter',
      name: 'other',
    });
  });

  it('reads difficulty from the origin and splits positions at the middle', () => {
    expect(difficultyOf('synthetic:hard')).toBe('hard');
    expect(difficultyOf('jsonl:progs.jsonl:3')).toBe('jsonl');
    expect(difficultyOf(undefined)).toBe('unknown');
    expect([0, 1, 2, 3].map((i) => positionOf(i, 4))).toEqual(['early', 'early', 'late', 'late']);
  });
});

describe('rollout alignment', () => {
  const f = (event: string, action: string, state: Record<string, string> | null = null, arg: string | null = null): RolloutFrame => ({
    event,
    action,
    state,
    arg,
  });
  const truth = [f('call', 'def f(x):', { x: '3' }), f('line', '    y = x + 1', { x: '3' }), f('return', '    return y', null, '4')];

  it('calls an identical rollout exact with no divergence', () => {
    expect(scoreRollout(truth, truth.map((x) => ({ ...x })))).toMatchObject({ exact: true, firstDivergence: null, matchedPrefix: 3 });
  });

  it('finds the first frame that differs in state, line, value, or is missing or extra', () => {
    expect(scoreRollout(truth, [truth[0]!, f('line', '    y = x + 1', { x: '4' }), truth[2]!]).firstDivergence).toBe(1);
    expect(scoreRollout(truth, [truth[0]!, truth[1]!, f('return', '    return y', null, '5')]).firstDivergence).toBe(2);
    expect(scoreRollout(truth, truth.slice(0, 2))).toMatchObject({ exact: false, firstDivergence: 2 });
    expect(scoreRollout(truth, [...truth, truth[2]!])).toMatchObject({ exact: false, firstDivergence: 3 });
    expect(scoreRollout(truth, [truth[1]!, truth[2]!]).firstDivergence).toBe(0);
  });

  it('summarizes rollouts and outputs', () => {
    const s = summarizeRollouts([scoreRollout(truth, truth), scoreRollout(truth, truth.slice(0, 1))]);
    expect(s).toEqual({ traces: 2, traceExactMatch: 0.5, meanFirstDivergence: 1, meanMatchedShare: (1 + 1 / 3) / 2 });
    const o = summarizeOutputs([
      { truth: '4', predicted: '4', exact: true, equal: true },
      { truth: '1.0', predicted: '1', exact: false, equal: true },
      { truth: '4', predicted: null, exact: false, equal: false },
    ]);
    expect(o).toEqual({ programs: 3, exactAccuracy: 1 / 3, equalAccuracy: 2 / 3, missingShare: 1 / 3 });
  });
});

describe('the --limit sample', () => {
  it('is a seeded subset in corpus order: the same seed gives the same traces', async () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = await sample(items, 10, 1);
    expect(a).toHaveLength(10);
    expect([...a].sort((x, y) => x - y)).toEqual(a);
    expect(await sample(items, 10, 1)).toEqual(a);
    expect(await sample(items, 10, 2)).not.toEqual(a);
    expect(await sample(items, undefined, 1)).toEqual(items);
    expect(await sample(items, 80, 1)).toEqual(items);
  });
});
