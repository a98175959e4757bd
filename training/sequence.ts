/**
 * Trace → training sequence (the CWM format; this file is its source of truth).
 *
 *   <|trace_context_start|>SOURCE\nENTRY<|frame_sep|>
 *   <|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|>
 *   <|line_sep|>{"x": "3"}<|action_sep|>    y = x + 1<|frame_sep|>
 *   <|line_sep|>{"x": "3", "y": "4"}<|action_sep|>    return y<|frame_sep|>
 *   <|return_sep|><|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|>
 *   <|trace_end|>
 *
 * - The context is the source as written, then the entry call (`f(3)`) on its
 *   own last line when there is one, so it reads as a runnable script.
 * - A `call`/`line` frame: event separator, the locals as a JSON object whose
 *   values are JSON strings of `Value.repr` (`{"x": "3"}`, `", "` and `": "`
 *   separators, the frame's own order), `<|action_sep|>`, the text of the source
 *   line about to run, `<|frame_sep|>`.
 * - A `return`/`exception` frame: separator, `<|action_sep|>`, the source line,
 *   `<|arg_sep|>`, the JSON string of the value (`"4"`, `"ZeroDivisionError: …"`).
 * - Diff encoding (`diff: true`) writes `".."` for a local whose repr equals its
 *   value in the previous frame of the same call. Following CWM, the look-back
 *   passes over exception frames and stops at call and return frames (its own
 *   call, or a nested call's return): a `line` frame is diffed against the
 *   closest earlier `line` frame at its depth only when no call or return lies
 *   between, so the first line after a call, and the line after a nested call
 *   returns, spell every value in full. `execwm export` writes this same text.
 *
 * Roles: `code` for the context (its start token, the text and its
 * `<|frame_sep|>`), `state` for locals and the return/exception value, `action`
 * for everything else (separators, source lines, `<|trace_end|>`). A target
 * token's role decides which objective it feeds; masked targets get label -1.
 *
 * An *output example* is a second, short document per function trace that
 * teaches direct output prediction (CRUXEval's task: source and call in, return
 * value out) with the same separators a trace uses:
 *
 *   <|trace_context_start|>SOURCE\nENTRY<|frame_sep|><|return_sep|><|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|><|trace_end|>
 *
 * The context and `<|return_sep|>` are its prompt (never targets: right after
 * the context a trace goes on with `<|call_sep|>`, and the model must not learn
 * otherwise); the return line, the value (role `output`) and the closing tokens
 * are next-token targets for every λ, so a next-token-only model learns the
 * task as well as a model trained on states.
 */
import { CWM_TOKENS } from '../corpus/cwm.js';
import { PYTHON_KEYWORDS } from '../corpus/keywords.js';
import type { Step, Trace } from '../src/schema.js';
import type { Tokenizer } from './tokenizer.js';

/** The separators (shared with the corpus export) plus the two tokens only training needs. */
export const SPECIAL_TOKENS = {
  ...CWM_TOKENS,
  /** Ends a trace, so a model generating a rollout knows when to stop. */
  traceEnd: '<|trace_end|>',
  /** Fills the tail of a packed row; never a target. */
  pad: '<|pad|>',
} as const;

/** Special tokens in id order (a tokenizer's ids 256..). */
export const SPECIAL_TOKEN_LIST: readonly string[] = Object.values(SPECIAL_TOKENS);

/** Written instead of a value unchanged since the previous frame (diff encoding). */
export const UNCHANGED = '..';

export type Role = 'code' | 'action' | 'state' | 'output';

/** Numeric role codes used in typed arrays. */
export const ROLE_CODE = 0;
export const ROLE_ACTION = 1;
export const ROLE_STATE = 2;
/** The return value of an output example: a next-token target, not a state. */
export const ROLE_OUTPUT = 3;
const ROLE_NUMBER: Record<Role, number> = { code: ROLE_CODE, action: ROLE_ACTION, state: ROLE_STATE, output: ROLE_OUTPUT };

export interface Segment {
  text: string;
  role: Role;
  /** Whether `text` is one special token (one id) rather than text to encode. */
  special: boolean;
}

export interface SequenceOptions {
  /** Write `".."` for locals unchanged since the previous frame of the same call. */
  diff: boolean;
  /**
   * With `diff`, leave unchanged locals out instead of writing `".."`, and write
   * `null` for a local that is gone: a diffed state holds only what changed
   * (`{"i": "2"}`). Not CWM's format; default false.
   */
  changedOnly?: boolean;
  /**
   * After the source line of a `line` frame, write `<|arg_sep|>` and the current
   * values of the locals the line names (its operands, as a locals JSON in the
   * line's order): `    acc += xs[i]<|arg_sep|>{"acc": "3", "xs": "[1, 2]", "i": "1"}`.
   * The values are the frame's own state, so nothing new is told; the next state
   * then follows from the line and the values right before it, without a search
   * back through earlier diffs. Lines naming no local get no block. Not CWM's
   * format; default false.
   */
  operands?: boolean;
}

