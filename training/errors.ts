/**
 * A problem with what training was given: a corpus it cannot train on, a run
 * folder holding another run, a corrupt or mismatched checkpoint. The CLI
 * prints its message as one line; our own bugs throw ordinary errors.
 */
export class TrainingError extends Error {
  override readonly name = 'TrainingError';
}
