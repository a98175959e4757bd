/**
 * Real code: the 800 CRUXEval programs traced as `f(<input>)`.
 * - Conformance: the traced return value equals the expected output under Python `==` for
 *   at least 99.5% of programs; every mismatch is printed with its cause.
 * - Differential: the same tracer file run by native CPython 3.11 (sys.settrace) gives the same
 *   return values, stdout and line-event states, except for the differences documented in
 *   tracer/README.md (inlined comprehensions since 3.12, set iteration order on 32-bit wasm,
 *   line attribution inside multi-line generator expressions, key order of 3.11's f_locals).
 * Native python3 is only a reference here; it is never used at runtime.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TracerPool } from '../../tracer/index.js';
import { DEFAULT_LIMITS, type Program, type Trace } from '../../src/schema.js';
import { CRUXEVAL_PATH as datasetPath, REPO_ROOT as repoRoot, cruxevalAvailable, python311 } from '../helpers.js';

// In CI both are required: a missing dataset or a missing (or other) CPython fails the run.
const hasDataset = cruxevalAvailable();
const python = python311();

interface Row {
  id: string;
  code: string;
  input: string;
  output: string;
}

/** Long outputs must not be cut for the comparison. */
const limits = { ...DEFAULT_LIMITS, maxValueChars: 20_000, timeoutMs: 20_000 };

const rows: Row[] = hasDataset
  ? readFileSync(datasetPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Row)
  : [];
const programs: Program[] = rows.map((r) => ({ id: r.id, source: r.code, entry: `f(${r.input})` }));

