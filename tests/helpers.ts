import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests live in `<root>/tests`). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The CRUXEval file shipped beside the repository; required in CI. */
export const CRUXEVAL_PATH = resolve(REPO_ROOT, '..', 'shared', 'datasets', 'cruxeval.jsonl');

/**
 * Whether the tests run in CI. CI services set `CI` to `true`, `1` or `yes`; any value counts
 * except empty, `0`, `false`, `no` and `off`, so a skip can never hide behind a spelling.
 */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.CI ?? '').trim().toLowerCase();
  return value !== '' && !['0', 'false', 'no', 'off'].includes(value);
}

/**
 * Returns `present`; in CI, where a skipped test would pass on nothing, a missing requirement
 * throws instead, so the run fails loudly. Outside CI a skip is announced on stderr.
 */
export function requiredInCi(present: boolean, what: string): boolean {
  if (present) return true;
  if (inCi()) throw new Error(`${what}; CI must provide it`);
  process.stderr.write(`skipping tests that need it: ${what}\n`);
  return false;
}

/** Whether the CRUXEval file is present; throws in CI, where it must be. */
export function cruxevalAvailable(): boolean {
  return requiredInCi(existsSync(CRUXEVAL_PATH), `CRUXEval dataset missing at ${CRUXEVAL_PATH}`);
}

/**
 * The native CPython 3.11 used as the reference of differential tests, or null when there is
 * none (CI throws). It must be 3.11: from 3.12 on, CPython traces with the same sys.monitoring
 * path as the tracer under test, so a newer reference would agree with our own mistakes.
 */
export function python311(): string | null {
  const found: string[] = [];
  for (const exe of ['python3.11', 'python3']) {
    const res = spawnSync(exe, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
    if (res.status !== 0) continue;
    const version = res.stdout.trim();
    if (version === '3.11') return exe;
    found.push(`${exe} is ${version}`);
  }
  requiredInCi(false, `native CPython 3.11 not found (${found.length > 0 ? found.join(', ') : 'no python3 on PATH'})`);
  return null;
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
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'execwm.js'), ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? process.env,
      stdio: 'pipe',
      timeout: options.timeoutMs ?? 600_000,
    });
    // Standard input is the given text, or closed at once.
    child.stdin.end(options.input ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ status: code ?? -1, stdout, stderr }));
  });
}
