/**
 * A pdb-style session in which a trained model predicts where execution stops and
 * what the locals hold, shown beside the truth from the sandbox trace (`execwm debug`).
 *
 * The session follows the true execution: after each command it stands on the true
 * stop frame, and the model is asked the same debugger question (training/tasks.ts)
 * from the true frames so far. Commands:
 *
 *   step | s          next event, into calls          next | n      over calls
 *   out | o           until the current call returns  until L       to the next hit of line L
 *   break L | b L     set a breakpoint                continue | c  to the next breakpoint hit
 *   back              the previous frame (inverse)    print V | p V V here, truth and model
 *   where | w         the current frame again         quit | q
 *
 * `continue` stops where the truth first reaches a breakpoint; the model is asked
 * `until L` for that breakpoint's line L.
 */
import type { Trace } from '../src/schema.js';
import type { LoadedCheckpoint } from '../training/checkpoint.js';
import { debuggerExample, encodeTaskExample } from '../training/tasks.js';
import { sourceLine } from '../training/sequence.js';
import type { RolloutFrame, StateStrings } from './metrics.js';
import { stateStrings } from './metrics.js';
import { framesEqual } from './metrics.js';
import { decodeGreedy, specialIds, trueRolloutFrames } from './predict.js';
import { parseStopFrame } from './tasks.js';

export const DEBUG_HELP =
  'commands: step (s), next (n), out (o), until L, break L (b), continue (c), back, print V (p), where (w), quit (q)';

export class DebugSession {
  private at = 0;
  private readonly breakpoints = new Set<number>();
  /** The model's prediction of the current frame, when the last command asked for one. */
  private predicted: RolloutFrame | null = null;
  private readonly lines: string[];
  /** Stops the model was asked about, and those it got right (event, line and every local or value). */
  private asked = 0;
  private right = 0;

  constructor(
    private readonly trace: Trace,
    private readonly ckpt: LoadedCheckpoint,
    private readonly encoding: { diff: boolean; changedOnly: boolean; operands: boolean },
  ) {
    this.lines = trace.source.split('\n');
  }

  /** The first frame, as the session opens. */
  start(): string {
    if (this.trace.steps.length === 0) return `the program recorded no frames (status ${this.trace.status})\n`;
    return this.describe(this.at, null);
  }

  /** Runs one command; `done` when the session should end. */
  run(input: string): { text: string; done: boolean } {
    const [name = '', ...rest] = input.trim().split(/\s+/);
    const arg = rest.join(' ');
    const steps = this.trace.steps;
    switch (name) {
      case '':
        return { text: '', done: false };
      case 'q':
      case 'quit':
      case 'exit':
        return { text: `the model was right on ${this.right} of ${this.asked} stops (line and locals)\n`, done: true };
      case 'h':
      case 'help':
        return { text: `${DEBUG_HELP}\n`, done: false };
      case 'w':
      case 'where':
        return { text: this.describe(this.at, this.predicted), done: false };
      case 'b':
      case 'break': {
        const line = this.lineArg(arg);
        if (line === null) return { text: `break needs a line number of the source (1..${this.lines.length})\n`, done: false };
        this.breakpoints.add(line);
        return { text: `breakpoint at line ${line}: ${sourceLine(this.lines, line).trim()}\n`, done: false };
      }
      case 'p':
      case 'print': {
        const truth = this.stateOf(this.at);
        const t = truth === null ? '(no locals in a return frame)' : (truth[arg] ?? '(not bound)');
        const m = this.predicted?.state ? (this.predicted.state[arg] ?? '(not predicted)') : '(no prediction)';
        return { text: `${arg} = ${t}    model: ${m}${this.predicted?.state && m !== t ? '  ✗' : ''}\n`, done: false };
      }
      case 's':
      case 'step':
        return this.move('step');
      case 'n':
      case 'next':
        return this.move('next');
      case 'o':
      case 'out':
      case 'r':
      case 'return':
        return this.move('out');
      case 'back':
        return this.move('back');
      case 'until':
      case 'unt': {
        const line = this.lineArg(arg);
        if (line === null) return { text: `until needs a line number of the source (1..${this.lines.length})\n`, done: false };
        return this.move(`until ${line}`);
      }
      case 'c':
      case 'continue': {
        if (this.breakpoints.size === 0) return { text: 'no breakpoints (break L sets one)\n', done: false };
        const k = steps.findIndex((s, j) => j > this.at && s.event === 'line' && this.breakpoints.has(s.line));
        if (k < 0) return this.move(`until ${Math.min(...this.breakpoints)}`);
        return this.move(`until ${steps[k]!.line}`);
      }
      default:
        return { text: `unknown command ${JSON.stringify(name)}; ${DEBUG_HELP}\n`, done: false };
    }
  }

