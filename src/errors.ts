/**
 * Errors the CLI knows how to report.
 *
 * Program failures are data (trace statuses, report fields); these are for the
 * people running execwm. A `UserError` is a mistake in what was asked (a missing
 * corpus, a bad checkpoint): one line, exit 1, no stack. A `UsageError` is a bad
 * command line: one line plus usage, exit 2. Anything else is our bug: exit 1,
 * the stack only under `--verbose`.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Throws a clear error when `value` is not a positive integer (for our own APIs). */
export function assertPositiveInt(name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new TypeError(`Expected \`${name}\` to be a positive integer, got ${String(value)}`);
  }
}
