/**
 * `execwm corpus merge`, and the small helpers the corpus commands share
 * (`trace`, `show`, `stats`, `export`): the split parser, and turning corpus
 * errors into one-line user errors.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { CorpusError } from '../../corpus/errors.js';
import { SPLITS, type Split } from '../../corpus/splits.js';
import { UserError } from '../errors.js';

/** Runs `fn`, reporting a {@link CorpusError} (a bad corpus or input) as a one-line user error. */
export async function withCorpusErrors<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CorpusError) throw new UserError(err.message);
    throw err;
  }
}

export function parseSplit(value: string): Split {
  if (!(SPLITS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${SPLITS.join(', ')}, got "${value}"`);
  return value as Split;
}

export function registerCorpus(program: Command): void {
  const corpus = program.command('corpus').description('operations on whole corpora (merge)');
  corpus
    .command('merge')
    .description('join corpora built with --shard i/N into one corpus')
    .argument('<out>', 'folder of the merged corpus')
    .argument('<parts...>', 'corpus folders of the parts')
    .option('--overwrite', 'replace an existing corpus at <out>')
    .addHelpText(
      'after',
      '\nThe parts must come from the same `execwm trace` command with different --shard i/N;\n' +
        'shards are copied (verified against their sha256) and renumbered, counts summed,\n' +
        'error tables joined. A trace id found in two parts is an error.\n\n' +
        'Example:\n  execwm corpus merge data/c1 data/c1-part0 data/c1-part1',
    )
    .action(async (out: string, parts: string[], opts: { overwrite?: boolean }) => {
      const { mergeCorpora } = await import('../../corpus/merge.js');
      const manifest = await withCorpusErrors(() => mergeCorpora({ out, parts, overwrite: opts.overwrite }));
      process.stderr.write(`merged ${parts.length} parts into ${out}: ${manifest.counts.total} traces in ${manifest.shards.length} shards\n`);
    });
}
