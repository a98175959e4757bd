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
