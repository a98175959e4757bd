/**
 * The special tokens of the CWM text format (DESIGN.md, "Training sequence"):
 *
 *   <|trace_context_start|>SOURCE + entry<|frame_sep|>
 *   <|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|>
 *   <|line_sep|>{"x": "3"}<|action_sep|>    y = x + 1<|frame_sep|>
 *   <|return_sep|><|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|>
 *
 * The text itself has one writer, training/sequence.ts; `execwm export` uses it.
 */
export const CWM_TOKENS = {
  traceContextStart: '<|trace_context_start|>',
  frameSep: '<|frame_sep|>',
  callSep: '<|call_sep|>',
  lineSep: '<|line_sep|>',
  returnSep: '<|return_sep|>',
  exceptionSep: '<|exception_sep|>',
  actionSep: '<|action_sep|>',
  argSep: '<|arg_sep|>',
} as const;
