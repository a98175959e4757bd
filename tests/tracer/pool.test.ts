import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectIsolation, TracerPool, traceProgram } from '../../tracer/index.js';
import type { Trace } from '../../src/schema.js';

let pool: TracerPool;

beforeAll(async () => {
  // 7 s: the queued-clock test below needs a limit between one 4 s program and two of them.
  pool = await TracerPool.create({ workers: 2, limits: { timeoutMs: 7000 } });
});

afterAll(async () => {
  await pool?.close();
});

function reprs(t: Trace): string[] {
  return t.steps.map((s) => `${s.event} ${s.line} ${s.func} ${s.depth} ${JSON.stringify(Object.fromEntries(Object.entries(s.locals ?? {}).map(([k, v]) => [k, v.repr])))} ${s.arg?.repr ?? ''}`);
}

describe('TracerPool', () => {
  it('reports Python and Pyodide versions', () => {
    expect(pool.pythonVersion).toMatch(/^3\.1[4-9]\./);
    expect(pool.pyodideVersion).toBe('314.0.7');
  });

  it('traces a function program step by step as the schema example shows', async () => {
    const t = await pool.trace({ id: 'ex', source: 'def f(x):\n    y = x + 1\n    return y\n', entry: 'f(3)' });
    expect(t.status).toBe('ok');
    expect(t.result).toEqual({ repr: '4', type: 'int' });
    expect(reprs(t)).toEqual([
      'call 1 f 0 {"x":"3"} ',
      'line 2 f 0 {"x":"3"} ',
      'line 3 f 0 {"x":"3","y":"4"} ',
      'return 3 f 0 {} 4',
    ]);
  });

  it('traces a script as <module> with stdout attributed to the next step', async () => {
    const t = await pool.trace({ id: 's', source: 'a = [1]\nprint("hi")\nb = a\n', entry: null });
    expect(t.status).toBe('ok');
    expect(t.stdout).toBe('hi\n');
    expect(t.steps.map((s) => s.func)).toContain('<module>');
    const last = t.steps.filter((s) => s.event === 'line').at(-1);
    expect(last?.stdout).toBe('hi\n');
    const end = t.steps.at(-1);
    expect(end?.event).toBe('return');
  });

  it('gives aliases the same object id and copies a new one', async () => {
    const t = await pool.trace({ id: 'alias', source: 'def f():\n    a = [1]\n    b = a\n    c = list(a)\n    return 0\n', entry: 'f()' });
    const loc = t.steps.filter((s) => s.event === 'line').at(-1)?.locals ?? {};
    expect(loc.a?.id).toBeDefined();
    expect(loc.b?.id).toBe(loc.a?.id);
    expect(loc.c?.id).not.toBe(loc.a?.id);
  });

  it('reports uncaught exceptions, syntax errors and the step limit as statuses', async () => {
    const [exc, syn, loop] = await Promise.all([
      pool.trace({ id: 'e', source: 'def f():\n    return 1 / 0\n', entry: 'f()' }),
      pool.trace({ id: 'y', source: 'def f(:\n', entry: 'f()' }),
      pool.trace({ id: 'l', source: 'def f():\n    while True:\n        try:\n            pass\n        except BaseException:\n            pass\n', entry: 'f()' }),
    ]);
    expect(exc.status).toBe('exception');
    expect(exc.message).toBe('ZeroDivisionError: division by zero');
    expect(syn.status).toBe('syntax_error');
    expect(loop.status).toBe('step_limit');
    expect(loop.steps).toHaveLength(10_000);
  });

  it('kills a program stuck in C code at the wall-clock limit and keeps tracing afterwards', async () => {
    const t = await pool.trace({ id: 'c', source: 'def f():\n    return sum(range(10**12))\n', entry: 'f()' });
    expect(t.status).toBe('timeout');
    const after = await pool.trace({ id: 'ok', source: 'def f():\n    return 2\n', entry: 'f()' });
    expect(after.status).toBe('ok');
    expect(after.result?.repr).toBe('2');
  });

  it('sends programs queued behind a killed or recycled sandbox to a fresh one instead of failing them', async () => {
    // Two programs in flight per sandbox: each normal program waits behind a stuck or memory-hungry one.
    const normal = (i: number) => ({ id: `n${i}`, source: `def f():\n    return ${i}\n`, entry: 'f()' });
    const [stuck, mem, ...rest] = await Promise.all([
      pool.trace({ id: 'stuck', source: 'def f():\n    return sum(range(10**12))\n', entry: 'f()' }),
      pool.trace({ id: 'mem', source: 'x = [0] * 10**9\n', entry: null }),
      ...[0, 1, 2, 3].map((i) => pool.trace(normal(i))),
    ]);
    expect(stuck?.status).toBe('timeout');
    expect(mem?.status).toBe('memory_limit');
    expect(rest.map((t) => `${t.id} ${t.status} ${t.result?.repr}`)).toEqual(['n0 ok 0', 'n1 ok 1', 'n2 ok 2', 'n3 ok 3']);
  });

  it('starts the wall clock of a queued program when the sandbox begins it, not when it is sent', async () => {
    // Each sandbox holds two programs in flight: the second is sent at once and waits behind the
    // first. Each sleeps 4 s under the 7 s limit: 3 s of slack for a loaded machine, while a clock
    // started at sending would reach 8 s for each second one (load only makes that later).
    const sleeper = (i: number) => ({ id: `z${i}`, source: 'import time\ndef f():\n    time.sleep(4)\n    return 1\n', entry: 'f()' });
    const started = performance.now();
    const traces = await Promise.all([0, 1, 2, 3].map((i) => pool.trace(sleeper(i))));
    expect(traces.map((t) => `${t.status} ${t.message ?? ''}`)).toEqual(['ok ', 'ok ', 'ok ', 'ok ']);
    // Four 4 s programs on two sandboxes: some really ran behind another.
    expect(performance.now() - started).toBeGreaterThanOrEqual(8000);
  }, 120_000);

  it('gives a program that reads fd 0 end of file, never the next program waiting on the sandbox stdin', async () => {
    const reader = { id: 'r', source: 'import os\nprint(os.read(0, 1), open("/dev/stdin").read())\n', entry: null };
    const traces = await Promise.all([reader, ...[1, 2, 3].map((i) => ({ id: `q${i}`, source: `def f():\n    return ${i}\n`, entry: 'f()' }))].map((p) => pool.trace(p)));
    expect(traces.map((t) => `${t.id} ${t.status} ${t.result?.repr ?? t.stdout}`)).toEqual(["r ok b'' \n", 'q1 ok 1', 'q2 ok 2', 'q3 ok 3']);
  });

  it('receives requests longer than one read of its stdin, multi-byte text split anywhere, between short ones', async () => {
    // 150,000 two-byte characters: each request spans several 64 KiB reads by the sandbox.
    const big = `def f():\n    s = "${'é'.repeat(150_000)}"\n    return len(s)\n`;
    const programs = [big, 'def f():\n    return 7\n', big].map((source, i) => ({ id: `big${i}`, source, entry: 'f()' }));
    const traces = await Promise.all(programs.map((p) => pool.trace(p)));
    expect(traces.map((t) => `${t.id} ${t.status} ${t.result?.repr}`)).toEqual(['big0 ok 150000', 'big1 ok 7', 'big2 ok 150000']);
  });

  it('shows every in-place change of a container, also when its encoding is reused between steps', async () => {
    const source = [
      'def f():',
      '    a = [1, 2, 3]',
      '    a[0] = 1.0',
      '    a[0] = True',
      '    a.append([0])',
      '    a[3].append(1)',
      '    d = {"x": 1}',
      '    d["x"] = 2',
      '    d["y"] = d.pop("x")',
      '    s = {"p"}',
      '    s.add("q")',
      '    big = list(range(100))',
      '    big[0] = -1',
      '    del big[3:]',
      '    t = (1, [2])',
      '    t[1].append(3)',
      '    return 0',
    ].join('\n');
    const t = await pool.trace({ id: 'inplace', source, entry: 'f()' });
    const seen = (name: string) => {
      const out: string[] = [];
      for (const s of t.steps) {
        const r = s.locals?.[name]?.repr.slice(0, 20);
        if (r !== undefined && r !== out.at(-1)) out.push(r);
      }
      return out;
    };
    expect(t.status).toBe('ok');
    expect(seen('a')).toEqual(['[1, 2, 3]', '[1.0, 2, 3]', '[True, 2, 3]', '[True, 2, 3, [0]]', '[True, 2, 3, [0, 1]]']);
    expect(seen('d')).toEqual(["{'x': 1}", "{'x': 2}", "{'y': 2}"]);
    expect(seen('s')).toEqual(["{'p'}", "{'q', 'p'}"]);
    expect(seen('big')).toEqual(['[0, 1, 2, 3, 4, 5, 6', '[-1, 1, 2, 3, 4, 5, ', '[-1, 1, 2]']);
    expect(seen('t')).toEqual(['(1, [2])', '(1, [2, 3])']);
  });

  it('delivers non-ASCII text intact, lone surrogates in stdout as U+FFFD, and accepts an id holding one', async () => {
    const source = 'def f():\n    s = "\\ud800x\\U0001F600\\\\ud800\u2026\\udc00"\n    print(s, "\u00e9")\n    return s\n';
    // The id holds a lone surrogate too: the trace still counts as this program's.
    const t = await pool.trace({ id: 'text\ud800', source, entry: 'f()' });
    expect(t.id).toBe('text\ud800');
    expect(t.status).toBe('ok');
    expect(t.stdout).toBe('\ufffdx\u{1F600}\\ud800\u2026\ufffd \u00e9\n');
    expect(t.result?.repr).toBe("'\\ud800x\u{1F600}\\\\ud800\u2026\\udc00'");
  });

  it('yields traceAll results in input order', async () => {
    const programs = Array.from({ length: 12 }, (_, i) => ({ id: `p${i}`, source: `def f():\n    return ${i}\n`, entry: 'f()' }));
    const seen: string[] = [];
    for await (const t of pool.traceAll(programs)) seen.push(`${t.id}=${t.result?.repr}`);
    expect(seen).toEqual(programs.map((p, i) => `${p.id}=${i}`));
  });

  it('never runs user __repr__, __eq__ or properties while encoding, and survives one that loops forever', async () => {
    const source = [
      'log = []',
      'class Loud:',
      '    def __repr__(self):',
      '        log.append(1)',
      "        print('side effect')",
      "        return 'Loud()'",
      '    def __eq__(self, other):',
      '        log.append(2)',
      '        return True',
      '    __hash__ = object.__hash__',
      'class Forever:',
      '    def __repr__(self):',
      '        while True:',
      '            pass',
      'class Raises:',
      '    @property',
      '    def value(self):',
      "        raise RuntimeError('no')",
      '    def __repr__(self):',
      "        raise RuntimeError('no repr')",
      'def f():',
      '    a, b, c = Loud(), Forever(), Raises()',
      '    d = {a: [a, b, c]}',
      '    return len(log)',
    ].join('\n');
    const t = await pool.trace({ id: 'repr', source, entry: 'f()' });
    expect(t.status).toBe('ok');
    expect(t.result?.repr).toBe('0');
    expect(t.stdout).toBe('');
    const last = t.steps.filter((s) => s.event === 'line').at(-1);
    expect(last?.locals?.d?.repr).toBe('{Loud(): [Loud(), Forever(), Raises()]}');
  });

  it('reports every isolation layer and applies each available one', async () => {
    const layers = await detectIsolation();
    expect(layers.map((l) => l.name)).toEqual([
      'permission-model',
      'network-namespace',
      'unprivileged-user',
      'empty-environment',
      'wasm-memory-cap',
      'step-budget',
    ]);
    expect(pool.isolation).toEqual(layers);
    for (const l of layers) {
      expect(l.detail.length).toBeGreaterThan(0);
      expect(l.active).toBe(l.available);
    }
    // As root on Linux (this project's machines) every layer is available.
    if (process.getuid?.() === 0) expect(layers.every((l) => l.available)).toBe(true);
  });

  it('rejects invalid limits with a clear message', async () => {
    await expect(traceProgram({ id: 'x', source: '', entry: null }, { limits: { maxSteps: -1 } })).rejects.toThrow(
      'Expected `maxSteps` to be a positive integer, got -1',
    );
  });
});
