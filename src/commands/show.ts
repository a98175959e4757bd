/**
 * `execwm show <corpus>`: one trace printed for a person, step by step, like
 * PySnooper or Python Tutor in a terminal: the current source line marked, and
 * the locals that changed since the previous step of the same frame.
 */
import type { Command } from 'commander';
import type { CorpusTrace, Split } from '../../corpus/index.js';
import type { Locals, Step } from '../schema.js';
import { UsageError, UserError } from '../errors.js';
import { nonNegativeInt } from '../flags.js';
import { parseSplit, withCorpusErrors } from './corpus.js';

export interface ShowOptions {
  /** Source lines printed around the current line at each step (0: the current line only). */
  context: number;
}

/** A short rendering of what changed between two states of one frame. */
function localChanges(before: Locals | undefined, after: Locals): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(after)) {
    const old = before?.[name];
    if (before === undefined || old === undefined) out.push(`${name} = ${value.repr}`);
    else if (old.repr !== value.repr || old.type !== value.type || old.id !== value.id) {
      out.push(`${name} = ${value.repr}   (was ${old.repr})`);
    }
  }
  if (before !== undefined) for (const name of Object.keys(before)) if (!Object.hasOwn(after, name)) out.push(`del ${name}`);
  return out;
}

/** The trace as text for a terminal. */
export function formatTrace(trace: CorpusTrace, options: ShowOptions = { context: 0 }): string {
  const lines = trace.source.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const width = String(lines.length).length;
  const out: string[] = [];
  out.push(
    `trace ${trace.id} · ${trace.status} · ${trace.split}${trace.origin ? ` · ${trace.origin}` : ''} · ${trace.steps.length} steps`,
  );
  if (trace.entry !== null) out.push(`entry: ${trace.entry}`);
  out.push('');
  lines.forEach((text, i) => out.push(`  ${String(i + 1).padStart(width)} │ ${text}`));
  out.push('');

  const frames = new Map<number, Locals>();
  const stepWidth = String(Math.max(0, trace.steps.length - 1)).length;
  const pad = ' '.repeat(stepWidth + 2);
  trace.steps.forEach((step: Step, k) => {
    const indent = '  '.repeat(step.depth);
    const head = `${String(k).padStart(stepWidth)}  ${indent}${step.event.padEnd(9)} ${step.func}`;
    const lineText = (n: number) => `${n === step.line ? '→' : ' '} ${String(n).padStart(width)} │ ${lines[n - 1] ?? ''}`;
    const forget = () => {
      for (const d of frames.keys()) if (d >= step.depth) frames.delete(d);
    };
    // What the previous line did (new and changed locals, printed text) goes above
    // this step, as PySnooper prints it: right under the line that caused it.
    const effects: string[] = [];
    if (step.event === 'call') forget();
    if (step.locals !== null) {
      effects.push(...localChanges(step.event === 'call' ? undefined : frames.get(step.depth), step.locals));
      frames.set(step.depth, step.locals);
    }
    if (step.stdout !== '') effects.push(`stdout: ${JSON.stringify(step.stdout)}`);
    for (const e of effects) out.push(`${pad}${indent}    ${e}`);
    for (let n = step.line - options.context; n <= step.line + options.context; n++) {
      if (n !== step.line && (n < 1 || n > lines.length)) continue;
      out.push(`${n === step.line ? head : ' '.repeat(head.length)}  ${lineText(n)}`);
    }
    if (step.event === 'return') {
      out.push(`${pad}${indent}    ⇒ ${step.arg?.repr ?? 'None'}`);
      forget();
    }
    if (step.event === 'exception') out.push(`${pad}${indent}    ! ${step.arg?.repr ?? ''}`);
  });
  out.push('');
  if (trace.result !== null) out.push(`result: ${trace.result.repr}`);
  if (trace.message !== null) out.push(`message: ${trace.message}`);
  if (trace.stdout !== '') out.push(`stdout: ${JSON.stringify(trace.stdout)}`);
  return `${out.join('\n')}\n`;
}

interface ShowCliOptions {
  id?: string;
  index?: number;
  split?: Split;
  json?: boolean;
  context: number;
}

export function registerShow(program: Command): void {
  program
    .command('show')
    .description('print one trace of a corpus step by step: the current line marked and the locals that changed')
    .argument('<corpus>', 'corpus folder (made by `execwm trace`)')
    .option('--id <id>', 'the trace of this program id')
    .option('--index <n>', 'the n-th trace (0-based, counted within --split if given); default 0', nonNegativeInt('--index'))
    .option('--split <split>', 'count --index within train, val or test', parseSplit)
    .option('--context <n>', 'source lines shown around the current line at each step', nonNegativeInt('--context'), 0)
    .option('--json', 'print the trace as JSON (full locals at every step) instead')
    .addHelpText(
      'after',
      '\nEach step shows its number, event, function (indented by call depth) and source line (→).\n' +
        'Between two steps come the locals that line made new or changed, and what it printed\n' +
        '(as PySnooper prints them); a call lists its arguments above it; ⇒ is a return value\n' +
        'and ! an exception. Steps follow settrace: a line step is the state before the line runs.\n\n' +
        'Examples:\n  execwm show data/c1 --index 3\n  execwm show data/c1 --id sample_12 --json',
    )
    .action(async (corpus: string, opts: ShowCliOptions) => {
      if (opts.id !== undefined && opts.index !== undefined) throw new UsageError('give --id or --index, not both');
      const trace = await withCorpusErrors(() => findTrace(corpus, opts));
      process.stdout.write(opts.json ? `${JSON.stringify(trace, null, 2)}\n` : formatTrace(trace, { context: opts.context }));
    });
}

async function findTrace(corpus: string, opts: ShowCliOptions): Promise<CorpusTrace> {
  const { readCorpus } = await import('../../corpus/reader.js');
  const index = opts.index ?? 0;
  let k = 0;
  for await (const trace of readCorpus(corpus, { split: opts.split })) {
    if (opts.id !== undefined ? trace.id === opts.id : k === index) return trace;
    k += 1;
  }
  if (opts.id !== undefined) throw new UserError(`no trace with id "${opts.id}" in ${corpus}`);
  throw new UserError(`--index ${index} is out of range: ${corpus} has ${k} traces${opts.split ? ` in split ${opts.split}` : ''}`);
}
