/**
 * A trace as CWM-format text (DESIGN.md, "Training sequence"):
 *
 *   <|trace_context_start|>SOURCE + entry<|frame_sep|>
 *   <|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|>
 *   <|line_sep|>{"x": "3"}<|action_sep|>    y = x + 1<|frame_sep|>
 *   <|line_sep|>{"x": "3", "y": "4"}<|action_sep|>    return y<|frame_sep|>
 *   <|return_sep|><|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|>
 *
 * The context is the source, then the entry call on its own last line (so the
 * context is itself a runnable script). Locals are a JSON object (`", "` and
 * `": "` separators, as Python's json.dumps) whose values are JSON strings of the
 * value reprs; the action is the source line, indentation kept. An exception frame
 * is `<|exception_sep|><|action_sep|>LINE<|arg_sep|>"TypeName: message"`.
 *
 * With `diff`, a line frame writes `".."` for a value whose repr equals the one in
 * the previous frame of the same call. The look-back passes over exception frames
 * and stops at call and return frames (its own call, or a nested call's return),
 * so the first line after a call or after a nested call is written in full.
 */
import type { Locals, Step, Trace } from '../src/schema.js';

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

/** The marker written for a value unchanged since the previous frame (diff mode). */
export const CWM_UNCHANGED = '..';

export interface CwmTextOptions {
  /** Write `".."` for values unchanged since the previous frame of the same call. Default false. */
  diff?: boolean;
}

/** `source` followed by `entry` on its own line (a script has no entry). */
export function cwmContext(trace: Pick<Trace, 'source' | 'entry'>): string {
  if (trace.entry === null) return trace.source;
  const sep = trace.source.endsWith('\n') || trace.source === '' ? '' : '\n';
  return `${trace.source}${sep}${trace.entry}`;
}

/** Locals as a JSON object of JSON strings, with Python json.dumps separators. */
export function cwmLocals(locals: Locals, base: Locals | null = null): string {
  const parts = Object.keys(locals).map((name) => {
    const repr = locals[name].repr;
    const shown = base !== null && Object.hasOwn(base, name) && base[name].repr === repr ? CWM_UNCHANGED : repr;
    return `${JSON.stringify(name)}: ${JSON.stringify(shown)}`;
  });
  return `{${parts.join(', ')}}`;
}

/** The locals that `steps[i]` is diffed against, or null (see the module comment). */
function diffBase(steps: readonly Step[], i: number): Locals | null {
  const depth = steps[i].depth;
  for (let k = i - 1; k >= 0; k--) {
    const s = steps[k];
    if (s.event === 'exception' && s.depth === depth) continue;
    return s.event === 'line' && s.depth === depth ? s.locals : null;
  }
  return null;
}

/** The CWM text of one trace; a pure function of the trace. */
export function traceToCwmText(trace: Pick<Trace, 'source' | 'entry' | 'steps'>, options: CwmTextOptions = {}): string {
  const { diff = false } = options;
  const T = CWM_TOKENS;
  const lines = trace.source.split('\n');
  const action = (step: Step) => lines[step.line - 1] ?? '';
  let out = `${T.traceContextStart}${cwmContext(trace)}${T.frameSep}`;
  trace.steps.forEach((step, i) => {
    switch (step.event) {
      case 'call':
        out += `${T.callSep}${cwmLocals(step.locals ?? {})}${T.actionSep}${action(step)}${T.frameSep}`;
        break;
      case 'line': {
        const base = diff ? diffBase(trace.steps, i) : null;
        out += `${T.lineSep}${cwmLocals(step.locals ?? {}, base)}${T.actionSep}${action(step)}${T.frameSep}`;
        break;
      }
      case 'return':
        out += `${T.returnSep}${T.actionSep}${action(step)}${T.argSep}${JSON.stringify(step.arg?.repr ?? '')}${T.frameSep}`;
        break;
      case 'exception':
        out += `${T.exceptionSep}${T.actionSep}${action(step)}${T.argSep}${JSON.stringify(step.arg?.repr ?? '')}${T.frameSep}`;
        break;
    }
  });
  return out;
}
