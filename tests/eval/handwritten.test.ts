/**
 * The hand-written evaluation set (eval/data/handwritten.jsonl): well-formed for the
 * `--cruxeval` reader, without duplicates, short, and every function returns in the
 * sandbox exactly the `output` that CPython 3.11 gave when the set was written.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cruxevalProgram, readCruxeval, type CruxevalProblem } from '../../eval/run.js';
import { TracerPool } from '../../tracer/index.js';
import type { Trace } from '../../src/schema.js';
import { REPO_ROOT } from '../helpers.js';

const SET_PATH = resolve(REPO_ROOT, 'eval', 'data', 'handwritten.jsonl');

const rawLines = readFileSync(SET_PATH, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '');
const problems: CruxevalProblem[] = readCruxeval(SET_PATH);

let pool: TracerPool;
const traces = new Map<string, Trace>();

beforeAll(async () => {
  pool = await TracerPool.create({ workers: 1 });
  for await (const t of pool.traceAll(problems.map(cruxevalProgram))) traces.set(t.id, t);
});

afterAll(async () => {
  await pool?.close();
});

describe('hand-written evaluation set', () => {
  it('holds at least 60 records, each with string id, code, input and output', () => {
    expect(problems.length).toBeGreaterThanOrEqual(60);
    expect(problems).toHaveLength(rawLines.length);
    for (const line of rawLines) {
      const row = JSON.parse(line) as Record<string, unknown>;
      expect(Object.keys(row).sort()).toEqual(['code', 'id', 'input', 'output']);
      for (const key of ['id', 'code', 'input', 'output']) expect(typeof row[key], `${String(row.id)}.${key}`).toBe('string');
    }
  });

  it('has no repeated id and no repeated function', () => {
    expect(new Set(problems.map((p) => p.id)).size).toBe(problems.length);
    expect(new Set(problems.map((p) => p.code.trim())).size).toBe(problems.length);
  });

  it('keeps every function short, named f, free of imports and printing', () => {
    for (const p of problems) {
      const lines = p.code.split('\n').length;
      expect(lines, p.id).toBeGreaterThanOrEqual(4);
      expect(lines, p.id).toBeLessThanOrEqual(14);
      expect(p.code, p.id).toMatch(/^def f\(/m);
      expect(p.code, p.id).not.toMatch(/\bimport\b|\bprint\(/);
    }
  });

  it('traces every function ok, in at most 60 steps, returning exactly the recorded output', () => {
    expect(traces.size).toBe(problems.length);
    const wrong: string[] = [];
    for (const p of problems) {
      const t = traces.get(p.id)!;
      // Outputs are CPython reprs, so the sandbox's repr must match them character for character.
      if (t.status !== 'ok' || t.result?.repr !== p.output || t.steps.length > 60) {
        wrong.push(`${p.id}: status ${t.status}, ${t.steps.length} steps, got ${t.result?.repr ?? 'null'}, expected ${p.output}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
