/**
 * Hostile programs: each must end with the one status it must produce (a limit status with the
 * limit actually reached), leave no trace on the host (no file written, no process spawned, no
 * loopback connection, no host environment read), and leave the pool able to trace normal
 * programs correctly.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TracerPool } from '../../tracer/index.js';
import { DEFAULT_LIMITS, type Trace, type TraceStatus } from '../../src/schema.js';

interface Hostile {
  name: string;
  /** Python source; `MARKER` is replaced by a host path the program tries to create, `PORT` by the test server's port. */
  source: string;
  entry?: string;
  /** The one status the program must end with (a comment beside a program says why when it is not obvious). */
  expect: TraceStatus;
}

const CANARY = 'execwm-canary-8c1f2e';

const programs: Hostile[] = [
  // Escapes through Pyodide's JavaScript bridge.
  { name: 'import js process env', source: 'import js\nprint(js.process.env.EXECWM_CANARY)\n', expect: 'crashed' },
  { name: 'from js import process', source: 'from js import process\nprocess.getBuiltinModule("fs").writeFileSync("MARKER", "x")\n', expect: 'crashed' },
  { name: 'js via sys.modules', source: 'import sys\njs = sys.modules.get("js")\nprint(js.process.env)\n', expect: 'exception' },
  { name: 'import pyodide_js', source: 'import pyodide_js\npyodide_js.runPython("print(1)")\n', expect: 'crashed' },
  { name: 'pyodide_js via sys.modules', source: 'import sys\nm = sys.modules["pyodide_js"]\n', expect: 'exception' },
  { name: 'pyodide.code.run_js', source: 'from pyodide.code import run_js\nrun_js("process.getBuiltinModule(\'fs\').writeFileSync(\'MARKER\', \'x\')")\n', expect: 'crashed' },
  { name: 'pyodide.ffi', source: 'import pyodide.ffi\nprint(pyodide.ffi.JsProxy)\n', expect: 'crashed' },
  { name: '_pyodide_core', source: 'import _pyodide_core\n', expect: 'crashed' },
  { name: 'importlib of js', source: 'import importlib\nimportlib.import_module("js")\n', expect: 'crashed' },
  { name: '__import__ of pyodide', source: 'm = __import__("pyodide")\n', expect: 'crashed' },
  { name: 'subclasses hunt for JsProxy', source: 'for c in object.__subclasses__():\n    if "Js" in c.__name__:\n        print(c.__name__)\nx = 1\n', expect: 'ok' },
  { name: 'ctypes emscripten_run_script', source: 'import ctypes\nctypes.CDLL(None).emscripten_run_script(b"require(\'fs\').writeFileSync(\'MARKER\', \'x\')")\n', expect: 'crashed' },
  { name: '_ctypes', source: 'import _ctypes\n', expect: 'crashed' },
  // Host processes, files and environment.
  // The permission model refuses child_process to the sandbox process itself: it dies, and the pool
  // reports the program as crashed (never `ok` with a host shell having run).
  { name: 'os.system', source: 'import os\nr = os.system("touch MARKER")\nprint(r)\n', expect: 'crashed' },
  { name: 'subprocess.run', source: 'import subprocess\nsubprocess.run(["touch", "MARKER"])\n', expect: 'exception' },
  { name: 'os.fork', source: 'import os\npid = os.fork()\n', expect: 'exception' },
  { name: 'os.posix_spawn', source: 'import os\nos.posix_spawn("/usr/bin/touch", ["touch", "MARKER"], {})\n', expect: 'exception' },
  // MARKER's host folder does not exist in Pyodide's in-memory file system, so the open fails there.
  { name: 'open() writes stay in the virtual fs', source: 'with open("MARKER", "w") as fh:\n    fh.write("x")\nprint(open("MARKER").read())\n', expect: 'exception' },
  { name: 'os.environ has no host variables', source: 'import os\nprint(dict(os.environ))\nprint(os.environ.get("EXECWM_CANARY"))\n', expect: 'ok' },
  { name: 'read /proc/self/environ', source: 'print(open("/proc/self/environ", "rb").read())\n', expect: 'exception' },
  { name: 'os.kill parent', source: 'import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n', expect: 'exception' },
  { name: 'os.write to fd 1', source: 'import os\nos.write(1, b\'{"status": "ok"}\\n\')\nos.write(2, b"noise\\n")\n', expect: 'ok' },
  // Network.
  { name: 'socket to loopback', source: 'import socket\ns = socket.create_connection(("127.0.0.1", PORT), timeout=1)\ns.send(b"hi")\n', expect: 'exception' },
  { name: 'urllib to loopback', source: 'import urllib.request\nurllib.request.urlopen("http://127.0.0.1:PORT/", timeout=1).read()\n', expect: 'exception' },
  { name: 'pyfetch', source: 'from pyodide.http import pyfetch\n', expect: 'crashed' },
  // Time and signals.
  { name: 'infinite loop', source: 'while True:\n    pass\n', expect: 'step_limit' },
  { name: 'one-line infinite loop', source: 'while True: pass\n', expect: 'step_limit' },
  { name: 'loop catching BaseException', source: 'while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass\n', expect: 'step_limit' },
  { name: 'catch and retry in a function', source: 'def f():\n    while True:\n        try:\n            f()\n        except BaseException:\n            continue\n', entry: 'f()', expect: 'step_limit' },
  { name: 'C-level loop', source: 'x = sum(range(10**12))\n', expect: 'timeout' },
  { name: 'time.sleep', source: 'import time\ntime.sleep(30)\n', expect: 'timeout' },
  { name: 'signal ignore', source: 'import signal\nfor s in (signal.SIGTERM, signal.SIGINT):\n    signal.signal(s, signal.SIG_IGN)\nx = sum(range(10**12))\n', expect: 'timeout' },
  // Pyodide's signal module has no alarm(): AttributeError.
  { name: 'signal alarm', source: 'import signal\nsignal.signal(signal.SIGALRM, lambda *a: None)\nsignal.alarm(1)\nx = 1\n', expect: 'exception' },
  // Memory and recursion.
  { name: 'huge list', source: 'x = [0] * 10**8\n', expect: 'memory_limit' },
  { name: 'doubling string', source: 's = "x"\nwhile True:\n    s += s\n', expect: 'memory_limit' },
  { name: 'huge bytearray', source: 'b = bytearray(2**29)\n', expect: 'memory_limit' },
  { name: 'memory error caught', source: 'try:\n    x = [0] * 10**8\nexcept MemoryError:\n    y = 1\n', expect: 'memory_limit' },
  // The step budget is spent long before a depth of 10**6.
  { name: 'recursion bomb with raised limit', source: 'import sys\nsys.setrecursionlimit(10**6)\ndef r(n):\n    return r(n + 1)\nr(0)\n', expect: 'step_limit' },
  // json.loads recurses in C, and Pyodide's C stack is the JavaScript stack: its overflow kills the sandbox.
  { name: 'C recursion bomb', source: 'import sys, json\nsys.setrecursionlimit(10**6)\nl = json.loads("[" * 200000 + "]" * 200000)\nr = repr(l)\n', expect: 'crashed' },
  // Output floods.
  { name: 'print flood', source: 'while True:\n    print("x" * 1000)\n', expect: 'output_limit' },
  { name: 'single huge print', source: 'print("x" * 10**7)\n', expect: 'output_limit' },
  // Tracer tampering.
  { name: 'settrace(None)', source: 'import sys\nsys.settrace(None)\nx = 1\n', expect: 'crashed' },
  { name: 'setprofile', source: 'import sys\nsys.setprofile(lambda *a: None)\n', expect: 'crashed' },
  { name: 'monitoring free_tool_id', source: 'import sys\nfor i in range(6):\n    sys.monitoring.free_tool_id(i)\nx = 1\n', expect: 'crashed' },
  { name: 'monitoring set_events', source: 'import sys\nfor i in range(6):\n    try:\n        sys.monitoring.set_events(i, 0)\n    except ValueError:\n        pass\nx = 1\n', expect: 'crashed' },
  { name: 'monitoring register_callback', source: 'import sys\nsys.monitoring.register_callback(4, sys.monitoring.events.LINE, None)\n', expect: 'crashed' },
  { name: 'monitoring swallowed', source: 'import sys\ntry:\n    sys.monitoring.set_events(4, 0)\nexcept BaseException:\n    pass\nx = 1\n', expect: 'crashed' },
  {
    name: 'closure of a sys.monitoring stand-in',
    source: 'import sys, gc\nfor c in sys.monitoring.set_events.__closure__ or ():\n    v = c.cell_contents\n    if isinstance(v, dict):\n        v["own"] = 1\nobjs = gc.get_objects()\n',
    expect: 'crashed',
  },
  { name: 'import blocker removed from meta_path', source: 'import sys\nsys.meta_path[:] = [f for f in sys.meta_path if "Blocker" not in repr(f)]\nimport importlib\nm = importlib.import_module("pyodide_js")\n', expect: 'exception' },
  { name: 'gc.get_objects', source: 'import gc\nfor o in gc.get_objects():\n    pass\n', expect: 'crashed' },
  { name: 'gc.get_referrers', source: 'import gc, sys\nr = gc.get_referrers(sys.stdout)\n', expect: 'crashed' },
  { name: 'addaudithook', source: 'import sys\nsys.addaudithook(lambda e, a: None)\n', expect: 'crashed' },
  {
    name: 'traceback frame of the stop exception',
    source: 'n = 0\nwhile True:\n    try:\n        n += 1\n    except BaseException as e:\n        tb = e.__traceback__\n        while tb is not None:\n            f = tb.tb_frame\n            tb = tb.tb_next\n',
    expect: 'step_limit',
  },
  {
    name: 'frame walk to the caller',
    source: 'import sys\ndef f():\n    fr = sys._getframe()\n    seen = []\n    while fr is not None:\n        seen.append(fr.f_code.co_name)\n        fr.f_globals["poked"] = 1\n        fr = fr.f_back\n    return seen\n',
    entry: 'f()',
    expect: 'ok',
  },
  // The trampolines that run a program are reachable through f_back, f_globals and f_builtins.
  {
    name: 'plant names in every reachable frame for later programs',
    source: 'import sys\nfr = sys._getframe()\nwhile fr is not None:\n    for k in ("eval", "BaseException", "out", "code", "g"):\n        fr.f_globals[k] = lambda *a: 42\n        fr.f_builtins[k] = lambda *a: 42\n    fr = fr.f_back\n',
    expect: 'ok',
  },
  {
    name: 'plant eval in the trampoline before the entry runs',
    source: 'import sys\nfr = sys._getframe(1)\nfr.f_globals["eval"] = lambda c, g: 42\nfr.f_builtins["eval"] = lambda c, g: 42\ndef f(x):\n    y = x * 2\n    return y\n',
    entry: 'f(5)',
    expect: 'ok',
  },
  {
    name: 'forge the outcome from the entry',
    source: 'import sys\ndef f():\n    fr = sys._getframe(2)\n    fr.f_globals["out"] = (True, 42)\n    fr.f_builtins["eval"] = lambda c, g: 42\n    return 1\n',
    entry: 'f()',
    expect: 'ok',
  },
  { name: 'patch builtins for later programs', source: 'import builtins\nbuiltins.len = lambda x: 0\nbuiltins.print = None\nx = 1\n', expect: 'ok' },
  { name: 'patch a stdlib module for later programs', source: 'import json, random\njson.dumps = lambda *a, **k: "evil"\nrandom.random = lambda: 0.5\n', expect: 'ok' },
  { name: 'patch sys streams', source: 'import sys, io\nsys.stdout = io.StringIO()\nsys.__stdout__ = None\nprint("hidden")\n', expect: 'ok' },
  { name: 'threads', source: 'import threading\nt = threading.Thread(target=lambda: None)\nt.start()\n', expect: 'exception' },
];