/** Runs a Python helper over JSON lines and returns its JSON-line answers. */
function runPython(args: string[], lines: string[], env: Record<string, string> = {}): Promise<string[]> {
  return new Promise((res, rej) => {
    const proc = spawn(python as string, args, { env: { ...process.env, PYTHONHASHSEED: '0', ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => (out += c));
    proc.on('error', rej);
    proc.on('close', (code) => (code === 0 ? res(out.split('\n').filter((l) => l.trim())) : rej(new Error(`python3 exited ${code}`))));
    proc.stdin.end(lines.map((l) => `${l}\n`).join(''));
  });
}

// Python `==` between the traced repr and the expected literal; the cause when they differ.
const EQUALITY = `
import sys, json, ast
from collections import OrderedDict, Counter, defaultdict, deque
env = {'inf': float('inf'), 'nan': float('nan'), 'OrderedDict': OrderedDict, 'Counter': Counter, 'deque': deque}
for line in sys.stdin:
    got, want = json.loads(line)
    try:
        expected = ast.literal_eval(want)
    except Exception as e:
        print(json.dumps([False, 'expected output is not a literal: %s' % e])); continue
    if got is None:
        print(json.dumps([False, 'no result'])); continue
    try:
        value = eval(got, dict(env))
    except Exception as e:
        print(json.dumps([False, 'traced repr does not evaluate: %s' % type(e).__name__])); continue
    print(json.dumps([value == expected, '' if value == expected else 'values differ']))
`;

// Whether a program's line states may differ between CPython 3.11 and 3.14 by design.
const CLASSIFY = `
import sys, json, ast
for line in sys.stdin:
    src = json.loads(line)
    try:
        tree = ast.parse(src)
    except SyntaxError:
        print(json.dumps('syntax')); continue
    kinds = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp)):
            kinds.add('comprehension')
        if isinstance(node, (ast.Set, ast.SetComp)) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ('set', 'frozenset')):
            kinds.add('set')
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ('hash', 'id'):
            kinds.add('set')
        if isinstance(node, ast.GeneratorExp) and node.end_lineno != node.lineno:
            kinds.add('multiline-genexpr')
    print(json.dumps(sorted(kinds)))
`;

/**
 * CPython 3.11 keeps one f_locals dict per frame, so a name first bound late (a generator's loop
 * variable after its closure variable) keeps its first-seen position; 3.13+ lists locals in
 * declaration order. Key order is therefore compared loosely; values are compared exactly.
 */
function sortedLocals(s: Trace['steps'][number]): unknown {
  return { ...s, locals: s.locals && Object.fromEntries(Object.entries(s.locals).sort(([x], [y]) => (x < y ? -1 : 1))) };
}

let pool: TracerPool;
const traces = new Map<string, Trace>();

beforeAll(async () => {
  if (!hasDataset || !python) return;
  pool = await TracerPool.create({ workers: 2, limits });
  for await (const t of pool.traceAll(programs)) traces.set(t.id, t);
}, 600_000);

afterAll(async () => {
  await pool?.close();
});

describe.skipIf(!hasDataset || !python)('CRUXEval programs', () => {
  it('returns the expected output for at least 99.5% of the 800 programs', async () => {
    expect(traces.size).toBe(rows.length);
    const answers = await runPython(['-c', EQUALITY], rows.map((r) => JSON.stringify([traces.get(r.id)?.result?.repr ?? null, r.output])));
    const mismatches: string[] = [];
    answers.forEach((a, i) => {
      const [ok, cause] = JSON.parse(a) as [boolean, string];
      const row = rows[i] as Row;
      const t = traces.get(row.id) as Trace;
      if (!ok) {
        mismatches.push(`${row.id}: ${cause}; status ${t.status}${t.message ? ` (${t.message})` : ''}; got ${t.result?.repr.slice(0, 120) ?? 'null'}, expected ${row.output.slice(0, 120)}`);
      }
    });
    if (mismatches.length > 0) console.log(`CRUXEval mismatches (${mismatches.length}):\n  ${mismatches.join('\n  ')}`);
    expect(answers.length).toBe(rows.length);
    expect(1 - mismatches.length / rows.length).toBeGreaterThanOrEqual(0.995);
  });

  it('matches native CPython 3.11 on return values, stdout and line states', async () => {
    const native = (await runPython([resolve(repoRoot, 'tracer', 'tracer.py')], programs.map((p) => JSON.stringify({ ...p, limits })))).map(
      (l) => JSON.parse(l) as Trace,
    );
    const kinds = (await runPython(['-c', CLASSIFY], programs.map((p) => JSON.stringify(p.source)))).map((l) => JSON.parse(l) as string[] | string);
    // Results compared with Python == as well, so that sets printed in another order still match.
    const setEqual = await runPython(
      ['-c', EQUALITY],
      native.map((n) => JSON.stringify([traces.get(n.id)?.result?.repr ?? null, n.result?.repr ?? 'None'])),
    );
    // Programs whose line states may differ by design get their result and stdout compared only.
    let strict = 0;
    const problems: string[] = [];
    native.forEach((n, i) => {
      const t = traces.get(n.id) as Trace;
      const k = kinds[i] as string[];
      if (t.status !== n.status) {
        problems.push(`${n.id}: status ${t.status} vs native ${n.status} (${t.message ?? ''} / ${n.message ?? ''})`);
        return;
      }
      if (t.stdout !== n.stdout && !k.includes('set')) problems.push(`${n.id}: stdout differs`);
      const sameResult = t.result?.repr === n.result?.repr || JSON.parse(setEqual[i] as string)[0] === true;
      if (!sameResult && !k.includes('set')) problems.push(`${n.id}: result ${t.result?.repr} vs native ${n.result?.repr}`);
      if (k.length > 0) return;
      strict += 1;
      const a = JSON.stringify(t.steps.map(sortedLocals));
      const b = JSON.stringify(n.steps.map(sortedLocals));
      if (a !== b) {
        const at = t.steps.findIndex((s, j) => JSON.stringify(sortedLocals(s)) !== JSON.stringify(n.steps[j] && sortedLocals(n.steps[j])));
        problems.push(`${n.id}: steps differ at ${at}: ${JSON.stringify(t.steps[at]).slice(0, 200)} vs native ${JSON.stringify(n.steps[at]).slice(0, 200)}`);
      }
    });
    console.log(`differential: ${strict} programs compared step by step, ${native.length - strict} by result and stdout`);
    if (problems.length > 0) console.log(`differences from native CPython (${problems.length}):\n  ${problems.join('\n  ')}`);
    expect(strict).toBeGreaterThanOrEqual(100);
    expect(problems).toEqual([]);
  });
});
