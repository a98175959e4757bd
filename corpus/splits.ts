/**
 * Train/val/test assignment by a hash of the normalized source.
 *
 * The split depends on the program text only (not its entry, id or origin), so
 * the same function traced with two inputs, or a mutant and its parent (which is
 * split by the parent's source), never land in two splits.
 */
import { createHash } from 'node:crypto';

export type Split = 'train' | 'val' | 'test';

export const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** Fractions of programs per split; they must sum to 1. */
export interface SplitRatios {
  train: number;
  val: number;
  test: number;
}

export const DEFAULT_SPLIT_RATIOS: SplitRatios = { train: 0.8, val: 0.1, test: 0.1 };

/**
 * The text the split hash sees: line endings unified, trailing spaces and blank
 * lines dropped, so cosmetic edits of one program do not move it across splits.
 */
export function normalizeSource(source: string): string {
  return source
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.length > 0)
    .join('\n');
}

/** Throws when `ratios` are not three non-negative numbers summing to 1. */
export function assertSplitRatios(ratios: SplitRatios): void {
  const values = [ratios.train, ratios.val, ratios.test];
  if (values.some((v) => typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
    throw new TypeError(`Expected split ratios to be non-negative numbers, got ${JSON.stringify(ratios)}`);
  }
  const sum = values.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-9) {
    throw new TypeError(`Expected split ratios to sum to 1, got ${sum}`);
  }
}

/** The split of a program, from the first 48 bits of sha256(normalized source). */
export function splitOf(source: string, ratios: SplitRatios = DEFAULT_SPLIT_RATIOS): Split {
  const digest = createHash('sha256').update(normalizeSource(source)).digest();
  const u = digest.readUIntBE(0, 6) / 2 ** 48; // uniform in [0, 1)
  if (u < ratios.train) return 'train';
  if (u < ratios.train + ratios.val) return 'val';
  return 'test';
}
