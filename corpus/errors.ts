import * as v from 'valibot';

/**
 * The one error the corpus raises for a problem with what it was given: a missing
 * or corrupt corpus folder, a manifest from another format, a resume that does not
 * match the run it resumes. The CLI prints its message as one line; our own bugs
 * throw ordinary errors.
 */
export class CorpusError extends Error {
  override readonly name = 'CorpusError';
}

/**
 * Why a stage file (manifest.json, checkpoint.json, report.json) failed its schema, in one
 * line: where in the file, and what was expected there.
 */
export function schemaIssue(issues: readonly [v.BaseIssue<unknown>, ...v.BaseIssue<unknown>[]]): string {
  const issue = issues[0];
  return `${v.getDotPath(issue) ?? 'the top level'}: ${issue.message}`;
}
