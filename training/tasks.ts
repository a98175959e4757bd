/**
 * Tasks derived from a recorded trace (no tracing again): debugger actions,
 * inverse execution and REval-style questions, each a prompt and a target in
 * the CWM vocabulary of sequence.ts. No new special tokens: a *command* is plain
 * text in an action slot that a trace never has (an `<|action_sep|>` straight
 * after a `<|frame_sep|>`), so old tokenizers and checkpoints read these too.
 *
 * Debugger actions (the frames so far, in the run's state encoding, then the command):
 *
 *   CONTEXT FRAME_0 … FRAME_i <|action_sep|>next<|frame_sep|>   →   STOP_FRAME <|trace_end|>
 *
 * - `step`: the next event, into calls (frame i+1).
 * - `next`: the next event of this invocation or its caller, stepping over calls
 *   (first later frame whose depth ≤ the current depth).
 * - `out`: the `return` frame of the current invocation (of the caller when the
 *   current frame is itself a return); its value is the return value.
 * - `until L`: the next `line` frame at line L.
 * - `back` (inverse execution): the prompt holds the context and frame i alone; the
 *   target is frame i-1.
 *
 * STOP_FRAME is a frame as a trace writes it, with every local spelled in full
 * (no `..`: the stop frame may be far from the prompt's last frame).
 *
 * REval-style questions (context, then the question; the answer, `<|frame_sep|>`, `<|trace_end|>`):
 *
 *   coverage L        → `yes` | `no`          is line L executed (a `line` event at L)?
 *   nextline L K      → a line number | `end` the line of the next `line` event after the K-th hit of L
 *   value V L K       → `"repr"`              V after the K-th hit of L ran (the next frame of that invocation)
 *   output            → the output example of sequence.ts (`<|return_sep|>` prompt)
 *
 * Input prediction (CRUXEval-I): the source without its entry call, the return
 * frame of the output example, then `input NAME`; the answer is the argument list
 * of the entry call `NAME(…)` as written:
 *
 *   <|trace_context_start|>SOURCE<|frame_sep|><|return_sep|><|action_sep|>RETURN LINE<|arg_sep|>"VALUE"<|frame_sep|><|action_sep|>input f<|frame_sep|>
 *     →  3, [1, 2]<|frame_sep|><|trace_end|>
 *
 * Any argument list for which `NAME(…)` returns a value `==` VALUE is right, so eval
 * runs the model's answer in the sandbox (eval/tasks.ts); the text is one of them.
 *
 * Lines are 1-based numbers in the source; hits count `line` events at any depth.
 * Target tokens have role `output` for states, values and answers and `action`
 * for separators and source lines, so all of them are next-token targets.
 */
import type { Step, Trace } from '../src/schema.js';
import { Rng } from '../src/rng.js';
import { deriveSeed } from './rng.js';
import {
  SPECIAL_TOKENS,
  contextSegments,
  diffReferenceIndices,
  encodeSegments,
  frameSegments,
  outputExampleSegments,
  type Segment,
  type SequenceOptions,
} from './sequence.js';
import type { Tokenizer } from './tokenizer.js';

export const DEBUGGER_TASKS = ['step', 'next', 'out', 'until', 'back'] as const;
export const QUESTION_TASKS = ['coverage', 'nextline', 'value', 'output'] as const;
/** Input prediction: the source and the return value in, the entry call's arguments out. */
export const INPUT_TASK = 'input' as const;
export const TASKS = [...DEBUGGER_TASKS, ...QUESTION_TASKS, INPUT_TASK] as const;
export type DebuggerTask = (typeof DEBUGGER_TASKS)[number];
export type QuestionTask = (typeof QUESTION_TASKS)[number];
export type TaskName = (typeof TASKS)[number];

/** What a task example asks for, so it can be scored without re-reading the prompt. */
export type TaskAnswer =
  /** A debugger action: the index of the stop frame in `trace.steps`. */
  | { kind: 'frame'; step: number }
  /** A question: the answer text (`yes`, `7`, `"4"`). */
  | { kind: 'text'; text: string };

