/**
 * Programs are isolated from each other: a trace is a function of the program alone, never of
 * what ran before it in the same sandbox, of the worker count or of the input order.
 *
 * - Poison → probe: each poison program changes some process-wide state and then runs the probe
 *   itself, which shows that the change matters (its result differs from the probe's in a fresh
 *   sandbox); the probe traced next, in the same one-worker pool, must give the trace it gives in
 *   a fresh sandbox.
 * - Order and workers: a mixed corpus (synthetic programs, a slice of CRUXEval, poisoners and
 *   probes) traced with 1 worker, with 2 workers and in a shuffled order gives, for every program,
 *   byte-identical traces.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TracerPool } from '../../tracer/index.js';
import { generatePrograms } from '../../corpus/synthetic.js';
import type { Program, Trace } from '../../src/schema.js';

interface Pair {
  name: string;
  /** A script that changes process-wide state. */
  poison: string;
  /** Defines `f()`, whose result shows the state. */
  probe: string;
}

const pairs: Pair[] = [
  {
    name: 'gc.callbacks',
    poison: 'import gc\ngc.callbacks.append(lambda phase, info: print("callback", phase))\n',
    probe: 'import gc\ndef f():\n    n = len(gc.callbacks)\n    gc.collect()\n    return n\n',
  },
  {
    name: 'a gc callback that writes to stdout',
    poison: 'import gc, sys\ngc.callbacks.append(lambda phase, info: sys.stdout.write(phase + "\\n"))\n',
    probe: 'import gc\ndef f():\n    junk = []\n    junk.append(junk)\n    del junk\n    return gc.collect() > 0\n',
  },
  { name: 'gc.disable', poison: 'import gc\ngc.disable()\n', probe: 'import gc\ndef f():\n    return gc.isenabled()\n' },
  { name: 'gc.set_threshold', poison: 'import gc\ngc.set_threshold(5, 1, 1)\n', probe: 'import gc\ndef f():\n    return gc.get_threshold()\n' },
  {
    name: 'a file in /tmp',
    poison: 'with open("/tmp/left-behind.txt", "w") as fh:\n    fh.write("secret of an earlier program")\n',
    probe: 'import os\ndef f():\n    return sorted(os.listdir("/tmp"))\n',
  },
  {
    name: 'a file in the home folder',
    poison: 'import os\nwith open(os.path.expanduser("~/notes.txt"), "w") as fh:\n    fh.write("x")\n',
    probe: 'import os\ndef f():\n    return sorted(os.listdir(os.path.expanduser("~")))\n',
  },
  {
    name: 'a module planted in the current folder',
    poison: 'with open("planted_mod.py", "w") as fh:\n    fh.write("VALUE = 42\\n")\n',
    probe: 'def f():\n    try:\n        import planted_mod\n    except ImportError:\n        return None\n    return planted_mod.VALUE\n',
  },
  {
    name: 'a module planted in /tmp with a leaked current folder',
    poison: 'import os\nos.chdir("/tmp")\nwith open("planted_tmp.py", "w") as fh:\n    fh.write("VALUE = 7\\n")\n',
    probe: 'def f():\n    try:\n        import planted_tmp\n    except ImportError:\n        return None\n    return planted_tmp.VALUE\n',
  },
  {
    name: 'a module planted in site-packages',
    poison: 'with open("/lib/python3.14/site-packages/planted_site.py", "w") as fh:\n    fh.write("VALUE = 9\\n")\n',
    probe: 'def f():\n    try:\n        import planted_site\n    except ImportError:\n        return None\n    return planted_site.VALUE\n',
  },
  { name: 'os.chdir', poison: 'import os\nos.chdir("/tmp")\n', probe: 'import os\ndef f():\n    return os.getcwd()\n' },
  { name: 'os.environ entry added', poison: 'import os\nos.environ["LEFT_BEHIND"] = "1"\n', probe: 'import os\ndef f():\n    return os.environ.get("LEFT_BEHIND")\n' },
  { name: 'os.environ entry removed', poison: 'import os\ndel os.environ["HOME"]\n', probe: 'import os\ndef f():\n    return os.environ.get("HOME")\n' },
  { name: 'os.umask', poison: 'import os\nos.umask(0o077)\n', probe: 'import os\ndef f():\n    u = os.umask(0o022)\n    os.umask(u)\n    return u\n' },
  {
    name: 'a leaked file descriptor',
    poison: 'import os\nleaked = os.dup(0)\n',
    probe: 'import os\ndef f():\n    fd = os.dup(0)\n    os.close(fd)\n    return fd\n',
  },
  { name: 'sys.setswitchinterval', poison: 'import sys\nsys.setswitchinterval(0.5)\n', probe: 'import sys\ndef f():\n    return sys.getswitchinterval()\n' },
  {
    name: 'sys.set_asyncgen_hooks',
    poison: 'import sys\nsys.set_asyncgen_hooks(firstiter=print)\n',
    probe: 'import sys\ndef f():\n    return sys.get_asyncgen_hooks().firstiter is None\n',
  },
  {
    name: 'warnings.simplefilter("error")',
    poison: 'import warnings\nwarnings.simplefilter("error")\n',
    probe: 'import warnings\ndef f():\n    warnings.warn("careful")\n    return "survived"\n',
  },
  {
    name: 'warnings.filterwarnings("ignore")',
    poison: 'import warnings\nwarnings.filterwarnings("ignore")\n',
    probe: 'import warnings\ndef f():\n    with warnings.catch_warnings(record=True) as seen:\n        warnings.warn("careful")\n    return len(seen)\n',
  },
  {
    name: 'ABC registration of a builtin',
    poison: 'import collections.abc\ncollections.abc.Sequence.register(int)\n',
    probe: 'import collections.abc\ndef f():\n    return isinstance(5, collections.abc.Sequence)\n',
  },
  {
    name: 'ABC registration with io',
    poison: 'import io\nio.IOBase.register(list)\n',
    probe: 'import io\ndef f():\n    return isinstance([], io.IOBase)\n',
  },
  {
    name: 'codecs.register',
    poison: 'import codecs\ncodecs.register(lambda name: codecs.lookup("rot13") if name == "poison_codec" else None)\n',
    probe: 'import codecs\ndef f():\n    try:\n        return codecs.encode("abc", "poison_codec")\n    except LookupError:\n        return "unknown"\n',
  },
  {
    name: 'codecs.register_error',
    poison: 'import codecs\ncodecs.register_error("poison", lambda e: ("?", e.end))\n',
    probe: 'def f():\n    try:\n        return "é".encode("ascii", "poison")\n    except LookupError:\n        return "unknown"\n',
  },
  { name: 'atexit.register', poison: 'import atexit\natexit.register(print, "bye")\n', probe: 'import atexit\ndef f():\n    return atexit._ncallbacks()\n' },
  {
    name: 'a context variable',
    poison: 'import contextvars\nleft = contextvars.ContextVar("left")\nleft.set(1)\n',
    probe: 'import contextvars\ndef f():\n    return len(contextvars.copy_context())\n',
  },
  {
    name: 'the decimal context',
    poison: 'import decimal\ndecimal.getcontext().prec = 3\n',
    probe: 'import decimal\ndef f():\n    return str(decimal.Decimal(1) / decimal.Decimal(7))\n',
  },
  {
    name: 'an attribute of a standard-library class',
    poison: 'import json\njson.JSONEncoder.item_separator = " ; "\n',
    probe: 'import json\ndef f():\n    return json.dumps([1, 2])\n',
  },
  {
    name: 'an object held by a standard-library module',
    poison: 'import json\njson._default_encoder.indent = 4\n',
    probe: 'import json\ndef f():\n    return json.dumps([1, 2])\n',
  },
  {
    name: 'the copyreg dispatch table',
    poison: 'import copyreg\ncopyreg.pickle(range, lambda r: (list, ([],)))\n',
    probe: 'import copyreg\ndef f():\n    return sorted(t.__name__ for t in copyreg.dispatch_table)\n',
  },
  {
    name: 'the compiled-pattern cache of re',
    poison: 'import re\nfor cache in (re._cache, re._cache2):\n    cache[(str, "a", 0)] = re.compile("b")\n',
    probe: 'import re\ndef f():\n    return re.sub("a", "x", "abc")\n',
  },
  {
    name: 'a signal handler',
    poison: 'import signal\nsignal.signal(signal.SIGUSR1, lambda *a: None)\n',
    probe: 'import signal\ndef f():\n    return signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL\n',
  },
  { name: 'locale.setlocale', poison: 'import locale\nlocale.setlocale(locale.LC_ALL, "C")\n', probe: 'import locale\ndef f():\n    return locale.setlocale(locale.LC_ALL)\n' },
  { name: 'sys.setrecursionlimit', poison: 'import sys\nsys.setrecursionlimit(77)\n', probe: 'import sys\ndef f():\n    return sys.getrecursionlimit()\n' },
  { name: 'sys.dont_write_bytecode', poison: 'import sys\nsys.dont_write_bytecode = False\n', probe: 'import sys\ndef f():\n    return sys.dont_write_bytecode\n' },
  {
    name: 'the thread-name counter',
    poison: 'import threading\nmade = [threading.Thread(target=print) for _ in range(3)]\n',
    // The counter that names threads, read without advancing it (a new thread would advance it).
    probe: 'import threading\ndef f():\n    return repr(threading._counter.__self__)\n',
  },
  {
    name: 'the statistics of a functools.lru_cache',
    poison: 'import fnmatch\nmatched = fnmatch.fnmatch("a.py", "*.py")\n',
    probe: 'import fnmatch\ndef f():\n    return str(fnmatch._compile_pattern.cache_info())\n',
  },
  {
    name: 'threading.excepthook',
    poison: 'import threading\nthreading.excepthook = print\n',
    probe: 'import threading\ndef f():\n    return threading.excepthook is threading.__excepthook__\n',
  },
];

