import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TracerPool } from '../../tracer/index.js';
import { equalityProgram, pythonEqual, scoreOutputs } from '../../eval/equality.js';
import { cruxevalProgram, readCruxeval } from '../../eval/run.js';
import { CRUXEVAL_PATH, cruxevalAvailable } from '../helpers.js';

let pool: TracerPool;

beforeAll(async () => {
  pool = await TracerPool.create({ workers: 1, limits: { maxSteps: 1000, timeoutMs: 20_000 } });
});

afterAll(async () => {
  await pool?.close();
});

describe('Python == on predicted outputs, in the sandbox', () => {
  it('compares literals as Python does', async () => {
    const cases: [string, string, boolean][] = [
      ['1.0', '1', true],
      ['{1, 2}', '{2, 1}', true],
      ["{'a': 1, 'b': 2}", "{'b': 2, 'a': 1}", true],
      ['(1,)', '[1]', false],
      ["'a\\nb'", '"a\\nb"', true],
      ['True', '1', true],
      ['[1, 2]', '[2, 1]', false],
    ];
    const got = await Promise.all(cases.map(([a, b]) => pythonEqual(pool, a, b)));
    expect(got).toEqual(cases.map((c) => c[2]));
  });

  it('treats code and non-literals as unequal data, never running them', async () => {
    expect(await pythonEqual(pool, '__import__("os").system("touch /tmp/execwm-pwned")', '0')).toBe(false);
    expect(await pythonEqual(pool, '<function f>', '1')).toBe(false);
    expect(await pythonEqual(pool, '"\'); import os; (\'', "'x'")).toBe(false);
    // The literal travels as a JSON string literal inside the entry call.
    expect(equalityProgram('"\\', 'x').entry).toBe('f("\\"\\\\", "x")');
  });

  it('scores exact and equal separately; a missing prediction is wrong', async () => {
    const scores = await scoreOutputs(pool, [
      { truth: '1', predicted: '1' },
      { truth: '1', predicted: '1.0' },
      { truth: '1', predicted: null },
    ]);
    expect(scores.map((s) => [s.exact, s.equal])).toEqual([
      [true, true],
      [false, true],
      [false, false],
    ]);
  });
});

describe.skipIf(!cruxevalAvailable())('CRUXEval scoring', () => {
  it('gives the traced return value of each function full marks under Python ==', async () => {
    const problems = readCruxeval(CRUXEVAL_PATH);
    expect(problems).toHaveLength(800);
    const sample = problems.slice(0, 6);
    const traces = await Promise.all(sample.map((p) => pool.trace(cruxevalProgram(p))));
    expect(traces.map((t) => t.status)).toEqual(sample.map(() => 'ok'));
    const scores = await scoreOutputs(pool, sample.map((p, i) => ({ truth: p.output, predicted: traces[i]!.result!.repr })));
    expect(scores.every((s) => s.equal)).toBe(true);
  });
});