export interface TaskExample {
  task: TaskName;
  /** The trace's id. */
  trace: string;
  /** The current frame (debugger actions) or the hit (questions), an index in `trace.steps`; null for coverage/output/input. */
  step: number | null;
  /** The command text (`until 5`, `value y 3 2`, `input f`); empty for output. */
  command: string;
  /** The context segments. */
  context: Segment[];
  /** Whole frames between the context and the command (each a segment list); may be cut from the front to fit. */
  frames: Segment[][];
  /** The command segments (for output: `<|return_sep|>`; for input: the return frame, then the command). */
  query: Segment[];
  /** The target segments, ending with `<|trace_end|>`. */
  target: Segment[];
  answer: TaskAnswer;
}

const sp = (text: string, role: Segment['role'] = 'action'): Segment => ({ text, role, special: true });
const txt = (text: string, role: Segment['role']): Segment => ({ text, role, special: false });

/** The command segments `<|action_sep|>COMMAND<|frame_sep|>`. */
export function commandSegments(command: string): Segment[] {
  return [sp(SPECIAL_TOKENS.actionSep), txt(command, 'action'), sp(SPECIAL_TOKENS.frameSep)];
}

/** A frame spelled in full as a target (states and values role `output`), ending the document. */
export function targetFrameSegments(step: Step, lines: readonly string[]): Segment[] {
  const segs = frameSegments(step, lines, null, { diff: false }).map((s) => (s.role === 'state' ? { ...s, role: 'output' as const } : s));
  return [...segs, sp(SPECIAL_TOKENS.traceEnd)].filter((s) => s.text !== '');
}

/** An answer text as a target. */
export function targetAnswerSegments(text: string): Segment[] {
  return [txt(text, 'output'), sp(SPECIAL_TOKENS.frameSep), sp(SPECIAL_TOKENS.traceEnd)];
}

// ---- Where execution stops: pure functions of the step list (the truth eval and the debugger use) ----

/** `step`: the next event, or null at the end. */
export function stepTarget(steps: readonly Step[], i: number): number | null {
  return i + 1 < steps.length ? i + 1 : null;
}

/** `next`: the first later event at the current depth or shallower (over calls). */
export function nextTarget(steps: readonly Step[], i: number): number | null {
  const d = steps[i]!.depth;
  for (let k = i + 1; k < steps.length; k++) if (steps[k]!.depth <= d) return k;
  return null;
}

/** `out`: the return of the current invocation (the caller's when step i is a return). */
export function outTarget(steps: readonly Step[], i: number): number | null {
  const d = steps[i]!.event === 'return' ? steps[i]!.depth - 1 : steps[i]!.depth;
  for (let k = i + 1; k < steps.length; k++) {
    const s = steps[k]!;
    if (s.depth < d || (s.depth === d && s.event === 'return')) return k;
  }
  return null;
}

/** `until L`: the next `line` event at line L. */
export function untilTarget(steps: readonly Step[], i: number, line: number): number | null {
  for (let k = i + 1; k < steps.length; k++) if (steps[k]!.event === 'line' && steps[k]!.line === line) return k;
  return null;
}

/** `back`: the previous event. */
export function backTarget(i: number): number | null {
  return i > 0 ? i - 1 : null;
}

/** Indices of the `line` events at `line`, in order (its hits). */
export function lineHits(steps: readonly Step[], line: number): number[] {
  const out: number[] = [];
  steps.forEach((s, k) => s.event === 'line' && s.line === line && out.push(k));
  return out;
}

/** Whether line L is executed. */
export function covers(steps: readonly Step[], line: number): boolean {
  return steps.some((s) => s.event === 'line' && s.line === line);
}

