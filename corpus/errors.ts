/**
 * The one error the corpus raises for a problem with what it was given: a missing
 * or corrupt corpus folder, a manifest from another format, a resume that does not
 * match the run it resumes. The CLI prints its message as one line; our own bugs
 * throw ordinary errors.
 */
export class CorpusError extends Error {
  override readonly name = 'CorpusError';
}