/** Ordinary programs for the order-and-workers test: synthetic ones and a slice of CRUXEval. */
function ordinaryPrograms(): Program[] {
  const out: Program[] = [];
  for (const preset of ['easy', 'hard'] as const) {
    for (const p of generatePrograms({ count: 6, seed: 19, preset })) out.push({ id: `${preset}:${p.id}`, source: p.source, entry: p.entry });
  }
  const crux = resolve(import.meta.dirname, '..', '..', '..', 'shared', 'datasets', 'cruxeval.jsonl');
  if (existsSync(crux)) {
    const rows = readFileSync(crux, 'utf8').split('\n').filter((l) => l.trim());
    // Every 67th program: a spread of the set rather than its first few.
    for (let i = 0; i < rows.length && out.length < 24; i += 67) {
      const r = JSON.parse(rows[i] as string) as { id: string; code: string; input: string };
      out.push({ id: r.id, source: r.code, entry: `f(${r.input})` });
    }
  }
  return out;
}

/** The poison, then the probe within the same program. */
const poisonProgram = (p: Pair): Program => ({ id: `poison: ${p.name}`, source: `${p.poison}\n${p.probe}`, entry: 'f()' });
const probeProgram = (p: Pair): Program => ({ id: `probe: ${p.name}`, source: p.probe, entry: 'f()' });
/** What a test compares to tell two runs of a probe apart. */
const outcome = (t: Trace): string => `${t.status} ${t.result?.repr ?? t.message} ${JSON.stringify(t.stdout)}`;

