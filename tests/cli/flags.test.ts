import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { integer, nonNegativeInt, nonNegativeNumber, positiveInt } from '../../src/flags.js';

function refusal(parse: (value: string) => number, value: string): UsageError {
  try {
    parse(value);
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(value)}`);
}

describe('numeric flag parsers', () => {
  it('read whole numbers written as decimal digits', () => {
    expect(positiveInt('--steps')('3')).toBe(3);
    expect(nonNegativeInt('--limit')('0')).toBe(0);
    expect(integer('--seed')('-7')).toBe(-7);
  });

  it('refuse fractions, exponents, signs, blanks and words as bad usage naming the flag and the value', () => {
    for (const value of ['3.5', '1e3', '-1', '+1', '', ' 3', '0x10', 'abc', '9007199254740993']) {
      expect(refusal(positiveInt('--steps'), value).message).toBe(`--steps must be a positive integer, got ${JSON.stringify(value)}`);
      expect(refusal(nonNegativeInt('--limit'), value).message).toBe(`--limit must be a non-negative integer, got ${JSON.stringify(value)}`);
    }
    expect(refusal(integer('--seed'), '1.5').message).toBe('--seed must be an integer, got "1.5"');
  });

  it('refuse zero where a count must be positive', () => {
    expect(refusal(positiveInt('--batch'), '0').message).toBe('--batch must be a positive integer, got "0"');
  });

  it('read non-negative numbers in any form JavaScript reads, exponents included', () => {
    expect(nonNegativeNumber('--lr')('3e-4')).toBe(3e-4);
    expect(nonNegativeNumber('--state-weight')('0')).toBe(0);
    for (const value of ['-0.1', '', 'abc', 'Infinity']) {
      expect(refusal(nonNegativeNumber('--lr'), value).message).toBe(`--lr must be a non-negative number, got ${JSON.stringify(value)}`);
    }
  });
});

describe('train --diff', () => {
  it('takes none, cwm (also when given alone) or changed, and refuses anything else', async () => {
    const { configFromFlags } = await import('../../src/commands/train.js');
    const { resolveTrainConfig } = await import('../../training/config.js');
    const base = { corpus: 'c', out: 'o' };
    expect(await configFromFlags({ ...base, diff: true })).toMatchObject({ diff: true, changedOnly: false });
    expect(await configFromFlags({ ...base, diff: 'cwm' })).toMatchObject({ diff: true, changedOnly: false });
    expect(await configFromFlags({ ...base, diff: 'changed' })).toMatchObject({ diff: true, changedOnly: true });
    expect(await configFromFlags({ ...base, diff: 'none' })).toMatchObject({ diff: false, changedOnly: false });
    // No flag: the default encoding, changed locals only.
    expect(resolveTrainConfig(await configFromFlags(base))).toMatchObject({ diff: true, changedOnly: true });
    await expect(configFromFlags({ ...base, diff: 'sparse' })).rejects.toThrow(/--diff takes none, cwm or changed, got "sparse"/);
  });
});

describe('train --tasks', () => {
  it('takes all or name[:weight] lists of derived tasks, and refuses the rest as usage errors', async () => {
    const { configFromFlags } = await import('../../src/commands/train.js');
    const { UsageError } = await import('../../src/errors.js');
    const base = { corpus: 'c', out: 'o' };
    expect((await configFromFlags(base)).tasks).toBeUndefined();
    expect((await configFromFlags({ ...base, tasks: 'next,back:0.5' })).tasks).toEqual({ next: 1, back: 0.5 });
    expect((await configFromFlags({ ...base, tasks: 'input:2' })).tasks).toEqual({ input: 2 });
    expect(Object.keys((await configFromFlags({ ...base, tasks: 'all' })).tasks!)).toEqual(['step', 'next', 'out', 'until', 'back', 'coverage', 'nextline', 'value', 'input']);
    for (const [list, message] of [
      ['jump', /^--tasks: Unknown task "jump"/],
      ['next:0', /^--tasks: Expected the weight of next to be a positive number/],
      ['output', /^--tasks: output examples are in the mix by default/],
    ] as const) {
      const err = await configFromFlags({ ...base, tasks: list }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(message);
    }
  });
});