const LIMITS = { timeoutMs: 6000, memoryBytes: 128 * 1024 * 1024 };

let pool: TracerPool;
let server: Server;
let port = 0;
let connections = 0;
let markerDir = '';
const traces = new Map<string, Trace>();

function materialize(h: Hostile, i: number): { id: string; source: string; entry: string | null } {
  const marker = join(markerDir, `marker-${i}`);
  return { id: h.name, source: h.source.replaceAll('MARKER', marker).replaceAll('PORT', String(port)), entry: h.entry ?? null };
}

beforeAll(async () => {
  process.env.EXECWM_CANARY = CANARY;
  markerDir = mkdtempSync(join(tmpdir(), 'execwm-hostile-'));
  // World-writable, so that only the sandbox layers stand between a program and this folder.
  chmodSync(markerDir, 0o777);
  server = createServer((sock) => {
    connections += 1;
    sock.destroy();
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  port = (server.address() as { port: number }).port;
  pool = await TracerPool.create({ workers: 2, limits: LIMITS });
  for await (const t of pool.traceAll(programs.map(materialize))) traces.set(t.id, t);
}, 240_000);

afterAll(async () => {
  await pool?.close();
  await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
  if (markerDir) rmSync(markerDir, { recursive: true, force: true });
});

describe('hostile programs', () => {
  it('covers at least 40 programs', () => {
    expect(programs.length).toBeGreaterThanOrEqual(40);
  });

  for (const h of programs) {
    it(`${h.name}: ends ${h.expect}`, () => {
      const t = traces.get(h.name) as Trace;
      expect(t, 'trace missing').toBeDefined();
      expect(t.status, `status ${t.status}: ${t.message}`).toBe(h.expect);
      // A limit status must mean the limit was reached, not that the program stopped early.
      if (h.expect === 'timeout') expect(t.message).toBe(`wall-clock limit of ${LIMITS.timeoutMs} ms exceeded; the sandbox was killed`);
      if (h.expect === 'step_limit') {
        expect(t.message).toBe(`step limit of ${DEFAULT_LIMITS.maxSteps} events reached`);
        expect(t.steps.length).toBe(DEFAULT_LIMITS.maxSteps);
      }
    });
  }

  it('has programs for each limit', () => {
    const statuses = new Set(programs.map((h) => h.expect));
    for (const s of ['timeout', 'step_limit', 'memory_limit', 'output_limit', 'crashed', 'exception', 'ok'] as const) expect(statuses).toContain(s);
  });

  it('writes no file on the host', () => {
    expect(readdirSync(markerDir)).toEqual([]);
  });

  it('opens no connection to a loopback server', () => {
    expect(connections).toBe(0);
  });

  it('never shows the host environment to a program', () => {
    for (const t of traces.values()) expect(JSON.stringify(t)).not.toContain(CANARY);
  });

  it('keeps tracing normal programs correctly afterwards, on every sandbox', async () => {
    const after = Array.from({ length: 6 }, (_, i) => ({
      id: `after-${i}`,
      source: 'import json, random\ndef f(xs):\n    print(len(xs))\n    return json.dumps(xs), random.random()\n',
      entry: `f([1, ${i}])`,
    }));
    for await (const t of pool.traceAll(after)) {
      expect(t.status).toBe('ok');
      expect(t.stdout).toBe('2\n');
      expect(t.result?.repr).toBe(`('[1, ${t.id.slice(6)}]', 0.8444218515250481)`);
      expect(t.steps.map((s) => `${s.event} ${s.line}`)).toEqual(['call 2', 'line 3', 'line 4', 'return 4']);
    }
  });

  it('runs the entry and reports its own result after a program planted names in a trampoline', () => {
    const planted = traces.get('plant eval in the trampoline before the entry runs') as Trace;
    expect(planted.result?.repr).toBe('10');
    expect(planted.steps.map((s) => `${s.event} ${s.func}`)).toEqual(['call f', 'line f', 'line f', 'return f']);
    expect(traces.get('forge the outcome from the entry')?.result?.repr).toBe('1');
  });

  it('gives no ok trace to a program that disabled tracing', () => {
    for (const name of ['settrace(None)', 'monitoring free_tool_id', 'monitoring set_events', 'monitoring swallowed']) {
      expect(traces.get(name)?.status).not.toBe('ok');
    }
  });

  it('leaves the host marker folder absent of any marker', () => {
    for (let i = 0; i < programs.length; i++) expect(existsSync(join(markerDir, `marker-${i}`))).toBe(false);
  });
});
