/**
 * The `execwm` command line: one entry (`main`), one exit point (its return value).
 *
 * Each command lives in `src/commands/<name>.ts` and registers itself on the
 * program. Only commands that do something are registered. Registering must stay
 * cheap: a command module imports tfjs, Pyodide or Arrow code inside its action
 * (`await import(...)`), so `--help` and the other commands do not pay to load them.
 */
import { Command, CommanderError } from 'commander';
import { UsageError, UserError } from './errors.js';
import { VERSION } from './version.js';
import { registerDoctor } from './commands/doctor.js';
import { registerDemo } from './commands/demo.js';
import { registerTrace } from './commands/trace.js';
import { registerShow } from './commands/show.js';
import { registerStats } from './commands/stats.js';
import { registerExport } from './commands/export.js';
import { registerCorpus } from './commands/corpus.js';
import { registerTrain } from './commands/train.js';
import { registerEval } from './commands/eval.js';
import { registerDebug } from './commands/debug.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Builds the command tree; exported for tests and `--help` generation. */
export function buildProgram(): Command {
  const program = new Command('execwm')
    .description(
      'Trace Python programs in a sandbox, pack the traces into Arrow corpora, train\n' +
        'transformers that predict variable values, and measure how well they do.',
    )
    .version(VERSION, '-V, --version', 'print the execwm version')
    .option('--verbose', 'print stack traces for internal errors')
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false })
    .addHelpText(
      'after',
      '\nRun `execwm <command> --help` for the options of a command.\n' +
        'Docs: README.md. Exit codes: 0 ok, 1 failure, 2 bad usage.',
    );
  // One line per command, in the order `--help` lists them.
  registerTrace(program);
  registerShow(program);
  registerStats(program);
  registerExport(program);
  registerCorpus(program);
  registerTrain(program);
  registerEval(program);
  registerDebug(program);
  registerDemo(program);
  registerDoctor(program);
  return program;
}

function applyExitOverride(cmd: Command): void {
  cmd.exitOverride();
  // Usage errors are printed by main() as one line plus usage, not by commander.
  cmd.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  for (const sub of cmd.commands) applyExitOverride(sub);
}

function commandFor(program: Command, argv: string[]): Command {
  let cmd = program;
  for (const arg of argv) {
    if (arg.startsWith('-')) continue;
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!sub) break;
    cmd = sub;
  }
  return cmd;
}

/** Runs the CLI with `argv` (without `node` and the script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  applyExitOverride(program);
  const verbose = argv.includes('--verbose');
  try {
    if (argv.length === 0) {
      process.stdout.write(program.helpInformation());
      return EXIT_OK;
    }
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help'
      ) {
        return EXIT_OK;
      }
      const cmd = commandFor(program, argv);
      process.stderr.write(`execwm: ${err.message.replace(/^error: /, '')}\n\n${cmd.helpInformation()}`);
      return EXIT_USAGE;
    }
    if (err instanceof UsageError) {
      const cmd = commandFor(program, argv);
      process.stderr.write(`execwm: ${err.message}\n\n${cmd.helpInformation()}`);
      return EXIT_USAGE;
    }
    if (err instanceof UserError) {
      process.stderr.write(`execwm: ${err.message}\n`);
      return EXIT_FAILURE;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    process.stderr.write(`execwm: internal error: ${e.message}\n`);
    if (verbose) process.stderr.write(`${e.stack ?? ''}\n`);
    else process.stderr.write('(run again with --verbose for the stack trace)\n');
    return EXIT_FAILURE;
  }
}
