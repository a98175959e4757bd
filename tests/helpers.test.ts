import { describe, expect, it } from 'vitest';
import { inCi } from './helpers.js';

describe('the CI guard of the test suite', () => {
  it('counts any truthy CI value, so a required test cannot skip behind a spelling', () => {
    for (const value of ['true', 'TRUE', '1', 'yes', 'on', 'github-actions']) expect(inCi({ CI: value }), value).toBe(true);
    for (const value of [undefined, '', ' ', '0', 'false', 'False', 'no', 'off']) expect(inCi({ CI: value }), String(value)).toBe(false);
  });
});
