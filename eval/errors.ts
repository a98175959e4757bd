/**
 * A mistake in what evaluation was asked to do (a missing model, a corpus without
 * the split, a tokenizer this version cannot read): the CLI prints its message as
 * one line. Our own bugs throw ordinary errors.
 */
export class EvalError extends Error {
  override readonly name = 'EvalError';
}