/** The context text: the source as written, then the entry call on its own last line if any. */
export function contextText(trace: Pick<Trace, 'source' | 'entry'>): string {
  if (trace.entry === null) return trace.source;
  const sep = trace.source === '' || trace.source.endsWith('\n') ? '' : '\n';
  return `${trace.source}${sep}${trace.entry}`;
}

/** The text of 1-based `line` in `source` (empty when out of range). */
export function sourceLine(lines: readonly string[], line: number): string {
  return lines[line - 1] ?? '';
}

/**
 * The locals JSON of a frame. `previous` (repr by name, the diff reference) turns
 * unchanged values into `".."`, or with `changedOnly` leaves them out and writes
 * `null` for names no longer bound.
 */
export function localsJson(
  locals: Step['locals'],
  previous: ReadonlyMap<string, string> | null,
  options: { changedOnly?: boolean } = {},
): string {
  const entry = (name: string, value: string | null) => `${JSON.stringify(name)}: ${JSON.stringify(value)}`;
  const current = Object.entries(locals ?? {});
  if (previous !== null && options.changedOnly) {
    const changed = current.filter(([name, v]) => previous.get(name) !== v.repr).map(([name, v]) => entry(name, v.repr));
    const gone = [...previous.keys()].filter((name) => !Object.hasOwn(locals ?? {}, name)).map((name) => entry(name, null));
    return `{${[...changed, ...gone].join(', ')}}`;
  }
  const parts = current.map(([name, v]) => entry(name, previous !== null && previous.get(name) === v.repr ? UNCHANGED : v.repr));
  return `{${parts.join(', ')}}`;
}

/**
 * For each step, the index of the step its state is diffed against, or null
 * where the state is spelled in full.
 *
 * CWM's rule (`..`): a `line` step is diffed against the closest earlier step at
 * its depth, passing over exception events, when that is a `line`; so the first
 * line of a call and the line after a nested call returns have none.
 *
 * With `changedOnly`: against the previous `call` or `line` step of the same
 * invocation, passing over nested calls — the step copy-previous-state copies —
 * so an empty diff means "as before" on every line; only `call` steps (the
 * arguments) are spelled in full.
 *
 * Eval resolves predicted diffs by this same function.
 */
export function diffReferenceIndices(steps: readonly Step[], options: { changedOnly?: boolean }): (number | null)[] {
  if (options.changedOnly) return previousFrameIndices(steps);
  return steps.map((step, i) => {
    if (step.event !== 'line') return null;
    for (let k = i - 1; k >= 0; k--) {
      const prev = steps[k]!;
      if (prev.event === 'exception' && prev.depth === step.depth) continue;
      return prev.event === 'line' && prev.depth === step.depth ? k : null;
    }
    return null;
  });
}

/**
 * For each step, the index of the previous `call`/`line` step of the same invocation
 * (null for `call` steps, `return`/`exception` steps, and a frame's first step).
 * Invocations are told apart by depth: a `call` at depth d opens one, a `return` at
 * depth d closes it, and line steps of a callee never count for the caller.
 */
export function previousFrameIndices(steps: readonly Step[]): (number | null)[] {
  const last: (number | null)[] = [];
  return steps.map((step, i) => {
    const d = step.depth;
    switch (step.event) {
      case 'call':
        last.length = d;
        last[d] = i;
        return null;
      case 'line': {
        const prev = last[d] ?? null;
        last.length = d;
        last[d] = i;
        return prev;
      }
      case 'return':
        last.length = d;
        return null;
      case 'exception':
        return null;
    }
  });
}

/** The reference state of each step as repr by name (see {@link diffReferenceIndices}). */
function diffReferences(steps: readonly Step[], options: SequenceOptions): (Map<string, string> | null)[] {
  if (!options.diff) return steps.map(() => null);
  return diffReferenceIndices(steps, options).map((k) =>
    k === null ? null : new Map(Object.entries(steps[k]!.locals ?? {}).map(([name, v]) => [name, v.repr])),
  );
}

/** Python keywords and constants, never operands. */
const NOT_OPERANDS = new Set([...PYTHON_KEYWORDS, 'False', 'None', 'True']);