  private lineArg(arg: string): number | null {
    const n = Number(arg);
    return Number.isInteger(n) && n >= 1 && n <= this.lines.length ? n : null;
  }

  private stateOf(k: number): StateStrings | null {
    const s = this.trace.steps[k]!;
    return s.locals === null ? null : stateStrings(s.locals);
  }

  /** Asks the model, moves to the true stop, and shows both. */
  private move(command: string): { text: string; done: boolean } {
    const ex = debuggerExample(this.trace, this.at, command, this.encoding);
    const predicted = this.predict(ex);
    this.asked += 1;
    if (ex.answer.kind !== 'frame') {
      if (predicted === null) this.right += 1;
      const said = predicted === null ? 'the program ends ✓' : `${this.frameLine(predicted)}  ✗`;
      return { text: `${command}: the program ends here (no further stop)\n  model: ${said}\n`, done: false };
    }
    this.at = ex.answer.step;
    this.predicted = predicted;
    if (predicted !== null && framesEqual(trueRolloutFrames(this.trace)[this.at]!, predicted)) this.right += 1;
    return { text: this.describe(this.at, predicted, command), done: false };
  }

  /** The model's stop frame for an example, or null when it says the program ends. */
  private predict(ex: ReturnType<typeof debuggerExample>): RolloutFrame | null {
    const { model, tokenizer } = this.ckpt;
    const enc = encodeTaskExample(ex, tokenizer, model.config.blockSize);
    if (enc === null) return { event: 'malformed', state: null, action: '(the prompt does not fit the model\'s context)', arg: null };
    const sp = specialIds(tokenizer);
    const [r] = decodeGreedy(model, [{ prompt: Array.from(enc.ids.subarray(0, enc.promptLength)), maxNewTokens: enc.ids.length - enc.promptLength + 16 }], {
      isStop: (id) => id === sp.frameSep || id === sp.traceEnd,
    });
    if (r!.stop === sp.traceEnd && r!.ids.length === 0) return null;
    return parseStopFrame(tokenizer.decode(r!.ids));
  }

  private frameLine(f: RolloutFrame): string {
    const numbers = this.lines.flatMap((l, k) => (l === f.action && l !== '' ? [k + 1] : []));
    return `line ${numbers.length > 0 ? numbers[0] : '?'} (${f.event}): ${f.action.trim()}`;
  }

  /** The true frame k, and the model's prediction beside it with mistakes marked. */
  private describe(k: number, predicted: RolloutFrame | null, command?: string): string {
    const s = this.trace.steps[k]!;
    const action = sourceLine(this.lines, s.line);
    const out = [`${command ? `${command}: ` : ''}> line ${s.line} (${s.event}, depth ${s.depth}, frame ${k}): ${action.trim()}`];
    if (predicted) {
      const lineOk = predicted.event === s.event && predicted.action === action;
      out.push(predicted.event === 'malformed' ? '  model: no frame that parses  ✗' : `  model stops at ${this.frameLine(predicted)}  ${lineOk ? '✓' : '✗'}`);
    }
    const truth = this.stateOf(k);
    if (truth !== null) {
      const names = [...new Set([...Object.keys(truth), ...Object.keys(predicted?.state ?? {})])];
      for (const name of names) {
        const t = truth[name];
        const m = predicted?.state?.[name];
        const mark = predicted === null ? '' : m === t ? '  ✓' : '  ✗';
        out.push(`  ${name} = ${t ?? '(not bound)'}${predicted === null ? '' : `    model: ${m ?? '(missing)'}`}${mark}`);
      }
      if (predicted && predicted.state === null && predicted.event !== 'malformed') out.push('  model: no locals (a return frame, or undecodable)  ✗');
    } else {
      const value = s.arg?.repr ?? '';
      const m = predicted?.arg;
      out.push(`  ${s.event} value = ${value}${predicted ? `    model: ${m ?? '(none)'}  ${m === value ? '✓' : '✗'}` : ''}`);
    }
    return `${out.join('\n')}\n`;
  }
}