/** A seeded shuffle (xorshift32), so that a failure can be replayed. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// Generous: the tests run beside other CPU-heavy work on two cores.
const limits = { timeoutMs: 30_000 };

async function traceWith(workers: number, programs: Program[]): Promise<{ traces: Map<string, string>; replacements: Record<string, number> }> {
  const pool = await TracerPool.create({ workers, limits });
  try {
    const traces = new Map<string, string>();
    for await (const t of pool.traceAll(programs)) traces.set(t.id, JSON.stringify(t));
    return { traces, replacements: pool.replacements };
  } finally {
    await pool.close();
  }
}

const parse = (text: string | undefined): Trace => JSON.parse(text ?? 'null') as Trace;

/** Probes alone, each in a sandbox in the state of a fresh one. */
let alone: Awaited<ReturnType<typeof traceWith>>;
/** The pairs in sequence on one worker. */
let sequence: Awaited<ReturnType<typeof traceWith>>;

beforeAll(async () => {
  alone = await traceWith(1, pairs.map(probeProgram));
  sequence = await traceWith(1, pairs.flatMap((p) => [poisonProgram(p), probeProgram(p)]));
}, 900_000);

describe('a program after one that changed process-wide state', () => {
  it('covers at least 20 kinds of state', () => {
    expect(pairs.length).toBeGreaterThanOrEqual(20);
  });

  it('has probes that change nothing themselves but for the first use of decimal, which sets a context variable', () => {
    // So each probe alone ran in the state of a fresh sandbox: the one after the decimal probe in
    // a replacement.
    expect(alone.replacements).toEqual({ 'state: context variables': 1 });
  });

  for (const p of pairs) {
    it(`${p.name}: the poison changes what the probe sees within its own run`, () => {
      const within = parse(sequence.traces.get(`poison: ${p.name}`));
      const reference = parse(alone.traces.get(`probe: ${p.name}`));
      expect(reference.status, reference.message ?? '').toBe('ok');
      expect(outcome(within)).not.toBe(outcome(reference));
    });

    it(`${p.name}: the probe traced after the poison gives the trace of the probe alone`, () => {
      const after = sequence.traces.get(`probe: ${p.name}`);
      expect(after, 'probe trace missing').toBeDefined();
      expect(after).toBe(alone.traces.get(`probe: ${p.name}`));
    });
  }

  it('replaces the sandbox after each poison and gives the reason', () => {
    const count = Object.values(sequence.replacements).reduce((a, b) => a + b, 0);
    // Every poison changes state; poisons whose change the tracer puts back (sys hooks, module
    // attributes, the pattern cache) need no replacement.
    expect(count).toBeGreaterThanOrEqual(pairs.length - 6);
    for (const reason of Object.keys(sequence.replacements)) expect(reason).toMatch(/^state: /);
    expect(sequence.replacements['state: file system, current folder or umask']).toBeGreaterThanOrEqual(6);
  });
});

