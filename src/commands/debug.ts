/**
 * `execwm debug --model RUN FILE.py --entry 'f(3)'`: a pdb-style session on stdin and
 * stdout in which the model predicts where each command stops and what the locals
 * hold, beside the truth traced in the sandbox (eval/debug.ts), mistakes marked.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { EvalError } from '../../eval/errors.js';
import { TrainingError } from '../../training/errors.js';
import type { BackendName } from '../../training/backend.js';
import { UsageError, UserError } from '../errors.js';

interface DebugFlags {
  model: string;
  entry?: string;
  backend: string;
}

async function runDebug(file: string, flags: DebugFlags): Promise<void> {
  if (!existsSync(file)) throw new UserError(`no such file: ${file}`);
  const source = readFileSync(file, 'utf8');
  const { BACKEND_NAMES } = await import('../../training/backend.js');
  if (!BACKEND_NAMES.includes(flags.backend as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got ${flags.backend}`);
  }
  const { TracerPool } = await import('../../tracer/index.js');
  const { loadModel, stateEncoding } = await import('../../eval/run.js');
  const { DebugSession, DEBUG_HELP } = await import('../../eval/debug.js');
  const pool = await TracerPool.create({ workers: 1 });
  let trace;
  try {
    for await (const t of pool.traceAll([{ id: file, source, entry: flags.entry ?? null }])) trace = t;
  } finally {
    await pool.close();
  }
  if (trace === undefined) throw new UserError(`tracing ${file} gave no trace`);
  let loaded;
  try {
    loaded = await loadModel(flags.model, flags.backend as BackendName);
  } catch (err) {
    if (err instanceof EvalError || err instanceof TrainingError) throw new UserError(err.message);
    throw err;
  }
  const { ckpt } = loaded;
  const interactive = process.stdin.isTTY === true;
  const write = (s: string) => process.stdout.write(s);
  try {
    write(`execwm debug: ${file}${flags.entry ? ` called as ${flags.entry}` : ''}, ${trace.steps.length} frames (status ${trace.status}); model ${flags.model}\n`);
    write(`${DEBUG_HELP}\n`);
    const session = new DebugSession(trace, ckpt, stateEncoding(ckpt));
    write(session.start());
    const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
    const promptText = '(execwm) ';
    if (interactive) rl.setPrompt(promptText);
    rl.prompt();
    for await (const line of rl) {
      // Piped commands are echoed so a transcript reads like a session.
      if (!interactive) write(`${promptText}${line}\n`);
      const { text, done } = session.run(line);
      write(text);
      if (done) break;
      rl.prompt();
    }
    rl.close();
  } finally {
    ckpt.model.dispose();
  }
}

export function registerDebug(program: Command): void {
  program
    .command('debug')
    .description('step through a Python program while a model predicts each stop and its locals, beside the truth from the sandbox')
    .argument('<file>', 'Python source file')
    .requiredOption('--model <dir>', 'run or checkpoint folder written by `execwm train`')
    .option('--entry <call>', "entry call such as 'f(3)' (default: run the file as a script)")
    .option('--backend <name>', 'tfjs backend (auto, node-gpu, node, wasm, cpu)', 'auto')
    .addHelpText(
      'after',
      `
Commands (one per line on stdin): step (s), next (n), out (o), until L, break L (b),
continue (c), back, print V (p), where (w), quit (q). The session follows the real
execution; after each command the model is asked the same debugger question from the
true frames so far (README, "Task formats"), and its stop line and locals are shown
beside the truth, mistakes marked with ✗.

Example:
  execwm debug --model runs/r1 prog.py --entry 'f(3)'`,
    )
    .action(async (file: string, flags: DebugFlags) => runDebug(file, flags));
}
