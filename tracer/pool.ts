/**
 * A pool of sandbox processes that trace programs in parallel.
 *
 * Each sandbox (tracer/sandbox.mjs) is a restricted Node process running Pyodide; the pool keeps
 * up to two programs in flight per sandbox (the sandbox queues the second on its stdin and starts it
 * as soon as the first trace is written), enforces the wall-clock limit by killing the process from
 * outside, and starts a fresh sandbox after any kill, crash or memory error. Program failures
 * come back as trace statuses; only misuse of the API and pool-level failures throw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit, { type LimitFunction } from 'p-limit';
import { DEFAULT_LIMITS, type Program, type Trace, type TraceLimits } from '../src/schema.js';
import { sandboxCommand, type IsolationLayer, type SandboxCommand, type SandboxFiles } from './isolation.js';

export interface TracerOptions {
  /** Number of sandbox processes; default: one per available core. */
  workers?: number;
  /** Limits merged over DEFAULT_LIMITS; apply to every program. */
  limits?: Partial<TraceLimits>;
  /** `strict`: refuse to start when an isolation layer is unavailable; default `best-effort`. */
  isolation?: 'strict' | 'best-effort';
}

/** Time allowed for a sandbox to load Pyodide before the pool gives up on it. */
const BOOT_TIMEOUT_MS = 120_000;
/** Programs queued ahead of the one `traceAll` is waiting for, per worker. */
const LOOKAHEAD_PER_WORKER = 4;
/**
 * Programs sent to one sandbox at a time: the one it runs and the next, waiting on its stdin, so
 * that it does not sit idle while its trace crosses the pipe and is parsed here.
 */
const IN_FLIGHT_PER_SANDBOX = 2;

function locateFiles(): SandboxFiles {
  const here = dirname(fileURLToPath(import.meta.url));
  // Run from source (tracer/) or from the build (dist/tracer/): the .py/.mjs files stay in tracer/.
  const dirs = [here, resolve(here, '..', '..', 'tracer')];
  const dir = dirs.find((d) => existsSync(join(d, 'tracer.py')) && existsSync(join(d, 'sandbox.mjs')));
  if (!dir) throw new Error(`tracer.py and sandbox.mjs not found next to ${here}`);
  const require = createRequire(import.meta.url);
  const pyodideDir = dirname(require.resolve('pyodide'));
  return { pyodideDir, sandboxScript: join(dir, 'sandbox.mjs'), tracerPath: join(dir, 'tracer.py') };
}

function checkLimits(limits: TraceLimits): void {
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new Error(`Expected \`${key}\` to be a positive integer, got ${String(value)}`);
    }
  }
}

function checkProgram(program: Program): void {
  if (typeof program !== 'object' || program === null) throw new Error(`Expected a program object, got ${String(program)}`);
  if (typeof program.id !== 'string') throw new Error(`Expected \`program.id\` to be a string, got ${typeof program.id}`);
  if (typeof program.source !== 'string') throw new Error(`Expected \`program.source\` to be a string, got ${typeof program.source}`);
  if (program.entry !== null && typeof program.entry !== 'string') {
    throw new Error(`Expected \`program.entry\` to be a string or null, got ${typeof program.entry}`);
  }
}

