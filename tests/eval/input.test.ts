/**
 * Input prediction scored as CRUXEval-I: the answer runs in the sandbox as `f(<answer>)`
 * and is right when its value is Python-`==` to the true return value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Trace } from '../../src/schema.js';
import { PROGRAM_LIMITS, sandboxRunner, type SandboxRunner } from '../../eval/equality.js';
import { mostFrequentInput } from '../../eval/run.js';
import { inputIsRight, type InputRunners } from '../../eval/tasks.js';

let programs: SandboxRunner;
let equality: SandboxRunner;
let runners: InputRunners;
const traces: Record<string, Trace> = {};

const PROGRAMS = {
  double: { source: 'def f(x):\n    return x * 2\n', entry: 'f(3)' },
  total: { source: 'def f(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n', entry: 'f([1, 2, 3])' },
  pair: { source: 'def f(a, b):\n    return [a, b]\n', entry: 'f(1, 2)' },
};

beforeAll(async () => {
  programs = sandboxRunner({ limits: PROGRAM_LIMITS });
  equality = sandboxRunner();
  runners = { programs, equality };
  for (const [id, p] of Object.entries(PROGRAMS)) traces[id] = await programs.trace({ id, ...p });
}, 120_000);

afterAll(async () => {
  await Promise.all([programs?.close(), equality?.close()]);
});

describe('input prediction scoring', { timeout: 60_000 }, () => {
  it('counts an input right when f(input) == the output, whatever its text', async () => {
    expect(traces.double!.result!.repr).toBe('6');
    expect(await inputIsRight(runners, traces.double!, '3')).toBe(true);
    expect(await inputIsRight(runners, traces.double!, '2+1')).toBe(true);
    expect(await inputIsRight(runners, traces.double!, 'x=3')).toBe(true);
    // 3.0 * 2 == 6 in Python, as CRUXEval scores it.
    expect(await inputIsRight(runners, traces.double!, '3.0')).toBe(true);
    expect(await inputIsRight(runners, traces.total!, '[6]')).toBe(true);
    expect(await inputIsRight(runners, traces.total!, '[3, 3]')).toBe(true);
    expect(await inputIsRight(runners, traces.pair!, 'b=2, a=1')).toBe(true);
  });

  it('counts wrong an input with another value, one that raises, does not parse or closes the call early', async () => {
    expect(await inputIsRight(runners, traces.double!, '4')).toBe(false);
    expect(await inputIsRight(runners, traces.double!, "'aaa'")).toBe(false);
    expect(await inputIsRight(runners, traces.total!, '[6, 1]')).toBe(false);
    // Raises TypeError inside f.
    expect(await inputIsRight(runners, traces.double!, 'None')).toBe(false);
    expect(await inputIsRight(runners, traces.pair!, '1')).toBe(false);
    // Does not parse.
    expect(await inputIsRight(runners, traces.double!, '3 +')).toBe(false);
    expect(await inputIsRight(runners, traces.double!, '')).toBe(false);
    // Closes the call and goes on: `f(3), f(3)` is a tuple, not a call of f.
    expect(await inputIsRight(runners, traces.double!, '3), f(3')).toBe(false);
    // Runs out of budget.
    expect(await inputIsRight(runners, traces.total!, 'range(10**9)')).toBe(false);
  });

  it('without an equality sandbox compares the returned value as text', async () => {
    expect(await inputIsRight({ programs, equality: null }, traces.double!, '2+1')).toBe(true);
    expect(await inputIsRight({ programs, equality: null }, traces.double!, '3.0')).toBe(false);
  });

  it('takes the most frequent train argument list for the baseline (ties: the smallest text)', () => {
    const t = (entry: string | null, result: string | null): Trace => ({
      ...traces.double!,
      entry,
      result: result === null ? null : { repr: result, type: 'int' },
    });
    expect(mostFrequentInput([t('f(2)', '4'), t('f(5)', '10'), t('f(5)', '10'), t('f(1)', '2')])).toBe('5');
    expect(mostFrequentInput([t('f(2)', '4'), t('f(1)', '2')])).toBe('1');
    // Entries that are no plain call, and calls that returned nothing, do not count.
    expect(mostFrequentInput([t('f(1) + 1', '3'), t('f(7)', null), t(null, null)])).toBeNull();
  });
});