describe('a mixed corpus', () => {
  const mixed: Program[] = [...ordinaryPrograms()];
  // Poisoners placed among the ordinary programs, each before its probe.
  const chosen = pairs.filter((_, i) => i % 7 === 0);
  chosen.forEach((p, i) => mixed.splice(Math.min(mixed.length, 3 * i + 1), 0, poisonProgram(p), probeProgram(p)));
  let one: Map<string, string>;
  let two: Map<string, string>;
  let reordered: Map<string, string>;

  beforeAll(async () => {
    one = (await traceWith(1, mixed)).traces;
    two = (await traceWith(2, mixed)).traces;
    reordered = (await traceWith(2, shuffled(mixed, 19))).traces;
  }, 900_000);

  it('holds ordinary programs, poisoners and probes', () => {
    expect(mixed.filter((p) => p.id.startsWith('poison: ')).length).toBeGreaterThanOrEqual(5);
    expect(mixed.length).toBeGreaterThanOrEqual(24);
  });

  it('gives every program byte-identical traces with 1 worker, 2 workers and a shuffled input', () => {
    expect(one.size).toBe(mixed.length);
    for (const p of mixed) {
      const t = one.get(p.id);
      expect(t, p.id).toBeDefined();
      expect(two.get(p.id), `2 workers: ${p.id}`).toBe(t);
      expect(reordered.get(p.id), `shuffled: ${p.id}`).toBe(t);
    }
  });

  it('gives each probe the trace it has alone', () => {
    for (const p of chosen) expect(one.get(`probe: ${p.name}`)).toBe(alone.traces.get(`probe: ${p.name}`));
  });
});
