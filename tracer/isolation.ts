/**
 * Sandbox isolation layers: which ones this machine offers, and the command line that applies them.
 *
 * Pyodide in Node is not a sandbox by itself (untrusted code reaches `process`, `child_process`,
 * the host shell and the network), so each sandbox is a separate Node process wrapped in OS layers.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface IsolationLayer {
  /** Short name, e.g. `network-namespace`. */
  name: string;
  /** The machine offers this layer. */
  available: boolean;
  /** The pool applies it (every available layer is applied). */
  active: boolean;
  /** One line for people: what it does, or why it is missing. */
  detail: string;
}

/** How a sandbox process is started. */
export interface SandboxCommand {
  /** Executable to spawn. */
  file: string;
  /** Its arguments, ending with the sandbox script (the JSON config is appended per process). */
  args: string[];
  layers: IsolationLayer[];
}

/** Unprivileged uid/gid used when running as root (`nobody` on Debian). */
const NOBODY = 65534;

function findBinary(name: string): string | null {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return null;
}

function works(file: string, args: string[]): boolean {
  try {
    const r = spawnSync(file, args, { stdio: 'ignore', timeout: 5000, env: {} });
    return r.status === 0;
  } catch {
    return false;
  }
}

let cached: Promise<IsolationLayer[]> | null = null;

/**
 * Probes each layer once per process (permission model, network namespace, unprivileged user,
 * empty environment, wasm memory cap, step budget).
 */
export function detectIsolation(): Promise<IsolationLayer[]> {
  cached ??= Promise.resolve().then(probeLayers);
  return cached;
}

function probeLayers(): IsolationLayer[] {
  const layers: IsolationLayer[] = [];
  const permission = works(process.execPath, ['--experimental-permission', '--no-warnings', '-e', '0']);
  layers.push({
    name: 'permission-model',
    available: permission,
    active: permission,
    detail: permission
      ? 'node --experimental-permission: reads limited to the Pyodide and tracer files; no writes, child processes, workers or addons'
      : `node ${process.versions.node} has no --experimental-permission`,
  });
  const unshare = findBinary('unshare');
  const netns = unshare !== null && works(unshare, ['-n', '--', 'true']);
  layers.push({
    name: 'network-namespace',
    available: netns,
    active: netns,
    detail: netns
      ? 'unshare -n: the sandbox has its own network namespace with no interfaces up'
      : 'unshare -n is not permitted here (needs root or unprivileged user namespaces); Node 20 has no network permission',
  });
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const setpriv = findBinary('setpriv');
  const dropWorks = isRoot && setpriv !== null && works(setpriv, [...setprivArgs(), 'true']);
  layers.push({
    name: 'unprivileged-user',
    available: !isRoot || dropWorks,
    active: !isRoot || dropWorks,
    detail: !isRoot
      ? `already running as uid ${process.getuid?.() ?? '?'}`
      : dropWorks
        ? `setpriv: the sandbox runs as uid/gid ${NOBODY} with no supplementary groups`
        : 'running as root and setpriv is unavailable: the sandbox would run as root',
  });
  layers.push({ name: 'empty-environment', available: true, active: true, detail: 'the sandbox starts with no environment variables' });
  layers.push({
    name: 'wasm-memory-cap',
    available: true,
    active: true,
    detail: 'WebAssembly.Memory.prototype.grow refuses to grow past the memory limit (MemoryError in Python)',
  });
  layers.push({
    name: 'step-budget',
    available: true,
    active: true,
    detail: 'sys.monitoring counts events and stops the program at the step limit, even inside try/except BaseException',
  });
  return layers;
}

function setprivArgs(): string[] {
  return [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'];
}

/** Paths the sandbox process must read. */
export interface SandboxFiles {
  /** The pyodide package directory. */
  pyodideDir: string;
  /** tracer/sandbox.mjs */
  sandboxScript: string;
  /** tracer/tracer.py */
  tracerPath: string;
}

/**
 * The command that starts one sandbox with every available layer.
 * `strict` throws when a layer is unavailable.
 */
export async function sandboxCommand(opts: { files: SandboxFiles; strict: boolean }): Promise<SandboxCommand> {
  const layers = await detectIsolation();
  const missing = layers.filter((l) => !l.available);
  if (opts.strict && missing.length > 0) {
    throw new Error(
      `isolation 'strict' refused to start: unavailable layer(s): ${missing.map((l) => `${l.name} (${l.detail})`).join('; ')}. ` +
        "Use isolation 'best-effort' to run without them.",
    );
  }
  const on = (name: string): boolean => layers.some((l) => l.name === name && l.active);
  const prefix: string[] = [];
  if (on('network-namespace')) prefix.push(findBinary('unshare') as string, '-n', '--');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && on('unprivileged-user')) prefix.push(findBinary('setpriv') as string, ...setprivArgs());
  const nodeArgs = ['--no-warnings', '--disallow-code-generation-from-strings', '--max-old-space-size=256'];
  if (on('permission-model')) {
    nodeArgs.push(
      '--experimental-permission',
      `--allow-fs-read=${opts.files.pyodideDir}`,
      `--allow-fs-read=${opts.files.sandboxScript}`,
      `--allow-fs-read=${opts.files.tracerPath}`,
    );
  }
  const all = [...prefix, process.execPath, ...nodeArgs, opts.files.sandboxScript];
  return { file: all[0] as string, args: all.slice(1), layers };
}