/** Whether a trace's id is the program's: lone surrogates come back from the sandbox as U+FFFD. */
function sameId(echoed: unknown, id: string): boolean {
  return echoed === id || echoed === id.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** A trace that ended without the sandbox's own report (timeout, death). */
function failedTrace(program: Program, status: Trace['status'], message: string): Trace {
  return { id: program.id, source: program.source, entry: program.entry, status, message, result: null, steps: [], stdout: '' };
}

interface Ready {
  python: string;
  pyodide: string;
}

/** How a sandbox starts Pyodide (see tracer/sandbox.mjs). */
type SnapshotMode = { mode: 'make' } | { mode: 'load'; snapshot: Buffer } | { mode: 'none' };

/** Where a booted sandbox's output goes. */
interface SandboxListener {
  /** One stdout line (a trace). */
  line(text: string): void;
  /** The process is gone and all its output has been delivered. */
  gone(): void;
}

/** One sandbox process and its line-oriented stdout. */
class Sandbox {
  readonly proc: ChildProcess;
  readonly ready: Promise<Ready>;
  /** For `make` sandboxes: the memory snapshot they write to fd 3 (null if none came). */
  readonly snapshot: Promise<Buffer | null>;
  /** Lines received while neither the boot nor a listener takes them. */
  private lines: string[] = [];
  /** Pieces of the line being received (a long trace arrives in many chunks). */
  private partial: string[] = [];
  private waiter: ((line: string | null) => void) | null = null;
  private listener: SandboxListener | null = null;
  private dead = false;
  private stderrTail = '';

  constructor(command: SandboxCommand, config: object, snapshot: SnapshotMode) {
    const args = [...command.args, JSON.stringify({ ...config, snapshot: snapshot.mode })];
    this.proc = spawn(command.file, args, { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], env: {} });
    const fd3 = this.proc.stdio[3] as NodeJS.ReadWriteStream | null;
    fd3?.on('error', () => undefined);
    if (snapshot.mode === 'load') fd3?.end(snapshot.snapshot);
    this.snapshot =
      snapshot.mode === 'make' && fd3
        ? new Promise((res) => {
            const chunks: Buffer[] = [];
            let done = false;
            // `end` and `close` both come; the ~30 MB snapshot is joined once.
            const finish = (): void => {
              if (done) return;
              done = true;
              res(chunks.length > 0 ? Buffer.concat(chunks) : null);
            };
            fd3.on('data', (c: Buffer) => chunks.push(c));
            fd3.on('end', finish);
            fd3.on('close', finish);
          })
        : Promise.resolve(null);
    this.proc.stdout?.setEncoding('utf8');
    this.proc.stdout?.on('data', (chunk: string) => this.onData(chunk));
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    // A dead sandbox's stdin errors (EPIPE) when written; the close handler reports it instead.
    this.proc.stdin?.on('error', () => undefined);
    // `close` rather than `exit`: it comes after the last stdout data, so a trace the process wrote
    // just before dying is still delivered to its program.
    this.proc.on('close', () => this.onGone());
    this.proc.on('error', () => this.onGone());
    this.ready = this.boot();
  }

  /** The process has exited (or failed to start). */
  get exited(): boolean {
    return this.dead;
  }

  get stderr(): string {
    return this.stderrTail;
  }

  private async boot(): Promise<Ready> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((res) => {
      timer = setTimeout(() => res(null), BOOT_TIMEOUT_MS);
    });
    const line = await Promise.race([this.nextLine(), timeout]);
    clearTimeout(timer);
    if (line === null) {
      this.kill();
      throw new Error(`sandbox failed to start: ${this.stderrTail.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
    }
    const msg = JSON.parse(line) as { ready?: boolean; python?: string; pyodide?: string };
    if (!msg.ready) throw new Error(`sandbox sent ${line.slice(0, 200)} instead of its ready line`);
    return { python: msg.python ?? '?', pyodide: msg.pyodide ?? '?' };
  }

  private onData(chunk: string): void {
    // Only the new chunk is searched: re-splitting the whole pending line at every chunk made
    // receiving a trace of n bytes cost O(n^2).
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl !== -1; nl = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      let line = piece;
      if (this.partial.length > 0) {
        this.partial.push(piece);
        line = this.partial.join('');
        this.partial = [];
      }
      if (this.waiter) this.wake(line);
      else if (this.listener) this.listener.line(line);
      else this.lines.push(line);
    }
    if (start < chunk.length) this.partial.push(chunk.slice(start));
  }

  private onGone(): void {
    if (this.dead) return;
    this.dead = true;
    this.wake(null);
    this.listener?.gone();
  }

  private wake(line: string | null): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(line);
  }

  /** The next stdout line, or null once the process is gone (used for the ready line). */
  private nextLine(): Promise<string | null> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.dead) return Promise.resolve(null);
    return new Promise((res) => {
      this.waiter = res;
    });
  }

  /** Sends every later stdout line, and the end of the process, to `listener`. */
  listen(listener: SandboxListener): void {
    this.listener = listener;
    for (const line of this.lines.splice(0)) listener.line(line);
    if (this.dead) listener.gone();
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  kill(): void {
    if (!this.dead) this.proc.kill('SIGKILL');
  }
}

/** What a program sent to a sandbox comes back as: its trace, or REQUEUE when the sandbox was
 * replaced before the program started (it then goes to a fresh sandbox). */
const REQUEUE = Symbol('requeue');
type Outcome = Trace | typeof REQUEUE;

/** A trace as the sandbox writes it, with its requests to be replaced. */
type SandboxReply = Partial<Trace> & { recycle?: boolean | string; fatal?: boolean };

/** A program sent to a sandbox and not yet answered. */
interface Job {
  program: Program;
  settle: (outcome: Outcome) => void;
  /** The wall-clock timer, armed once the program is the one the sandbox runs. */
  timer?: NodeJS.Timeout;
}

/** One sandbox position of the pool: its current sandbox and the programs sent to it. */
interface Slot {
  sandbox: Sandbox;
  /** Programs sent to `sandbox` in order; the first is the one it is running. */
  sent: Job[];
  /** Programs assigned here: sent, or waiting for the sandbox to boot. */
  load: number;
}

export class TracerPool {
  readonly pythonVersion: string;
  readonly pyodideVersion: string;
  /** The isolation layers in force for every sandbox of this pool. */
  readonly isolation: IsolationLayer[];
  private readonly limits: TraceLimits;
  private readonly command: SandboxCommand;
  private readonly config: object;
  /** Memory snapshot of a freshly loaded Pyodide, once the first sandbox has made it. */
  private snapshot: Buffer | null = null;
  private readonly slots: Slot[];
  private readonly limit: LimitFunction;
  private closed = false;
  /** A booted sandbox waiting to replace the next one that is killed. */
  private spare: Sandbox | null = null;
  /** Sandboxes replaced so far, by reason. */
  private readonly replaced = new Map<string, number>();

  private constructor(opts: { limits: TraceLimits; command: SandboxCommand; config: object; sandboxes: Sandbox[]; ready: Ready }) {
    this.limits = opts.limits;
    this.command = opts.command;
    this.config = opts.config;
    this.slots = opts.sandboxes.map((sandbox) => ({ sandbox, sent: [], load: 0 }));
    for (const slot of this.slots) this.listenTo(slot, slot.sandbox);
    this.limit = pLimit(opts.sandboxes.length * IN_FLIGHT_PER_SANDBOX);
    this.pythonVersion = opts.ready.python;
    this.pyodideVersion = opts.ready.pyodide;
    this.isolation = opts.command.layers;
  }

  /** Starts the sandboxes and waits until each has loaded Pyodide. */
  static async create(opts: TracerOptions = {}): Promise<TracerPool> {
    const workers = opts.workers ?? availableParallelism();
    if (!Number.isInteger(workers) || workers <= 0) throw new Error(`Expected \`workers\` to be a positive integer, got ${String(workers)}`);
    const isolation = opts.isolation ?? 'best-effort';
    if (isolation !== 'strict' && isolation !== 'best-effort') {
      throw new Error(`Expected \`isolation\` to be 'strict' or 'best-effort', got ${String(isolation)}`);
    }
    const limits: TraceLimits = { ...DEFAULT_LIMITS, ...opts.limits };
    checkLimits(limits);
    const files = locateFiles();
    const config = { pyodideDir: files.pyodideDir, tracerPath: files.tracerPath, memoryBytes: limits.memoryBytes };
    const command = await sandboxCommand({ files, strict: isolation === 'strict' });
    // The first sandbox also writes a memory snapshot that later replacements start from.
    const sandboxes = Array.from({ length: workers }, (_, i) => new Sandbox(command, config, { mode: i === 0 ? 'make' : 'none' }));
    let ready: Ready;
    try {
      [ready] = (await Promise.all(sandboxes.map((s) => s.ready))) as [Ready];
    } catch (err) {
      for (const s of sandboxes) s.kill();
      throw err;
    }
    const pool = new TracerPool({ limits, command, config, sandboxes, ready });
    pool.snapshot = await (sandboxes[0] as Sandbox).snapshot;
    return pool;
  }

  /**
   * How many sandboxes were replaced, by reason: `timeout`, `memory`, `death`, `state: <what>`
   * (a program changed process-wide state, e.g. `state: os.environ`), ...
   */
  get replacements(): Record<string, number> {
    return Object.fromEntries([...this.replaced].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** Process ids of the current sandboxes (for resource measurements). */
  get pids(): number[] {
    return this.slots.map((s) => s.sandbox.proc.pid ?? -1);
  }

  /** Traces one program. Program failures are statuses; this rejects only on misuse or a closed pool. */
  trace(program: Program): Promise<Trace> {
    checkProgram(program);
    if (this.closed) return Promise.reject(new Error('TracerPool is closed'));
    return this.limit(() => this.run(program));
  }

  /**
   * Traces a stream of programs and yields the traces in input order, keeping a bounded number of
   * programs in flight.
   */
  async *traceAll(
    programs: Iterable<Program> | AsyncIterable<Program>,
    opts: { onResult?: (t: Trace, done: number) => void } = {},
  ): AsyncIterable<Trace> {
    const window = this.slots.length * LOOKAHEAD_PER_WORKER;
    const inflight: Promise<Trace>[] = [];
    let done = 0;
    const take = async (): Promise<Trace> => {
      const t = await (inflight.shift() as Promise<Trace>);
      done += 1;
      opts.onResult?.(t, done);
      return t;
    };
    try {
      for await (const program of programs) {
        const p = this.trace(program);
        // Awaited in order below; this keeps an early rejection from being reported as unhandled.
        p.catch(() => undefined);
        inflight.push(p);
        if (inflight.length >= window) yield await take();
      }
      while (inflight.length > 0) yield await take();
    } finally {
      // Consumers that stop early must not leave rejections dangling.
      for (const p of inflight) p.catch(() => undefined);
    }
  }

  /** Kills every sandbox. */
  async close(): Promise<void> {
    this.closed = true;
    const all = this.slots.map((s) => s.sandbox);
    if (this.spare) all.push(this.spare);
    this.spare = null;
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((res) => {
            if (s.proc.exitCode !== null || s.proc.signalCode !== null) return res();
            s.proc.once('exit', () => res());
            s.kill();
          }),
      ),
    );
  }

  /** Runs the program on the least loaded sandbox, again on another if it was sent back unrun. */
  private async run(program: Program): Promise<Trace> {
    for (;;) {
      if (this.closed) return failedTrace(program, 'crashed', 'the pool was closed before the program ran');
      // The limiter admits IN_FLIGHT_PER_SANDBOX programs per slot, so the least loaded has room.
      const slot = this.slots.reduce((a, b) => (b.load < a.load ? b : a));
      slot.load += 1;
      let outcome: Outcome;
      try {
        outcome = await this.runOn(slot, program);
      } finally {
        slot.load -= 1;
      }
      if (outcome !== REQUEUE) return outcome;
    }
  }

  private async runOn(slot: Slot, program: Program): Promise<Outcome> {
    const sandbox = await this.readySandbox(slot);
    if (!(sandbox instanceof Sandbox)) return failedTrace(program, 'crashed', `sandbox failed to start: ${sandbox.message}`);
    const limits = this.limits;
    return new Promise<Outcome>((settle) => {
      const job: Job = { program, settle };
      slot.sent.push(job);
      sandbox.send(JSON.stringify({ id: program.id, source: program.source, entry: program.entry, limits }));
      // A program queued behind another starts its clock when the other's trace arrives.
      if (slot.sent.length === 1) this.startClock(slot, job);
    });
  }

  /**
   * The slot's sandbox once booted and alive. One that failed to boot or died while idle is
   * replaced; a replacement that fails to boot too is returned as the error.
   */
  private async readySandbox(slot: Slot): Promise<Sandbox | Error> {
    let failures = 0;
    for (;;) {
      const sandbox = slot.sandbox;
      let error: Error | null = null;
      try {
        await sandbox.ready;
      } catch (err) {
        error = err as Error;
      }
      // Replaced while this program waited (by another program's failure): wait for the new one.
      if (slot.sandbox !== sandbox) continue;
      if (error === null && !sandbox.exited) return sandbox;
      failures += 1;
      if (failures > 1 || this.closed) return error ?? new Error('the sandbox exited');
      this.respawn(slot, 'boot failure or idle death');
    }
  }

  private startClock(slot: Slot, job: Job): void {
    const timeoutMs = this.limits.timeoutMs;
    job.timer = setTimeout(() => {
      if (slot.sent[0] !== job) return;
      slot.sent.shift();
      this.respawn(slot, 'timeout');
      job.settle(failedTrace(job.program, 'timeout', `wall-clock limit of ${timeoutMs} ms exceeded; the sandbox was killed`));
    }, timeoutMs);
  }

  private listenTo(slot: Slot, sandbox: Sandbox): void {
    sandbox.listen({
      line: (text) => {
        if (slot.sandbox === sandbox) this.onTrace(slot, text);
      },
      gone: () => {
        if (slot.sandbox === sandbox) this.onDeath(slot, sandbox);
      },
    });
  }

  /** A trace line from the slot's sandbox: it answers the oldest program sent there. */
  private onTrace(slot: Slot, line: string): void {
    const job = slot.sent.shift();
    if (!job) {
      // Output nobody asked for: the sandbox can no longer be trusted.
      this.respawn(slot, 'unexpected output');
      return;
    }
    clearTimeout(job.timer);
    let parsed: SandboxReply | null = null;
    try {
      parsed = JSON.parse(line) as SandboxReply | null;
    } catch {
      // Reported below.
    }
    if (parsed === null || typeof parsed !== 'object' || !sameId(parsed.id, job.program.id)) {
      this.respawn(slot, 'malformed output');
      job.settle(failedTrace(job.program, 'crashed', 'the sandbox sent malformed output'));
      return;
    }
    // A sandbox asks to be replaced when its memory grew to the cap, when the program changed
    // process-wide state (the reason names what), or when Pyodide itself failed.
    if (parsed.fatal) this.respawn(slot, 'sandbox failure');
    else if (parsed.recycle) this.respawn(slot, typeof parsed.recycle === 'string' ? parsed.recycle : 'recycle');
    else if (slot.sent[0]) this.startClock(slot, slot.sent[0]);
    const program = job.program;
    job.settle({
      id: program.id,
      source: program.source,
      entry: program.entry,
      status: parsed.status ?? 'crashed',
      message: parsed.message ?? null,
      result: parsed.result ?? null,
      steps: parsed.steps ?? [],
      stdout: parsed.stdout ?? '',
    });
  }

  /** The slot's sandbox died: the program it was running failed; the rest go elsewhere. */
  private onDeath(slot: Slot, sandbox: Sandbox): void {
    const job = slot.sent.shift();
    // A sandbox that dies idle is replaced when the next program needs it (readySandbox).
    if (!job) return;
    clearTimeout(job.timer);
    const stderr = sandbox.stderr;
    this.respawn(slot, 'death');
    const oom = /heap out of memory|memory cap|Cannot enlarge memory/i.test(stderr);
    const why = stderr.trim().split('\n').slice(-2).join(' | ');
    job.settle(failedTrace(job.program, oom ? 'memory_limit' : 'crashed', `the sandbox died${why ? `: ${why.slice(0, 300)}` : ''}`));
  }

  private spawn(): Sandbox {
    const fresh = new Sandbox(this.command, this.config, this.snapshot ? { mode: 'load', snapshot: this.snapshot } : { mode: 'none' });
    fresh.ready.catch(() => undefined);
    return fresh;
  }

  /**
   * Replaces a killed or dead sandbox; programs sent to it that it had not answered are sent back
   * (REQUEUE) to run on a fresh sandbox. After the first replacement the pool keeps one spare
   * sandbox booted, so later replacements are a swap rather than a Pyodide start.
   */
  private respawn(slot: Slot, reason: string): void {
    this.replaced.set(reason, (this.replaced.get(reason) ?? 0) + 1);
    slot.sandbox.kill();
    for (const job of slot.sent.splice(0)) {
      clearTimeout(job.timer);
      job.settle(REQUEUE);
    }
    if (this.closed) return;
    const spare = this.spare;
    slot.sandbox = spare && !spare.exited ? spare : this.spawn();
    this.listenTo(slot, slot.sandbox);
    this.spare = this.spawn();
  }
}
