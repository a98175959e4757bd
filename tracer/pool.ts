/**
 * A pool of sandbox processes that trace programs in parallel.
 *
 * Each sandbox (tracer/sandbox.mjs) is a restricted Node process running Pyodide; the pool sends
 * one program at a time to each, enforces the wall-clock limit by killing the process from
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

/** One sandbox process and its line-oriented stdout. */
class Sandbox {
  readonly proc: ChildProcess;
  readonly ready: Promise<Ready>;
  /** For `make` sandboxes: the memory snapshot they write to fd 3 (null if none came). */
  readonly snapshot: Promise<Buffer | null>;
  private lines: string[] = [];
  private partial = '';
  private waiter: ((line: string | null) => void) | null = null;
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
            fd3.on('data', (c: Buffer) => chunks.push(c));
            fd3.on('end', () => res(chunks.length > 0 ? Buffer.concat(chunks) : null));
            fd3.on('close', () => res(chunks.length > 0 ? Buffer.concat(chunks) : null));
          })
        : Promise.resolve(null);
    this.proc.stdout?.setEncoding('utf8');
    this.proc.stdout?.on('data', (chunk: string) => this.onData(chunk));
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    // A dead sandbox's stdin errors (EPIPE) when written; the exit handler reports it instead.
    this.proc.stdin?.on('error', () => undefined);
    this.proc.on('exit', () => {
      this.dead = true;
      this.wake(null);
    });
    this.proc.on('error', () => {
      this.dead = true;
      this.wake(null);
    });
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
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) {
      if (this.waiter) this.wake(p);
      else this.lines.push(p);
    }
  }

  private wake(line: string | null): void {
    const w = this.waiter;
    this.waiter = null;
    w?.(line);
  }

  /** The next stdout line, or null once the process is gone. */
  nextLine(): Promise<string | null> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.dead) return Promise.resolve(null);
    return new Promise((res) => {
      this.waiter = res;
    });
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  kill(): void {
    if (!this.dead) this.proc.kill('SIGKILL');
  }
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
  private readonly slots: Sandbox[];
  private readonly idle: number[];
  private readonly limit: LimitFunction;
  private closed = false;
  /** A booted sandbox waiting to replace the next one that is killed. */
  private spare: Sandbox | null = null;

  private constructor(opts: { limits: TraceLimits; command: SandboxCommand; config: object; slots: Sandbox[]; ready: Ready }) {
    this.limits = opts.limits;
    this.command = opts.command;
    this.config = opts.config;
    this.slots = opts.slots;
    this.idle = opts.slots.map((_, i) => i);
    this.limit = pLimit(opts.slots.length);
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
    const slots = Array.from({ length: workers }, (_, i) => new Sandbox(command, config, { mode: i === 0 ? 'make' : 'none' }));
    let ready: Ready;
    try {
      [ready] = (await Promise.all(slots.map((s) => s.ready))) as [Ready];
    } catch (err) {
      for (const s of slots) s.kill();
      throw err;
    }
    const pool = new TracerPool({ limits, command, config, slots, ready });
    pool.snapshot = await (slots[0] as Sandbox).snapshot;
    return pool;
  }

  /** Process ids of the current sandboxes (for resource measurements). */
  get pids(): number[] {
    return this.slots.map((s) => s.proc.pid ?? -1);
  }

  /** Traces one program. Program failures are statuses; this rejects only on misuse or a closed pool. */
  trace(program: Program): Promise<Trace> {
    checkProgram(program);
    if (this.closed) return Promise.reject(new Error('TracerPool is closed'));
    return this.limit(() => this.runOnIdle(program));
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
    const all = this.spare ? [...this.slots, this.spare] : this.slots;
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

  private async runOnIdle(program: Program): Promise<Trace> {
    const slot = this.idle.pop();
    if (slot === undefined) throw new Error('no idle sandbox although the limiter allowed a run');
    try {
      return await this.runOn(slot, program);
    } finally {
      this.idle.push(slot);
    }
  }

  private spawn(): Sandbox {
    const fresh = new Sandbox(this.command, this.config, this.snapshot ? { mode: 'load', snapshot: this.snapshot } : { mode: 'none' });
    fresh.ready.catch(() => undefined);
    return fresh;
  }

  /**
   * Replaces a killed or dead sandbox. After the first replacement the pool keeps one spare
   * sandbox booted, so later replacements are a swap rather than a Pyodide start.
   */
  private respawn(slot: number): void {
    this.slots[slot]?.kill();
    if (this.closed) return;
    const spare = this.spare;
    this.slots[slot] = spare && !spare.exited ? spare : this.spawn();
    this.spare = this.spawn();
  }

  private async runOn(slot: number, program: Program): Promise<Trace> {
    let sandbox = this.slots[slot] as Sandbox;
    try {
      await sandbox.ready;
    } catch {
      // A replacement that failed to boot gets one more chance before the program is reported.
      this.respawn(slot);
      sandbox = this.slots[slot] as Sandbox;
      try {
        await sandbox.ready;
      } catch (err) {
        return failedTrace(program, 'crashed', `sandbox failed to start: ${(err as Error).message}`);
      }
    }
    const limits = this.limits;
    sandbox.send(JSON.stringify({ id: program.id, source: program.source, entry: program.entry, limits }));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((res) => {
      timer = setTimeout(() => res('timeout'), limits.timeoutMs);
    });
    const line = await Promise.race([sandbox.nextLine(), timedOut]);
    clearTimeout(timer);
    if (line === 'timeout') {
      this.respawn(slot);
      return failedTrace(program, 'timeout', `wall-clock limit of ${limits.timeoutMs} ms exceeded; the sandbox was killed`);
    }
    if (line === null) {
      const stderr = sandbox.stderr;
      this.respawn(slot);
      const oom = /heap out of memory|memory cap|Cannot enlarge memory/i.test(stderr);
      const why = stderr.trim().split('\n').slice(-2).join(' | ');
      return failedTrace(program, oom ? 'memory_limit' : 'crashed', `the sandbox died${why ? `: ${why.slice(0, 300)}` : ''}`);
    }
    let parsed: Partial<Trace> & { recycle?: boolean; fatal?: boolean };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      this.respawn(slot);
      return failedTrace(program, 'crashed', 'the sandbox sent malformed output');
    }
    if (parsed.recycle || parsed.fatal) this.respawn(slot);
    return {
      id: program.id,
      source: program.source,
      entry: program.entry,
      status: parsed.status ?? 'crashed',
      message: parsed.message ?? null,
      result: parsed.result ?? null,
      steps: parsed.steps ?? [],
      stdout: parsed.stdout ?? '',
    };
  }
}
