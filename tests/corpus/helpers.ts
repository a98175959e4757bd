/** Shared setup for corpus tests: temp folders, a complete corpus config, the CLI run in-process. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, vi } from 'vitest';
import { CORPUS_FORMAT_VERSION, type CorpusConfig } from '../../corpus/manifest.js';
import { DEFAULT_SPLIT_RATIOS } from '../../corpus/splits.js';
import { main } from '../../src/cli.js';
import { DEFAULT_LIMITS, SCHEMA_VERSION } from '../../src/schema.js';

const made: string[] = [];

/** A fresh temp folder, removed after the test. */
export function tempDir(prefix = 'execwm-corpus-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function testConfig(overrides: Partial<CorpusConfig> = {}): CorpusConfig {
  return {
    formatVersion: CORPUS_FORMAT_VERSION,
    schemaVersion: SCHEMA_VERSION,
    execwmVersion: '0.0.0-test',
    pyodideVersion: 'none',
    pythonVersion: 'none',
    source: { kind: 'traces' },
    seeds: {},
    mutate: 0,
    limits: DEFAULT_LIMITS,
    splitRatios: DEFAULT_SPLIT_RATIOS,
    partition: null,
    inputsPerShard: 4,
    ...overrides,
  };
}

/** Runs the CLI in-process and returns its exit code, stdout and stderr. */
export async function runInProcess(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}