/**
 * The locals a source line names, in order of first appearance: identifiers outside
 * string literals and comments, not attribute names (`xs.append` names `xs` only),
 * that are bound in `locals`.
 */
export function lineOperands(text: string, locals: Step['locals']): string[] {
  if (locals === null) return [];
  const code = text.replace(/(["'])(?:\\.|(?!\1)[^\\])*\1/g, '""').replace(/#.*$/, '');
  const names: string[] = [];
  for (const m of code.matchAll(/(?<![\w.])[A-Za-z_]\w*/g)) {
    const name = m[0];
    if (!NOT_OPERANDS.has(name) && Object.hasOwn(locals, name) && !names.includes(name)) names.push(name);
  }
  return names;
}

/** The operand block of a `line` frame (see {@link SequenceOptions.operands}): its JSON, or '' when the line names no local. */
export function operandsJson(step: Step, text: string): string {
  const names = lineOperands(text, step.locals);
  if (names.length === 0) return '';
  return `{${names.map((n) => `${JSON.stringify(n)}: ${JSON.stringify(step.locals![n]!.repr)}`).join(', ')}}`;
}

const EVENT_SEP: Record<Step['event'], string> = {
  call: SPECIAL_TOKENS.callSep,
  line: SPECIAL_TOKENS.lineSep,
  return: SPECIAL_TOKENS.returnSep,
  exception: SPECIAL_TOKENS.exceptionSep,
};

/**
 * The segments of one step's frame (`lines` = the source split on newlines,
 * `previous` = its diff reference from {@link diffReferences}, null for none).
 */
export function frameSegments(
  step: Step,
  lines: readonly string[],
  previous: ReadonlyMap<string, string> | null,
  options: SequenceOptions,
): Segment[] {
  const sp = (text: string): Segment => ({ text, role: 'action', special: true });
  const text = sourceLine(lines, step.line);
  if (step.event === 'call' || step.event === 'line') {
    const operands = options.operands && step.event === 'line' ? operandsJson(step, text) : '';
    return [
      sp(EVENT_SEP[step.event]),
      { text: localsJson(step.locals, previous, { changedOnly: options.changedOnly }), role: 'state', special: false },
      sp(SPECIAL_TOKENS.actionSep),
      { text, role: 'action', special: false },
      ...(operands === '' ? [] : [sp(SPECIAL_TOKENS.argSep), { text: operands, role: 'action' as const, special: false }]),
      sp(SPECIAL_TOKENS.frameSep),
    ];
  }
  return [
    sp(EVENT_SEP[step.event]),
    sp(SPECIAL_TOKENS.actionSep),
    { text, role: 'action', special: false },
    sp(SPECIAL_TOKENS.argSep),
    { text: JSON.stringify(step.arg?.repr ?? ''), role: 'state', special: false },
    sp(SPECIAL_TOKENS.frameSep),
  ];
}

/** The context segments (all role `code`). */
export function contextSegments(trace: Pick<Trace, 'source' | 'entry'>): Segment[] {
  return [
    { text: SPECIAL_TOKENS.traceContextStart, role: 'code', special: true },
    { text: contextText(trace), role: 'code', special: false },
    { text: SPECIAL_TOKENS.frameSep, role: 'code', special: true },
  ];
}

/** The whole trace as segments; joining their texts gives the CWM text. Empty texts are dropped. */
export function traceToSegments(trace: Trace, options: SequenceOptions): Segment[] {
  const lines = trace.source.split('\n');
  const out = contextSegments(trace);
  const refs = diffReferences(trace.steps, options);
  for (let i = 0; i < trace.steps.length; i++) out.push(...frameSegments(trace.steps[i]!, lines, refs[i]!, options));
  out.push({ text: SPECIAL_TOKENS.traceEnd, role: 'action', special: true });
  return out.filter((s) => s.text !== '');
}

/** The CWM text of a trace (segments joined). */
export function traceToText(trace: Trace, options: SequenceOptions): string {
  return traceToSegments(trace, options)
    .map((s) => s.text)
    .join('');
}

/** Where one step's frame sits in an encoded trace (token indices, end exclusive). */
export interface FrameSpan {
  /** Index of the step in `trace.steps`. */
  step: number;
  event: Step['event'];
  /** The frame's event separator. */
  start: number;
  /**
   * First token of the state: for `call`/`line` the locals right after the
   * event separator; for `return`/`exception` the value right after `<|arg_sep|>`.
   */
  stateStart: number;
  /**
   * One past the last state token: the `<|action_sep|>` ending the locals, or
   * the `<|frame_sep|>` ending the value.
   */
  stateEnd: number;
  /** One past the frame's `<|frame_sep|>`. */
  end: number;
}

export interface EncodedTrace {
  ids: Int32Array;
  /** Role code per token ({@link ROLE_CODE}, {@link ROLE_ACTION}, {@link ROLE_STATE}). */
  roles: Uint8Array;
  /** Tokens of the context (`<|trace_context_start|>` … its `<|frame_sep|>`). */
  contextLength: number;
  /** One span per step, in step order. */
  frames: FrameSpan[];
}

/** Encodes segments: specials as single ids, text with the BPE. */
export function encodeSegments(segments: readonly Segment[], tokenizer: Tokenizer): { ids: number[]; roles: number[] } {
  const ids: number[] = [];
  const roles: number[] = [];
  for (const s of segments) {
    const part = s.special ? [tokenizer.specialId(s.text)] : tokenizer.encode(s.text);
    for (const id of part) {
      ids.push(id);
      roles.push(ROLE_NUMBER[s.role]);
    }
  }
  return { ids, roles };
}

/** Token ids, roles and frame positions of a whole trace (ending with `<|trace_end|>`). */
export function encodeTrace(trace: Trace, tokenizer: Tokenizer, options: SequenceOptions): EncodedTrace {
  const lines = trace.source.split('\n');
  const { ids, roles } = encodeSegments(contextSegments(trace), tokenizer);
  const contextLength = ids.length;
  const frames: FrameSpan[] = [];
  const refs = diffReferences(trace.steps, options);
  for (let i = 0; i < trace.steps.length; i++) {
    const start = ids.length;
    let stateStart = -1;
    let stateEnd = -1;
    for (const s of frameSegments(trace.steps[i]!, lines, refs[i]!, options)) {
      if (s.role === 'state') stateStart = ids.length;
      const part = s.special ? [tokenizer.specialId(s.text)] : tokenizer.encode(s.text);
      for (const id of part) {
        ids.push(id);
        roles.push(ROLE_NUMBER[s.role]);
      }
      if (s.role === 'state') stateEnd = ids.length;
    }
    frames.push({ step: i, event: trace.steps[i]!.event, start, stateStart, stateEnd, end: ids.length });
  }
  ids.push(tokenizer.specialId(SPECIAL_TOKENS.traceEnd));
  roles.push(ROLE_ACTION);
  return { ids: Int32Array.from(ids), roles: Uint8Array.from(roles), contextLength, frames };
}

/** The step where the entry call returns: the `return` that closes the first call frame, or null. */
export function entryReturnStep(steps: readonly Step[]): Step | null {
  let depth = 0;
  for (const s of steps) {
    if (s.event === 'call') depth += 1;
    else if (s.event === 'return' && --depth === 0) return s;
  }
  return null;
}

/**
 * The segments of a trace's output example, or null when the trace has no entry
 * call that returned a value. The segments up to and including `<|return_sep|>` are the prompt.
 */
export function outputExampleSegments(trace: Trace): Segment[] | null {
  if (trace.entry === null || trace.result === null) return null;
  const ret = entryReturnStep(trace.steps);
  if (ret === null) return null;
  const sp = (text: string): Segment => ({ text, role: 'action', special: true });
  const line = sourceLine(trace.source.split('\n'), ret.line);
  const segments: Segment[] = [
    ...contextSegments(trace),
    sp(SPECIAL_TOKENS.returnSep),
    sp(SPECIAL_TOKENS.actionSep),
    { text: line, role: 'action', special: false },
    sp(SPECIAL_TOKENS.argSep),
    { text: JSON.stringify(trace.result.repr), role: 'output', special: false },
    sp(SPECIAL_TOKENS.frameSep),
    sp(SPECIAL_TOKENS.traceEnd),
  ];
  return segments.filter((s) => s.text !== '');
}

export interface EncodedOutputExample {
  ids: Int32Array;
  roles: Uint8Array;
  /** Tokens of the prompt (the context and `<|return_sep|>`); the targets follow. */
  promptLength: number;
}

/** A trace's output example as tokens, or null (see {@link outputExampleSegments}). */
export function encodeOutputExample(trace: Trace, tokenizer: Tokenizer): EncodedOutputExample | null {
  const segments = outputExampleSegments(trace);
  if (segments === null) return null;
  const { ids, roles } = encodeSegments(segments, tokenizer);
  const returnSep = tokenizer.specialId(SPECIAL_TOKENS.returnSep);
  return { ids: Int32Array.from(ids), roles: Uint8Array.from(roles), promptLength: ids.indexOf(returnSep) + 1 };
}
