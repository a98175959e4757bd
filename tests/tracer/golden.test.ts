/**
 * Golden traces: each tests/fixtures/tracer/golden/*.py is traced and compared with the .json
 * beside it. A first line `# entry: f(1)` makes it a function program; otherwise it is a script.
 * Re-bless after an intended change: EXECWM_BLESS=1 npx vitest run tests/tracer/golden.test.ts
 */
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TracerPool } from '../../tracer/index.js';
import type { Program, Trace } from '../../src/schema.js';

const dir = resolve(import.meta.dirname, '..', 'fixtures', 'tracer', 'golden');
const bless = process.env.EXECWM_BLESS === '1';

function loadProgram(file: string): Program {
  const source = readFileSync(join(dir, file), 'utf8');
  const m = /^# entry: (.+)\n/.exec(source);
  return { id: file.replace(/\.py$/, ''), source, entry: m ? (m[1] as string) : null };
}

/** The stored form: the trace without its source (the .py beside it). */
function golden(t: Trace): string {
  const { source: _source, ...rest } = t;
  return `${JSON.stringify(rest, null, 1)}\n`;
}

const files = readdirSync(dir).filter((f) => f.endsWith('.py')).sort();
let pool: TracerPool;
const traces = new Map<string, Trace>();

beforeAll(async () => {
  pool = await TracerPool.create({ workers: 2, limits: { timeoutMs: 8000 } });
  const programs = files.map(loadProgram);
  for await (const t of pool.traceAll(programs)) traces.set(t.id, t);
});

afterAll(async () => {
  await pool?.close();
});

describe('golden traces', () => {
  it('has at least 30 programs', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
  });

  for (const file of files) {
    it(`matches ${file}`, () => {
      const id = file.replace(/\.py$/, '');
      const t = traces.get(id) as Trace;
      const path = join(dir, `${id}.json`);
      if (bless || !existsSync(path)) {
        writeFileSync(path, golden(t));
        if (!bless) throw new Error(`${path} was missing and has been written; check it and re-run`);
        return;
      }
      expect(golden(t)).toBe(readFileSync(path, 'utf8'));
    });
  }

  it('gives byte-identical traces when a program is traced again', async () => {
    const programs = files.map(loadProgram);
    const again = await Promise.all(programs.map((p) => pool.trace(p)));
    for (const t of again) expect(JSON.stringify(t)).toBe(JSON.stringify(traces.get(t.id)));
  });
});