/** The line of the next `line` event after step `hit`, or `end`. */
export function nextLineAfter(steps: readonly Step[], hit: number): string {
  for (let k = hit + 1; k < steps.length; k++) if (steps[k]!.event === 'line') return String(steps[k]!.line);
  return 'end';
}

/** The frame after step `hit` ran: the next event of its invocation when that is a `line` event, else null. */
export function afterFrame(steps: readonly Step[], hit: number): number | null {
  const k = nextTarget(steps, hit);
  return k !== null && steps[k]!.event === 'line' && steps[k]!.depth === steps[hit]!.depth ? k : null;
}

/**
 * Lines a coverage question may ask about: non-blank, non-comment lines that can
 * get a `line` event (not `def`/`class`/decorator/`else:`/`try:`/`finally:` lines).
 */
export function coverageCandidates(source: string): number[] {
  const out: number[] = [];
  source.split('\n').forEach((text, k) => {
    const t = text.trim();
    if (t === '' || t.startsWith('#') || t.startsWith('@') || /^(def|class|async def)\b/.test(t) || /^(else|try|finally)\s*:/.test(t)) return;
    out.push(k + 1);
  });
  return out;
}

/** The index of the bracket closing the one at `open` in Python expression text, or null; string literals and comments are skipped. */
function closingBracket(text: string, open: number): number | null {
  const pairs: Record<string, string> = { '(': ')', '[': ']', '{': '}' };
  const stack: string[] = [];
  for (let k = open; k < text.length; k++) {
    const ch = text[k]!;
    if (ch === '"' || ch === "'") {
      const quote = text.startsWith(ch.repeat(3), k) ? ch.repeat(3) : ch;
      k += quote.length;
      while (k < text.length && !text.startsWith(quote, k)) k += text[k] === '\\' ? 2 : 1;
      if (k >= text.length) return null;
      k += quote.length - 1;
    } else if (ch === '#') {
      while (k < text.length && text[k] !== '\n') k++;
    } else if (ch in pairs) {
      stack.push(pairs[ch]!);
    } else if (ch === ')' || ch === ']' || ch === '}') {
      if (stack.pop() !== ch) return null;
      if (stack.length === 0) return k;
    }
  }
  return null;
}

/**
 * A call entry `NAME(ARGS)` split into the function's name and the argument list as
 * written (`f(3, [1, 2])` → `f`, `3, [1, 2]`); null for any other entry (`g(1) + 1`,
 * `obj.m(2)`, an unclosed call).
 */
