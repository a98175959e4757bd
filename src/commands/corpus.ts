/**
 * `execwm corpus verify` and `execwm corpus merge`, and the small helpers the corpus commands share
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

const partitionList = (ps: { index: number; count: number }[]): string => ps.map((p) => `${p.index}/${p.count}`).join(', ');

export function registerCorpus(program: Command): void {
  const corpus = program.command('corpus').description('operations on whole corpora (verify, merge)');
  corpus
    .command('verify')
    .description('check a corpus end to end: shard hashes, row counts, shard numbering, decodable steps, manifest counts')
    .argument('<dir>', 'corpus folder (a finished corpus, or an interrupted run with its run.json)')
    .addHelpText(
      'after',
      '\nA finished corpus is checked against manifest.json; an interrupted run against run.json,\n' +
        'which records the sha256 of each shard as it completed. Every row is decoded. Each\n' +
        'problem is printed on its own line; the exit code is 0 only for a complete corpus\n' +
        'with none. `execwm trace --resume` runs the same check first and traces again the\n' +
        'inputs of any shard that fails it.\n\n' +
        'Example:\n  execwm corpus verify data/c1',
    )
    .action(async (dir: string) => {
      const { checkCorpus } = await import('../../corpus/verify.js');
      const check = await withCorpusErrors(() => checkCorpus(dir));
      const rows = check.shards.reduce((a, s) => a + s.entry.rows, 0);
      for (const p of check.problems) process.stderr.write(`${dir}: ${p}\n`);
      const what = `${check.shards.length} shards, ${rows} traces`;
      if (check.problems.length > 0) {
        const n = check.problems.length;
        throw new UserError(`corpus ${dir} fails verification: ${n} problem${n > 1 ? 's' : ''} (listed above) in ${what}`);
      }
      if (check.state === 'interrupted') {
        throw new UserError(`${dir} is an unfinished run: its ${what} check out; finish it with \`execwm trace ... --resume\``);
      }
      const missing = 'missingPartitions' in check.record ? check.record.missingPartitions : undefined;
      if (missing !== undefined) process.stderr.write(`${dir}: a partial merge, without partitions ${partitionList(missing)}\n`);
      process.stderr.write(`${dir}: ${what} verified (hashes, row counts, numbering, every step decoded, manifest counts)\n`);
    });
  corpus
    .command('merge')
    .description('join corpora built with --shard i/N into one corpus')
    .argument('<out>', 'folder of the merged corpus')
    .argument('<parts...>', 'corpus folders of the parts')
    .option('--allow-partial', 'merge even when some of the N partitions are missing (the manifest lists them)')
    .option('--overwrite', 'replace an existing corpus at <out>')
    .addHelpText(
      'after',
      '\nThe parts must come from the same `execwm trace` command with different --shard i/N,\n' +
        'and all N partitions must be given: a missing one is an error unless --allow-partial,\n' +
        'which records the missing partitions in the manifest (missingPartitions) and prints\n' +
        'them. Shards are copied (verified against their sha256 and row count) and renumbered,\n' +
        'counts summed, error tables joined. A trace id found in two parts is an error.\n\n' +
        'Example:\n  execwm corpus merge data/c1 data/c1-part0 data/c1-part1',
    )
    .action(async (out: string, parts: string[], opts: { overwrite?: boolean; allowPartial?: boolean }) => {
      const { mergeCorpora } = await import('../../corpus/merge.js');
      const manifest = await withCorpusErrors(() =>
        mergeCorpora({ out, parts, overwrite: opts.overwrite, allowPartial: opts.allowPartial }),
      );
      process.stderr.write(`merged ${parts.length} parts into ${out}: ${manifest.counts.total} traces in ${manifest.shards.length} shards\n`);
      if (manifest.missingPartitions !== undefined) {
        process.stderr.write(
          `${out} is partial (--allow-partial): partitions ${partitionList(manifest.missingPartitions)} are missing and their inputs are not in it\n`,
        );
      }
    });
}
