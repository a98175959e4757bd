import { describe, expect, it } from 'vitest';
import { normalizeSource, splitOf } from '../../corpus/splits.js';

describe('splits', () => {
  it('ignores line endings, trailing spaces and blank lines', () => {
    const a = 'def f(x):\n    return x\n';
    const b = 'def f(x):   \r\n\r\n    return x\r\n\n';
    expect(normalizeSource(a)).toBe(normalizeSource(b));
    expect(splitOf(a)).toBe(splitOf(b));
  });

  it('follows the ratios over many programs', () => {
    const counts = { train: 0, val: 0, test: 0 };
    for (let i = 0; i < 5000; i++) counts[splitOf(`x = ${i}\n`)] += 1;
    expect(counts.train / 5000).toBeCloseTo(0.8, 1);
    expect(counts.val / 5000).toBeCloseTo(0.1, 1);
    expect(counts.test / 5000).toBeCloseTo(0.1, 1);
    expect(splitOf('x = 1', { train: 0, val: 0, test: 1 })).toBe('test');
    expect(splitOf('x = 1', { train: 1, val: 0, test: 0 })).toBe('train');
  });
});