export function splitEntryCall(entry: string): { name: string; args: string } | null {
  const m = /^\s*([A-Za-z_]\w*)\s*\(/.exec(entry);
  if (!m) return null;
  const open = m[0].length - 1;
  const close = closingBracket(entry, open);
  if (close === null || entry.slice(close + 1).trim() !== '') return null;
  return { name: m[1]!, args: entry.slice(open + 1, close) };
}

/** The input-prediction example of a trace, or null when its entry is no plain call or it returned no value. */
export function inputExample(trace: Trace): TaskExample | null {
  const call = trace.entry === null ? null : splitEntryCall(trace.entry);
  const output = outputExampleSegments(trace);
  if (call === null || output === null) return null;
  // The output example's return frame, from `<|return_sep|>` to its `<|frame_sep|>`.
  const returnFrame = output.slice(output.findIndex((s) => s.text === SPECIAL_TOKENS.returnSep), -1);
  const command = `${INPUT_TASK} ${call.name}`;
  return {
    task: INPUT_TASK,
    trace: trace.id,
    step: null,
    command,
    context: contextSegments({ source: trace.source, entry: null }),
    frames: [],
    query: [...returnFrame, ...commandSegments(command)],
    target: targetAnswerSegments(call.args),
    answer: { kind: 'text', text: call.args },
  };
}

// ---- Examples ----

export interface DeriveOptions extends SequenceOptions {
  /** Which tasks to derive. */
  tasks: readonly TaskName[];
  /** At most this many examples per task and trace, drawn with `seed`; default 4. */
  perTrace?: number;
  /** Seed of the draw; default 0. */
  seed?: number;
}

/** The run's encoding of frames 0..i, one segment list per frame. */
function promptFrames(trace: Trace, upTo: number, options: SequenceOptions): Segment[][] {
  const lines = trace.source.split('\n');
  const refs = options.diff ? diffReferenceIndices(trace.steps, options) : trace.steps.map(() => null);
  const out: Segment[][] = [];
  for (let k = 0; k <= upTo; k++) {
    const r = refs[k];
    const prev = r === null || r === undefined ? null : new Map(Object.entries(trace.steps[r]!.locals ?? {}).map(([n, v]) => [n, v.repr]));
    out.push(frameSegments(trace.steps[k]!, lines, prev, options).filter((s) => s.text !== ''));
  }
  return out;
}

/** The stop of a debugger command at step i (`step`, `next`, `out`, `until L`, `back`), or null when execution ends first. */
export function commandTarget(steps: readonly Step[], i: number, command: string): number | null {
  const [name, arg] = command.split(' ');
  switch (name) {
    case 'step':
      return stepTarget(steps, i);
    case 'next':
      return nextTarget(steps, i);
    case 'out':
      return outTarget(steps, i);
    case 'until':
      return untilTarget(steps, i, Number(arg));
    case 'back':
      return backTarget(i);
    default:
      throw new Error(`Unknown debugger command ${JSON.stringify(command)}`);
  }
}

/**
 * The example of one debugger command at step i; when execution ends before it stops,
 * the target is `<|trace_end|>` alone and the answer the text `end`.
 */
export function debuggerExample(
  trace: Trace,
  i: number,
  command: string,
  options: SequenceOptions,
  known?: { task: DebuggerTask; stop: number },
): TaskExample {
  const steps = trace.steps;
  const lines = trace.source.split('\n');
  const task = known?.task ?? (command.split(' ')[0] as DebuggerTask);
  const stop = known ? known.stop : commandTarget(steps, i, command);
  return {
    task,
    trace: trace.id,
    step: i,
    command,
    context: contextSegments(trace),
    frames: task === 'back' ? [frameSegments(steps[i]!, lines, null, { diff: false }).filter((s) => s.text !== '')] : promptFrames(trace, i, options),
    query: commandSegments(command),
    target: stop === null ? [sp(SPECIAL_TOKENS.traceEnd)] : targetFrameSegments(steps[stop]!, lines),
    answer: stop === null ? { kind: 'text', text: 'end' } : { kind: 'frame', step: stop },
  };
}

/** Draws `n` of `items` in a seeded order, kept in their original order. */
function draw<T>(items: readonly T[], n: number, rng: Rng): T[] {
  if (items.length <= n) return [...items];
  return rng
    .permutation(items.length)
    .slice(0, n)
    .sort((a, b) => a - b)
    .map((k) => items[k]!);
}

/** The variable a value question asks about after a hit: the first local whose value the line changed or bound. */
export function changedVariable(steps: readonly Step[], hit: number, after: number): string | null {
  const before = steps[hit]!.locals ?? {};
  const now = steps[after]!.locals ?? {};
  for (const [name, v] of Object.entries(now)) if (before[name]?.repr !== v.repr) return name;
  return null;
}

/** Every example of the chosen tasks that one trace yields (at most `perTrace` per task). */
export function deriveTaskExamples(trace: Trace, options: DeriveOptions): TaskExample[] {
  const steps = trace.steps;
  const perTrace = options.perTrace ?? 4;
  const rng = new Rng(deriveSeed(options.seed ?? 0, `tasks:${trace.id}`));
  const context = contextSegments(trace);
  const out: TaskExample[] = [];
  const frameExample = (task: DebuggerTask, i: number, command: string, stop: number): TaskExample => debuggerExample(trace, i, command, options, { task, stop });
  const question = (task: QuestionTask, step: number | null, command: string, answer: string): TaskExample => ({
    task,
    trace: trace.id,
    step,
    command,
    context,
    frames: [],
    query: commandSegments(command),
    target: targetAnswerSegments(answer),
    answer: { kind: 'text', text: answer },
  });
  for (const task of options.tasks) {
    const candidates: TaskExample[] = [];
    if (task === 'step' || task === 'next' || task === 'out') {
      const target = task === 'step' ? stepTarget : task === 'next' ? nextTarget : outTarget;
      for (let i = 0; i < steps.length; i++) {
        const k = target(steps, i);
        if (k !== null) candidates.push(frameExample(task, i, task, k));
      }
    } else if (task === 'until') {
      for (let i = 0; i < steps.length; i++) {
        const later = [...new Set(steps.slice(i + 1).filter((s) => s.event === 'line').map((s) => s.line))];
        if (later.length === 0) continue;
        const line = later[rng.int(later.length)]!;
        candidates.push(frameExample('until', i, `until ${line}`, untilTarget(steps, i, line)!));
      }
    } else if (task === 'back') {
      for (let i = 1; i < steps.length; i++) candidates.push(frameExample('back', i, 'back', i - 1));
    } else if (task === 'coverage') {
      for (const line of coverageCandidates(trace.source)) {
        candidates.push(question('coverage', null, `coverage ${line}`, covers(steps, line) ? 'yes' : 'no'));
      }
    } else if (task === 'nextline') {
      for (const [line, hits] of hitsByLine(steps)) {
        hits.forEach((hit, k) => candidates.push(question('nextline', hit, `nextline ${line} ${k + 1}`, nextLineAfter(steps, hit))));
      }
    } else if (task === 'value') {
      for (const [line, hits] of hitsByLine(steps)) {
        hits.forEach((hit, k) => {
          const after = afterFrame(steps, hit);
          const name = after === null ? null : changedVariable(steps, hit, after);
          if (after === null || name === null) return;
          candidates.push(question('value', hit, `value ${name} ${line} ${k + 1}`, JSON.stringify(steps[after]!.locals![name]!.repr)));
        });
      }
    } else if (task === INPUT_TASK) {
      const ex = inputExample(trace);
      if (ex !== null) candidates.push(ex);
    } else {
      const segs = outputExampleSegments(trace);
      if (segs === null) continue;
      const q = segs.findIndex((s) => s.text === SPECIAL_TOKENS.returnSep);
      candidates.push({
        task: 'output',
        trace: trace.id,
        step: null,
        command: '',
        context,
        frames: [],
        query: segs.slice(context.length, q + 1),
        target: segs.slice(q + 1),
        answer: { kind: 'text', text: JSON.stringify(trace.result!.repr) },
      });
    }
    out.push(...draw(candidates, perTrace, rng));
  }
  return out;
}

/** Line number → its hits, in order of first hit. */
function hitsByLine(steps: readonly Step[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  steps.forEach((s, k) => {
    if (s.event !== 'line') return;
    const hits = out.get(s.line) ?? [];
    hits.push(k);
    out.set(s.line, hits);
  });
  return out;
}

/** The prompt and target of an example as text (the export's prompt/completion). */
export function taskExampleText(ex: TaskExample): { prompt: string; completion: string } {
  const join = (segs: readonly Segment[]) => segs.map((s) => s.text).join('');
  return { prompt: join([...ex.context, ...ex.frames.flat(), ...ex.query]), completion: join(ex.target) };
}

export interface EncodedTaskExample {
  ids: Int32Array;
  roles: Uint8Array;
  /** Tokens of the prompt; the targets follow. */
  promptLength: number;
}

/**
 * An example as tokens fitting `maxLength` (prompt + target), or null when even the
 * context, the last frame (if any), the command and the target do not fit. Frames
 * are dropped from the front, as training windows drop them.
 */
export function encodeTaskExample(ex: TaskExample, tokenizer: Tokenizer, maxLength: number): EncodedTaskExample | null {
  const ctx = encodeSegments(ex.context, tokenizer);
  const query = encodeSegments(ex.query, tokenizer);
  const target = encodeSegments(ex.target, tokenizer);
  let room = maxLength - ctx.ids.length - query.ids.length - target.ids.length;
  const kept: { ids: number[]; roles: number[] }[] = [];
  for (let k = ex.frames.length - 1; k >= 0; k--) {
    const f = encodeSegments(ex.frames[k]!, tokenizer);
    if (f.ids.length > room) break;
    room -= f.ids.length;
    kept.unshift(f);
  }
  if (room < 0 || (ex.frames.length > 0 && kept.length === 0)) return null;
  const parts = [ctx, ...kept, query];
  const promptIds = parts.flatMap((p) => p.ids);
  const promptRoles = parts.flatMap((p) => p.roles);
  return {
    ids: Int32Array.from([...promptIds, ...target.ids]),
    roles: Uint8Array.from([...promptRoles, ...target.roles]),
    promptLength: promptIds.length,
  };
}

/** Parses a task list (`all` or comma-separated names); throws on an unknown name. */
export function parseTaskList(text: string): TaskName[] {
  if (text.trim() === 'all') return [...TASKS];
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const n of names) {
    if (!(TASKS as readonly string[]).includes(n)) throw new Error(`Unknown task ${JSON.stringify(n)}; expected all or some of ${TASKS.join(', ')}`);
  }
  if (names.length === 0) throw new Error('Expected at least one task');
  return [...new Set(names)] as TaskName[];
}

/** Tasks a training mix may add (the output example has its own switch, `outputExamples`). */
export const TRAIN_TASKS = TASKS.filter((t) => t !== 'output');
export type TrainTaskName = Exclude<TaskName, 'output'>;

/** Mix weights: examples of each task per train trace, on average (2.5 = two, and a third half the time). */
export type TaskMix = Partial<Record<TrainTaskName, number>>;

/** Parses `all` (weight 1 each) or `name[:weight],…`; throws on an unknown name or a bad weight. */
export function parseTaskMix(text: string): TaskMix {
  if (text.trim() === 'all') return Object.fromEntries(TRAIN_TASKS.map((t) => [t, 1]));
  const mix: TaskMix = {};
  for (const part of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const [name, weightText] = part.split(':') as [string, string | undefined];
    if (name === 'output') throw new Error('output examples are in the mix by default (turn them off with --no-output-examples)');
    if (!(TRAIN_TASKS as readonly string[]).includes(name)) throw new Error(`Unknown task ${JSON.stringify(name)}; expected all or some of ${TRAIN_TASKS.join(', ')}`);
    const weight = weightText === undefined ? 1 : Number(weightText);
    if (!(weight > 0) || !Number.isFinite(weight)) throw new Error(`Expected the weight of ${name} to be a positive number, got ${JSON.stringify(weightText)}`);
    mix[name as TrainTaskName] = weight;
  }
  if (Object.keys(mix).length === 0) throw new Error('Expected at least one task');
  return mix;
}

/**
 * A trace's training examples for `mix`: per task, ⌊w⌋ examples plus one more with
 * probability w − ⌊w⌋, drawn with `seed`.
 */
export function mixExamples(trace: Trace, mix: TaskMix, options: SequenceOptions & { seed: number }): TaskExample[] {
  const rng = new Rng(deriveSeed(options.seed, `mix:${trace.id}`));
  const out: TaskExample[] = [];
  for (const task of TRAIN_TASKS) {
    const w = mix[task];
    if (w === undefined) continue;
    const n = Math.floor(w) + (rng.next() < w - Math.floor(w) ? 1 : 0);
    if (n > 0) out.push(...deriveTaskExamples(trace, { ...options, tasks: [task], perTrace: n, seed: rng.nextUint32() }));
  }
  return out;
}
