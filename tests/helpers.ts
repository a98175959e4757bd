import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests live in `<root>/tests`). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The CRUXEval file shipped beside the repository; required when CI=true. */
export const CRUXEVAL_PATH = resolve(REPO_ROOT, '..', 'shared', 'datasets', 'cruxeval.jsonl');

/** Whether the CRUXEval file is present; throws in CI, where it must be. */
export function cruxevalAvailable(): boolean {
  const present = existsSync(CRUXEVAL_PATH);
  if (!present && process.env.CI === 'true') {
    throw new Error(`CRUXEval dataset missing at ${CRUXEVAL_PATH}; CI must provide it`);
  }
  return present;
}

/** Runs the built CLI (`npm run build` first) and returns its exit code and output. */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): SpawnSyncReturns<string> & { status: number } {
  const res = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'execwm.js'), ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: options.env ?? process.env,
    input: options.input,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
  });
  return { ...res, status: res.status ?? -1 };
}

/**
 * Runs the built CLI without blocking the test worker: a long `spawnSync` starves
 * vitest's worker RPC and fails the run with "Timeout calling onTaskUpdate".
 */
export function runCliAsync(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'execwm.js'), ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs ?? 600_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ status: code ?? -1, stdout, stderr }));
  });
}
