/**
 * `execwm export <corpus>`: traces as JSONL for other tools — CWM-format trace
 * text for fine-tuning large models elsewhere, or plain traces with full locals.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { InvalidArgumentError, type Command } from 'commander';
import { traceToCwmText } from '../../corpus/cwm.js';
import type { CorpusTrace, Split } from '../../corpus/index.js';
import { UserError } from '../errors.js';
import { nonNegativeInt } from '../flags.js';
import { parseSplit, withCorpusErrors } from './corpus.js';

export type ExportFormat = 'cwm' | 'jsonl';
const FORMATS: readonly ExportFormat[] = ['cwm', 'jsonl'];

/** One output line for a trace. */
export function exportLine(trace: CorpusTrace, format: ExportFormat, diff: boolean): string {
  if (format === 'jsonl') return JSON.stringify(trace);
  return JSON.stringify({
    id: trace.id,
    split: trace.split,
    status: trace.status,
    origin: trace.origin,
    text: traceToCwmText(trace, { diff }),
  });
}

interface ExportCliOptions {
  format: ExportFormat;
  diff?: boolean;
  split?: Split;
  limit?: number;
  out?: string;
  okOnly?: boolean;
}

async function write(stream: NodeJS.WritableStream | WriteStream, text: string): Promise<void> {
  // A write error is recorded by the stream's 'error' listener; here it only ends the wait.
  if (!stream.write(text)) await once(stream, 'drain').catch(() => undefined);
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a corpus as JSONL: CWM-format trace text (--format cwm) or full traces (--format jsonl)')
    .argument('<corpus>', 'corpus folder')
    .option(
      '--format <format>',
      'cwm: {id, split, status, origin, text} with the CWM special tokens; jsonl: each trace with full locals',
      (v: string): ExportFormat => {
        if (!(FORMATS as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected cwm or jsonl, got "${v}"`);
        return v as ExportFormat;
      },
      'cwm',
    )
    .option('--diff', 'cwm: write ".." for values unchanged since the previous frame of the same call')
    .option('--split <split>', 'only traces of train, val or test', parseSplit)
    .option('--ok-only', 'only traces with status ok')
    .option('--limit <n>', 'at most n traces', nonNegativeInt('--limit'))
    .option('-o, --out <file>', 'write to this file instead of stdout')
    .addHelpText(
      'after',
      '\nThe cwm text follows DESIGN.md "Training sequence":\n' +
        '  <|trace_context_start|>SOURCE + entry<|frame_sep|><|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|>…\n\n' +
        'Examples:\n  execwm export data/c1 --format cwm --split train -o train.jsonl\n  execwm export data/c1 --format jsonl --limit 10',
    )
    .action(async (corpus: string, opts: ExportCliOptions) => {
      const out = opts.out ? createWriteStream(opts.out) : process.stdout;
      // A reader that stops early (`| head`) closes the pipe: stop quietly.
      let failure: NodeJS.ErrnoException | null = null;
      out.on('error', (err: NodeJS.ErrnoException) => (failure = err));
      let n = 0;
      await withCorpusErrors(async () => {
        const { readCorpus } = await import('../../corpus/reader.js');
        const traces = readCorpus(corpus, { split: opts.split, limit: opts.limit, statuses: opts.okOnly ? ['ok'] : undefined });
        for await (const trace of traces) {
          if (failure !== null) break;
          await write(out, `${exportLine(trace, opts.format, opts.diff ?? false)}\n`);
          n += 1;
        }
      });
      const err = failure as NodeJS.ErrnoException | null;
      if (err !== null && err.code !== 'EPIPE') throw new UserError(`cannot write ${opts.out ?? 'stdout'}: ${err.message}`);
      if (out !== process.stdout) {
        (out as WriteStream).end();
        await once(out as WriteStream, 'finish');
        process.stderr.write(`wrote ${n} traces to ${opts.out}\n`);
      }
    });
}
