// One sandbox: a Node process that loads Pyodide once and traces programs sent to it.
//
// Started by tracer/pool.ts as a restricted process (permission model, empty environment,
// network namespace, unprivileged user where available). Protocol: one JSON config as argv[2];
// then one JSON request per stdin line, one JSON trace per stdout line, in request order (the pool
// sends the next request while a program runs; it waits on stdin). The first stdout line is
// `{"ready": true, ...}` once Pyodide is loaded. Anything else the process prints goes to stderr.
//
// Hardening inside the process (the outer layers are the real boundary): the `js` module is an
// empty object instead of globalThis, `pyodide_js` is unregistered, code generation from strings
// is disabled by the pool's node flags (so `obj.constructor.constructor('...')` fails), and the
// process methods that reach the host (getBuiltinModule, binding, dlopen, kill) are removed.
import { closeSync, readFileSync, readSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/**
 * @typedef {object} SandboxConfig
 * @property {string} pyodideDir  directory of the pyodide package (pyodide.mjs, wasm, stdlib zip)
 * @property {string} tracerPath  path of tracer.py
 * @property {number} memoryBytes initial cap on the WebAssembly heap; requests may lower or raise it
 * @property {'make' | 'load' | 'none'} snapshot  `make`: after loading, write a memory snapshot
 *   of the fresh interpreter to fd 3; `load`: read a snapshot from fd 3 and start from it
 *   (about 7x faster than a full load); `none`: plain load
 */

/** @type {SandboxConfig} */
const config = JSON.parse(process.argv[2] ?? '{}');
let memoryCap = config.memoryBytes;

/** @param {string} text */
function send(text) {
  writeSync(1, `${text}\n`);
}

// Pyodide (Emscripten) grows its heap with Memory.grow; failing the grow makes malloc return NULL,
// which CPython turns into MemoryError.
const wasmMemory = /** @type {any} */ (globalThis).WebAssembly.Memory.prototype;
const originalGrow = wasmMemory.grow;
wasmMemory.grow = function grow(/** @type {number} */ delta) {
  if (this.buffer.byteLength + delta * 65536 > memoryCap) {
    throw new RangeError('execwm: WebAssembly memory cap reached');
  }
  return originalGrow.call(this, delta);
};

// Under the permission model Node 20 refuses process.binding, which Pyodide's Node support calls.
const proc = /** @type {any} */ (process);
const originalBinding = proc.binding;
proc.binding = (/** @type {string} */ name) => {
  if (name === 'constants') return { os: { signals: {} }, fs: {}, crypto: {}, zlib: {} };
  return originalBinding.call(process, name);
};

const { loadPyodide } = await import(pathToFileURL(`${config.pyodideDir}/pyodide.mjs`).href);
const tracerSource = readFileSync(config.tracerPath, 'utf8');

/** @param {string} msg */
const toStderr = (msg) => {
  process.stderr.write(`${msg}\n`);
};
/** @type {Record<string, unknown>} */
const loadOptions = {
  indexURL: `${config.pyodideDir}/`,
  // String hashing is randomized by default; a fixed seed makes set iteration repeatable.
  env: { PYTHONHASHSEED: '0', HOME: '/home/pyodide' },
  jsglobals: Object.create(null),
  // Python's fd 0 is at end of file: by default Pyodide reads the process's stdin, where the next
  // request may already wait, so a program could swallow another program's request.
  stdin: () => null,
  stdout: toStderr,
  stderr: toStderr,
};
if (config.snapshot === 'make') loadOptions._makeSnapshot = true;
if (config.snapshot === 'load') loadOptions._loadSnapshot = readFileSync(3);
const pyodide = await loadPyodide(loadOptions);
if (config.snapshot === 'make') {
  const snapshot = pyodide.makeMemorySnapshot();
  for (let off = 0; off < snapshot.length; ) off += writeSync(3, snapshot, off);
  closeSync(3);
}
pyodide.unregisterJsModule('pyodide_js');

const namespace = pyodide.globals.get('dict')();
// The tracer gets its own copy of the builtins, so a program that patches `builtins` cannot change
// what the tracer's own code calls while it runs (the copy in `builtins` is restored afterwards).
namespace.set('__builtins__', pyodide.runPython('import builtins; dict(builtins.__dict__)', { globals: pyodide.globals.get('dict')() }));
pyodide.runPython(tracerSource, { globals: namespace, filename: '/execwm/tracer.py' });
const api = namespace.get('_build')(true);
const begin = api.get('begin');
const runModule = api.get('run_module');
const runEntry = api.get('run_entry');
const on = api.get('on');
const off = api.get('off');
const finish = api.get('finish_utf8');
const pythonVersion = String(pyodide.runPython('import sys; sys.version.split()[0]', { globals: pyodide.globals.get('dict')() }));

for (const name of ['getBuiltinModule', 'binding', '_linkedBinding', 'dlopen', 'kill', '_kill', 'abort', 'chdir', 'setuid', 'setgid']) {
  try {
    delete proc[name];
  } catch {
    // Some are non-configurable; the process-level layers still hold.
  }
}

/**
 * Runs one request through the tracer and returns the trace JSON as ASCII bytes (a PyProxy the
 * caller destroys). Each call into Python takes and returns plain values: a crossing that makes a
 * proxy costs several times one that does not, and these calls are most of a short program's cost.
 * @param {string} line
 * @returns {any}
 */
function traceLine(line) {
  const kind = begin(line);
  if (kind === 1) {
    on();
    runModule();
    off();
  } else if (kind === 2 && runModule() === true) {
    on();
    runEntry();
    off();
  }
  return finish();
}

const FS = pyodide.FS;

/**
 * The virtual file system as a program could observe it: the current directory, the umask (which
 * Pyodide keeps in this process), every node outside /proc (path, inode, mode, size, modification
 * and change times, link target; read from the nodes themselves, some 15x cheaper than stat calls)
 * and the open file descriptors. Reading a file changes only its access time, which is left out.
 * @returns {unknown[]}
 */
function fileSystemState() {
  const umask = proc.umask(0o022);
  proc.umask(umask);
  /** @type {unknown[]} */
  const parts = [FS.cwd(), umask];
  /** @param {any} start @param {string} path */
  const walk = (start, path) => {
    const node = start.mounted ? start.mounted.root : start;
    parts.push(path || '/', node.id, node.mode, node.usedBytes, node.mtime, node.ctime, node.link);
    const children = node.contents;
    if (FS.isDir(node.mode) && children && !ArrayBuffer.isView(children)) {
      for (const name in children) if (path || name !== 'proc') walk(children[name], `${path}/${name}`);
    }
  };
  walk(FS.root, '');
  for (const stream of FS.streams) if (stream) parts.push(stream.fd, stream.path, stream.flags);
  return parts;
}

/**
 * The file system after the warm-up run; a program that leaves it (or the current directory or the
 * umask) different recycles the sandbox.
 * @type {unknown[]}
 */
let cleanFileSystem = [];
/** @returns {boolean} */
function fileSystemChanged() {
  const now = fileSystemState();
  return now.length !== cleanFileSystem.length || now.some((v, i) => v !== cleanFileSystem[i]);
}
const RECYCLE_FALSE = Buffer.from('false}');
const RECYCLE_FILES = Buffer.from(`${JSON.stringify('state: file system, current folder or umask')}}`);

/**
 * Writes one trace from traceLine() as a stdout line.
 * @param {any} trace
 */
function sendTrace(trace) {
  // The bytes are written straight from the wasm heap: no JS string is built.
  const buffer = trace.getBuffer('u8');
  try {
    let data = buffer.data;
    // The trace ends with `"recycle": false}` unless the tracer already asked for a recycle.
    const tail = data.subarray(data.length - RECYCLE_FALSE.length);
    if (RECYCLE_FALSE.equals(tail) && fileSystemChanged()) {
      data = data.subarray(0, data.length - RECYCLE_FALSE.length);
      for (let off = 0; off < data.length; ) off += writeSync(1, data, off);
      data = RECYCLE_FILES;
    }
    for (let off = 0; off < data.length; ) off += writeSync(1, data, off);
    writeSync(1, '\n');
  } finally {
    buffer.release();
    trace.destroy();
  }
}

// The first run in a fresh interpreter is slow (lazy initialisation); pay it before reporting ready
// so that it never counts against a program's wall-clock limit.
const warmUp = traceLine(
  JSON.stringify({
    id: 'warm-up',
    source: 'def f(n):\n    s = {str(i): [i] for i in range(n)}\n    print(s)\n    return sorted(s)\n',
    entry: 'f(3)',
    limits: { maxSteps: 1000, timeoutMs: 1000, memoryBytes: memoryCap, maxStdoutBytes: 1000, maxValueChars: 50 },
  }),
);
warmUp.destroy();
cleanFileSystem = fileSystemState();
send(JSON.stringify({ ready: true, python: pythonVersion, pyodide: pyodide.version }));

/**
 * The requests on stdin, one per line, read with blocking reads. The sandbox does one thing at a
 * time, and waiting for the next line through the event loop (readline) cost it 0.2-0.3 ms of CPU
 * per program, a third of a short program's whole cost.
 * @returns {Generator<string>}
 */
function* stdinLines() {
  const chunk = Buffer.allocUnsafe(1 << 16);
  /** @type {Buffer[]} */
  let partial = [];
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    let n;
    try {
      n = readSync(0, chunk, 0, chunk.length, null);
    } catch (err) {
      const code = /** @type {NodeJS.ErrnoException} */ (err).code;
      // A non-blocking stdin with nothing to read yet: wait a millisecond and try again.
      if (code === 'EAGAIN') {
        Atomics.wait(pause, 0, 0, 1);
        continue;
      }
      if (code === 'EOF') return;
      throw err;
    }
    if (n === 0) return;
    const data = chunk.subarray(0, n); // what this read brought; the rest of chunk is stale
    let start = 0;
    for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
      partial.push(data.subarray(start, nl));
      yield Buffer.concat(partial).toString('utf8');
      partial = [];
      start = nl + 1;
    }
    // The rest is the start of a line still arriving; copied, since chunk is reused.
    if (start < n) partial.push(Buffer.from(data.subarray(start)));
  }
}

for (const line of stdinLines()) {
  if (!line.trim()) continue;
  /** @type {{ id?: string, limits?: { memoryBytes?: number } }} */
  const req = JSON.parse(line);
  if (req.limits?.memoryBytes) memoryCap = req.limits.memoryBytes;
  try {
    sendTrace(traceLine(line));
  } catch (err) {
    // Pyodide itself failed (a fatal error, a stack overflow): report and exit so the pool respawns.
    const message = err instanceof Error ? err.message.split('\n').slice(-2).join(' ').trim() : String(err);
    const memory = /memory|Cannot enlarge|out of bounds|RangeError/i.test(message);
    send(JSON.stringify({ id: req.id ?? null, status: memory ? 'memory_limit' : 'crashed', message: `sandbox failure: ${message}`, recycle: true, fatal: true }));
    process.exitCode = 3;
    break;
  }
}
