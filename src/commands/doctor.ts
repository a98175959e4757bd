/**
 * `execwm doctor`: what this machine can do, and whether the pipeline can run here.
 */
import { availableParallelism, cpus } from 'node:os';
import type { Command } from 'commander';
import { VERSION } from '../version.js';
import type { BackendProbe } from '../../training/backend.js';
import { detectIsolation, type IsolationLayer } from '../../tracer/isolation.js';

export interface DoctorCheck {
  /** Short name, e.g. `pyodide`. */
  name: string;
  /** `ok`: usable; `warn`: works with a limitation; `fail`: the pipeline cannot run. */
  status: 'ok' | 'warn' | 'fail';
  /** One line for people. */
  detail: string;
}

export interface DoctorReport {
  execwm: string;
  node: string;
  platform: string;
  cores: number;
  cpuModel: string;
  pyodide: { version: string | null; python: string | null; loadsOffline: boolean; loadMs: number | null; error: string | null };
  /** Each tfjs backend: usable here or why not. */
  backends: BackendProbe[];
  /** True when the wasm backend's matrix kernel runs on fused multiply-add (relaxed SIMD). */
  fmaKernels: boolean;
  /** Each sandbox isolation layer: offered by this machine, applied by the pool. */
  isolation: IsolationLayer[];
  checks: DoctorCheck[];
  /** True when tracing, training and evaluation can all run here. */
  ready: boolean;
  /** Why not, when `ready` is false. */
  reasons: string[];
}

async function probePyodide(): Promise<DoctorReport['pyodide']> {
  const start = performance.now();
  try {
    const { loadPyodide } = await import('pyodide');
    const py = await loadPyodide({ env: { PYTHONHASHSEED: '0' } });
    const loadMs = Math.round(performance.now() - start);
    const python = String(py.runPython('import sys; sys.version.split()[0]'));
    return { version: py.version, python, loadsOffline: true, loadMs, error: null };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    return { version: null, python: null, loadsOffline: false, loadMs: null, error: msg.split('\n')[0] ?? msg };
  }
}

function nodeMajor(): number {
  return Number(process.versions.node.split('.')[0]);
}

export async function runDoctor(): Promise<DoctorReport> {
  const pyodide = await probePyodide();
  const { probeBackends } = await import('../../training/backend.js');
  const backends = await probeBackends();
  const isolation = await detectIsolation();
  const checks: DoctorCheck[] = [];
  checks.push({
    name: 'node',
    status: nodeMajor() >= 20 ? 'ok' : 'fail',
    detail: `Node ${process.versions.node}${nodeMajor() >= 20 ? '' : ' (execwm needs Node >= 20)'}`,
  });
  checks.push({
    name: 'pyodide',
    status: pyodide.loadsOffline ? 'ok' : 'fail',
    detail: pyodide.loadsOffline
      ? `Pyodide ${pyodide.version} (CPython ${pyodide.python}) loads offline in ${pyodide.loadMs} ms`
      : `Pyodide does not load: ${pyodide.error}`,
  });
  const cores = availableParallelism();
  checks.push({ name: 'cores', status: 'ok', detail: `${cores} cores available` });
  for (const b of backends) {
    checks.push({ name: `tfjs ${b.name}`, status: b.usable ? 'ok' : 'warn', detail: b.usable ? `usable: ${b.detail}` : `unusable: ${b.detail}` });
  }
  const wasm = backends.find((b) => b.name === 'wasm');
  const fmaKernels = wasm?.fma === true;
  if (wasm?.usable) {
    checks.push({
      name: 'wasm kernels',
      status: fmaKernels ? 'ok' : 'warn',
      detail: fmaKernels
        ? 'matrix products on fused multiply-add (wasm relaxed SIMD)'
        : 'matrix products on separate multiply and add (this runtime does not validate wasm relaxed SIMD): training runs slower',
    });
  }
  // Training can always fall back to the pure-JS backend, but below wasm it is too slow to be useful.
  if (!backends.some((b) => b.usable && b.name !== 'cpu')) {
    checks.push({ name: 'training', status: 'fail', detail: 'no fast tfjs backend (node-gpu, node or wasm) is usable' });
  }
  for (const layer of isolation) {
    checks.push({
      name: `sandbox ${layer.name}`,
      status: layer.active ? 'ok' : 'warn',
      detail: `${layer.active ? 'active' : layer.available ? 'available, not applied' : 'unavailable'}: ${layer.detail}`,
    });
  }
  const reasons = checks.filter((c) => c.status === 'fail').map((c) => `${c.name}: ${c.detail}`);
  return {
    execwm: VERSION,
    node: process.versions.node,
    platform: `${process.platform}-${process.arch}`,
    cores,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    pyodide,
    backends,
    fmaKernels,
    isolation,
    checks,
    ready: reasons.length === 0,
    reasons,
  };
}

function printTable(report: DoctorReport): void {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const mark = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;
  const out = [`execwm ${report.execwm} on ${report.platform}, ${report.cpuModel}`, ''];
  for (const c of report.checks) out.push(`  ${mark[c.status]}  ${c.name.padEnd(width)}  ${c.detail}`);
  out.push('');
  out.push(report.ready ? 'ready: the pipeline can run here' : `not ready:\n  ${report.reasons.join('\n  ')}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check what this machine can do: Node, Pyodide, tfjs backends, cores, sandbox layers')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExit status: 0 when the pipeline can run here, 1 otherwise (the reasons are printed).')
    .action(async (opts: { json?: boolean }) => {
      const report = await runDoctor();
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printTable(report);
      process.exitCode = report.ready ? 0 : 1;
    });
}
