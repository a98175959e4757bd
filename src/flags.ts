/**
 * Parsers for numeric command-line flags, shared by every command so a bad value
 * is refused the same way everywhere: a {@link UsageError} (exit 2) naming the flag
 * and the value, e.g. `--steps must be a positive integer, got "abc"`.
 *
 * Each parser is made for one flag (`positiveInt('--steps')`) and fits commander's
 * option parser slot: `.option('--steps <n>', 'optimizer steps', positiveInt('--steps'))`.
 * Whole numbers are written as decimal digits only, so "3.5", "1e3", "0x10", " 3" and ""
 * are refused rather than rounded or read in another base.
 */
import { UsageError } from './errors.js';

export type FlagParser = (value: string) => number;

function wholeNumber(flag: string, value: string, want: string, pattern: RegExp): number {
  const n = Number(value);
  if (!pattern.test(value) || !Number.isSafeInteger(n)) throw new UsageError(`${flag} must be ${want}, got ${JSON.stringify(value)}`);
  return n;
}

/** 1, 2, 3, ... (counts and sizes that cannot be zero). */
export function positiveInt(flag: string): FlagParser {
  return (value) => {
    const n = wholeNumber(flag, value, 'a positive integer', /^\d+$/);
    if (n === 0) throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(value)}`);
    return n;
  };
}

/** 0, 1, 2, ... (counts where zero means none). */
export function nonNegativeInt(flag: string): FlagParser {
  return (value) => wholeNumber(flag, value, 'a non-negative integer', /^\d+$/);
}

/** Any whole number, negative included (seeds). */
export function integer(flag: string): FlagParser {
  return (value) => wholeNumber(flag, value, 'an integer', /^-?\d+$/);
}

/** A finite number >= 0 in any form JavaScript reads, so rates like "3e-4" work. */
export function nonNegativeNumber(flag: string): FlagParser {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`${flag} must be a non-negative number, got ${JSON.stringify(value)}`);
    return n;
  };
}

/** Parses a flag's text with `parse`, turning its error into a usage error naming the flag. */
export function parsedFlag<T>(flag: string, value: string | undefined, parse: (text: string) => T): T | undefined {
  if (value === undefined) return undefined;
  try {
    return parse(value);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}
