/**
 * `execwm export <corpus>`: a corpus for other tools.
 *
 * - `cwm`: JSONL of CWM-format text, exactly what the trainer reads
 *   (training/sequence.ts writes it; no second serializer here), in any of its
 *   state encodings, with the output examples if asked.
 * - `prompts`: JSONL of prompt/completion pairs for the tasks the trainer and
 *   eval use — the state of each call/line frame given the trace before it, and
 *   the return value given the source and call — the shape fine-tuning tools take —
 *   and the derived tasks of training/tasks.ts (debugger actions, inverse steps,
 *   REval-style questions, input prediction).
 * - `jsonl`: each trace with full locals.
 * - `parquet`: the Hugging Face layout with a dataset card (corpus/parquet.ts, corpus/card.ts).
 */
import { createWriteStream, writeFileSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { CorpusTrace, Split } from '../../corpus/index.js';
import { SPECIAL_TOKENS, outputExampleSegments, traceToSegments, traceToText, type SequenceOptions } from '../../training/sequence.js';
import { TRAIN_TASKS, deriveTaskExamples, taskExampleText, type TrainTaskName } from '../../training/tasks.js';
import { UsageError, UserError } from '../errors.js';
import { nonNegativeInt, positiveInt } from '../flags.js';
import { createProgress } from '../progress.js';
import { parseSplit, withCorpusErrors } from './corpus.js';

export type ExportFormat = 'cwm' | 'jsonl' | 'prompts' | 'parquet';
const FORMATS: readonly ExportFormat[] = ['cwm', 'jsonl', 'prompts', 'parquet'];

/** The trainer's state encodings: full states, CWM's `".."`, or only what changed. */
export type DiffMode = 'none' | 'cwm' | 'changed';
const DIFF_MODES: readonly DiffMode[] = ['none', 'cwm', 'changed'];

/** `state` and `output`, and the derived tasks (training/tasks.ts). */
export type PromptTask = 'state' | 'output' | TrainTaskName;
const PROMPT_TASKS: readonly PromptTask[] = ['state', 'output', ...TRAIN_TASKS];
/** What `--tasks` means when not given. */
const DEFAULT_PROMPT_TASKS: readonly PromptTask[] = ['state', 'output'];

/** The training serializer's options for a diff mode, with each line's operands or not (`execwm train --operands`). */
export function sequenceOptions(diff: DiffMode, operands = false): SequenceOptions {
  const states = diff === 'none' ? { diff: false } : { diff: true, changedOnly: diff === 'changed' };
  return operands ? { ...states, operands } : states;
}

/** What the `text` of each encoding is, for the dataset card and `--help`. */
export function encodingDescription(diff: DiffMode, operands = false): string {
  const states = {
    none: 'every frame spells all its locals',
    cwm: 'CWM\'s diff encoding: `".."` for a value unchanged since the previous line of the same call',
    changed: 'changed-only: a frame lists only the locals that changed (`null` for a name gone, `{}` for none)',
  }[diff];
  const lines = operands ? '; after each line, `<|arg_sep|>` and the current values of the locals it names (`--operands`)' : '';
  return `the trace in the CWM training format of execwm's trainer (\`--diff ${diff}\`: ${states}${lines}), ending with \`<|trace_end|>\``;
}

/** One JSONL record of a `prompts` export. */
export interface PromptRecord {
  id: string;
  split: Split;
  task: PromptTask;
  /** The index in `steps` of the frame whose state is asked for (`state`), the current frame (debugger actions) or the hit (questions). */
  step?: number;
  /** Derived tasks: the command (`next`, `until 5`, `value y 3 2`, `input f`). */
  command?: string;
  prompt: string;
  completion: string;
}

const EVENT_SEPARATORS: ReadonlySet<string> = new Set([SPECIAL_TOKENS.callSep, SPECIAL_TOKENS.lineSep, SPECIAL_TOKENS.returnSep, SPECIAL_TOKENS.exceptionSep]);

/**
 * Prompt/completion pairs of one trace, cut from the trainer's own segments.
 *
 * `state`: for each call/line frame, the prompt is the text of the trace up to
 * and including the frame's event separator (what eval's teacher-forced
 * prediction sees) and the completion is the frame's locals in the chosen
 * encoding followed by `<|action_sep|>`, which ends them. A trace of n frames
 * gives n prompts whose lengths grow with the frame's position.
 *
 * `output`: the trainer's output example split where the trainer splits it:
 * prompt = the context and `<|return_sep|>`, completion = the rest (return line,
 * value, `<|frame_sep|><|trace_end|>`). Only traces whose entry call returned.
 *
 * A derived task (`next`, `until`, `coverage`, …): every example training/tasks.ts
 * derives from the trace, the prompt ending with the command and the completion
 * with `<|trace_end|>` (README, "Task formats").
 */
export function promptRecords(trace: CorpusTrace, options: { diff: DiffMode; operands?: boolean; tasks: readonly PromptTask[] }): PromptRecord[] {
  const out: PromptRecord[] = [];
  const base = { id: trace.id, split: trace.split };
  if (options.tasks.includes('state')) {
    const segments = traceToSegments(trace, sequenceOptions(options.diff, options.operands));
    let prefix = '';
    let step = -1;
    segments.forEach((s, i) => {
      if (s.special && EVENT_SEPARATORS.has(s.text)) step += 1;
      const prev = segments[i - 1];
      if (s.role === 'state' && prev !== undefined && (prev.text === SPECIAL_TOKENS.callSep || prev.text === SPECIAL_TOKENS.lineSep)) {
        out.push({ ...base, task: 'state', step, prompt: prefix, completion: s.text + SPECIAL_TOKENS.actionSep });
      }
      prefix += s.text;
    });
  }
  if (options.tasks.includes('output')) {
    const segments = outputExampleSegments(trace);
    if (segments !== null) {
      const cut = segments.findIndex((s) => s.special && s.text === SPECIAL_TOKENS.returnSep) + 1;
      const join = (from: number, to?: number) =>
        segments
          .slice(from, to)
          .map((s) => s.text)
          .join('');
      out.push({ ...base, task: 'output', prompt: join(0, cut), completion: join(cut) });
    }
  }
  const derived = TRAIN_TASKS.filter((t) => options.tasks.includes(t));
  if (derived.length > 0) {
    for (const ex of deriveTaskExamples(trace, { ...sequenceOptions(options.diff, options.operands), tasks: derived, perTrace: Infinity })) {
      out.push({ ...base, task: ex.task as TrainTaskName, ...(ex.step === null ? {} : { step: ex.step }), command: ex.command, ...taskExampleText(ex) });
    }
  }
  return out;
}

export interface LineOptions {
  format: Exclude<ExportFormat, 'parquet'>;
  diff: DiffMode;
  /** cwm, prompts: each line followed by its operands' values (`execwm train --operands`). */
  operands?: boolean;
  /** cwm: a second record per function trace with its output example. */
  outputExamples: boolean;
  /** prompts: which tasks. */
  tasks: readonly PromptTask[];
}

/** The JSONL lines (without newlines) one trace gives. */
export function exportLines(trace: CorpusTrace, options: LineOptions): string[] {
  switch (options.format) {
    case 'jsonl':
      return [JSON.stringify(trace)];
    case 'prompts':
      return promptRecords(trace, options).map((r) => JSON.stringify(r));
    case 'cwm': {
      const base = { id: trace.id, split: trace.split, status: trace.status, origin: trace.origin };
      const lines = [JSON.stringify({ ...base, task: 'trace', text: traceToText(trace, sequenceOptions(options.diff, options.operands)) })];
      const example = options.outputExamples ? outputExampleSegments(trace) : null;
      if (example !== null) lines.push(JSON.stringify({ ...base, task: 'output', text: example.map((s) => s.text).join('') }));
      return lines;
    }
  }
}

interface ExportCliOptions {
  format: ExportFormat;
  /** `true` for `--diff` alone. */
  diff?: boolean | string;
  operands?: boolean;
  outputExamples?: boolean;
  tasks?: PromptTask[];
  split?: Split;
  limit?: number;
  out?: string;
  okOnly?: boolean;
  text?: boolean;
  license?: string;
  fileMb?: number;
  overwrite?: boolean;
  quiet?: boolean;
}

function diffMode(value: boolean | string | undefined): DiffMode {
  if (value === undefined) return 'none';
  if (value === true) return 'cwm';
  if ((DIFF_MODES as readonly string[]).includes(value as string)) return value as DiffMode;
  throw new UsageError(`--diff takes none, cwm or changed, got ${JSON.stringify(value)}`);
}

function parseTasks(value: string): PromptTask[] {
  if (value.trim() === 'all') return [...PROMPT_TASKS];
  const tasks = value.split(',').map((t) => t.trim());
  const bad = tasks.find((t) => !(PROMPT_TASKS as readonly string[]).includes(t));
  if (bad !== undefined) throw new InvalidArgumentError(`expected all or a comma-separated list of ${PROMPT_TASKS.join(', ')}, got "${bad}"`);
  return tasks as PromptTask[];
}

/** Refuses flags that mean nothing for the chosen format, naming them. */
function checkFlags(opts: ExportCliOptions): void {
  const only: [keyof ExportCliOptions, string, ExportFormat[]][] = [
    ['outputExamples', '--output-examples', ['cwm']],
    ['tasks', '--tasks', ['prompts']],
    ['diff', '--diff', ['cwm', 'prompts', 'parquet']],
    ['operands', '--operands', ['cwm', 'prompts', 'parquet']],
    ['text', '--text', ['parquet']],
    ['license', '--license', ['parquet']],
    ['fileMb', '--file-mb', ['parquet']],
    ['overwrite', '--overwrite', ['parquet']],
    ['split', '--split', ['cwm', 'jsonl', 'prompts']],
    ['okOnly', '--ok-only', ['cwm', 'jsonl', 'prompts']],
    ['limit', '--limit', ['cwm', 'jsonl', 'prompts']],
  ];
  for (const [key, flag, formats] of only) {
    if (opts[key] !== undefined && !formats.includes(opts.format)) {
      const why = opts.format === 'parquet' ? ' (a Parquet export holds the whole corpus, as its card describes)' : '';
      throw new UsageError(`${flag} does not apply to --format ${opts.format}${why}`);
    }
  }
  if (opts.format === 'parquet' && opts.out === undefined) throw new UsageError('--format parquet needs --out DIR (the folder of the export)');
  if (opts.diff !== undefined && opts.format === 'parquet' && !opts.text) throw new UsageError('--diff with --format parquet chooses the encoding of --text; give --text too');
  if (opts.operands && opts.format === 'parquet' && !opts.text) throw new UsageError('--operands with --format parquet chooses the encoding of --text; give --text too');
}

async function write(stream: NodeJS.WritableStream | WriteStream, text: string): Promise<void> {
  // A write error is recorded by the stream's 'error' listener; here it only ends the wait.
  if (!stream.write(text)) await once(stream, 'drain').catch(() => undefined);
}

async function exportJsonl(corpus: string, opts: ExportCliOptions, diff: DiffMode): Promise<void> {
  const out = opts.out ? createWriteStream(opts.out) : process.stdout;
  // A reader that stops early (`| head`) closes the pipe: stop quietly.
  let failure: NodeJS.ErrnoException | null = null;
  out.on('error', (err: NodeJS.ErrnoException) => (failure = err));
  const lineOptions: LineOptions = {
    format: opts.format as LineOptions['format'],
    diff,
    operands: opts.operands ?? false,
    outputExamples: opts.outputExamples ?? false,
    tasks: opts.tasks ?? DEFAULT_PROMPT_TASKS,
  };
  let traces = 0;
  let lines = 0;
  await withCorpusErrors(async () => {
    const { readCorpus } = await import('../../corpus/reader.js');
    const all = readCorpus(corpus, { split: opts.split, limit: opts.limit, statuses: opts.okOnly ? ['ok'] : undefined });
    for await (const trace of all) {
      if (failure !== null) break;
      const records = exportLines(trace, lineOptions);
      if (records.length > 0) await write(out, `${records.join('\n')}\n`);
      traces += 1;
      lines += records.length;
    }
  });
  const err = failure as NodeJS.ErrnoException | null;
  if (err !== null && err.code !== 'EPIPE') throw new UserError(`cannot write ${opts.out ?? 'stdout'}: ${err.message}`);
  if (out !== process.stdout) {
    (out as WriteStream).end();
    await once(out as WriteStream, 'finish');
    process.stderr.write(`wrote ${lines} lines from ${traces} traces to ${opts.out}\n`);
  }
}

async function exportParquetCli(corpus: string, opts: ExportCliOptions, diff: DiffMode): Promise<void> {
  const outDir = opts.out as string;
  const { exportParquet, parquetSchema } = await import('../../corpus/parquet.js');
  const { datasetCard } = await import('../../corpus/card.js');
  const { readManifest } = await import('../../corpus/manifest.js');
  const total = (await withCorpusErrors(() => readManifest(corpus))).counts.total;
  const progress = createProgress({ label: 'export', total, unit: 'traces', quiet: opts.quiet ?? false });
  const seq = sequenceOptions(diff, opts.operands);
  const exported = await withCorpusErrors(() =>
    exportParquet({
      corpus,
      out: outDir,
      text: opts.text ? (t) => traceToText(t, seq) : undefined,
      fileBytes: opts.fileMb === undefined ? undefined : opts.fileMb * 2 ** 20,
      overwrite: opts.overwrite ?? false,
      onProgress: (done) => progress.update(done),
    }),
  );
  progress.stop();
  const card = datasetCard({
    exported,
    schema: parquetSchema(opts.text ?? false),
    license: opts.license,
    textEncoding: opts.text ? encodingDescription(diff, opts.operands) : undefined,
  });
  writeFileSync(join(outDir, 'README.md'), card);
  const bytes = exported.files.reduce((n, f) => n + f.bytes, 0);
  const size = bytes < 2 ** 20 ? `${(bytes / 2 ** 10).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  process.stderr.write(
    `wrote ${exported.files.reduce((n, f) => n + f.rows, 0)} traces in ${exported.files.length} Parquet files (${size}) ` +
      `and a dataset card to ${outDir}\n`,
  );
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a corpus for other tools: CWM text, prompt/completion pairs, full traces (JSONL) or Parquet with a dataset card')
    .argument('<corpus>', 'corpus folder')
    .option(
      '--format <format>',
      'cwm: {id, split, status, origin, task, text}, the trainer\'s CWM text; prompts: {id, split, task, step, prompt, completion}; ' +
        'jsonl: each trace with full locals; parquet: the Hugging Face layout in --out DIR',
      (v: string): ExportFormat => {
        if (!(FORMATS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected ${FORMATS.join(', ')}, got "${v}"`);
        return v as ExportFormat;
      },
      'cwm',
    )
    .option(
      '--diff [mode]',
      'state encoding of the text, as `execwm train --diff`: none (default: full states), cwm (the default of --diff alone: ' +
        '".." for unchanged values) or changed (only what changed)',
    )
    .option('--operands', 'cwm, prompts, parquet --text: after each line, the current values of the locals it names, as `execwm train --operands` trains on')
    .option('--output-examples', 'cwm: also write each function trace\'s output example (source and call -> return value) as a record with task "output"')
    .option(
      '--tasks <list>',
      `prompts: state (the locals of each call/line frame), output (the return value), the derived tasks ${TRAIN_TASKS.join(', ')} (README, "Task formats"), or all; default state,output`,
      parseTasks,
    )
    .option('--split <split>', 'only traces of train, val or test', parseSplit)
    .option('--ok-only', 'only traces with status ok')
    .option('--limit <n>', 'at most n traces', nonNegativeInt('--limit'))
    .option('-o, --out <path>', 'the file to write instead of stdout; for parquet, the export folder')
    .option('--text', 'parquet: add a text column with the CWM text in the --diff encoding')
    .option('--license <id>', 'parquet: the license the card states (default: mit for synthetic programs, other for imports)')
    .option('--file-mb <n>', 'parquet: start a new file after about n MiB of uncompressed rows (default 512; memory does not depend on it)', positiveInt('--file-mb'))
    .option('--overwrite', 'parquet: replace an earlier export in --out')
    .option('--quiet', 'no progress output')
    .addHelpText(
      'after',
      '\nThe CWM text is the trainer\'s (DESIGN.md "Training sequence"):\n' +
        '  <|trace_context_start|>SOURCE + entry<|frame_sep|><|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|>…<|trace_end|>\n' +
        'A state prompt ends with the frame\'s <|call_sep|> or <|line_sep|>; its completion is the locals and <|action_sep|>.\n' +
        'An output prompt is the source, the call and <|return_sep|>; its completion is the return line and value.\n\n' +
        'Parquet: OUT/data/{train,validation,test}-NNNNN-of-MMMMM.parquet (zstd) with every step\'s full state, and\n' +
        'OUT/README.md, a dataset card for the Hugging Face Hub; reads with pandas, polars, DuckDB and `datasets`.\n\n' +
        'Examples:\n' +
        '  execwm export data/c1 --format cwm --diff changed --output-examples --split train -o train.jsonl\n' +
        '  execwm export data/c1 --format prompts --tasks output --split test -o test-prompts.jsonl\n' +
        '  execwm export data/c1 --format parquet --out hub/c1 --text --diff cwm\n' +
        '  execwm export data/c1 --format jsonl --limit 10',
    )
    .action(async (corpus: string, opts: ExportCliOptions) => {
      checkFlags(opts);
      const diff = diffMode(opts.diff);
      if (opts.format === 'parquet') await exportParquetCli(corpus, opts, diff);
      else await exportJsonl(corpus, opts, diff);
    });
}
