import { beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { runCli } from '../helpers.js';

const require = createRequire(import.meta.url);

interface Report {
  node: string;
  cores: number;
  pyodide: { version: string; loadsOffline: boolean; loadMs: number };
  checks: { name: string; status: string; detail: string }[];
  backends: { name: string; usable: boolean; detail: string; fma?: boolean }[];
  fmaKernels: boolean;
  isolation: { name: string; available: boolean; active: boolean; detail: string }[];
  ready: boolean;
  reasons: string[];
}

function installed(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

describe('execwm doctor', () => {
  let status = -1;
  let report: Report;
  beforeAll(() => {
    const res = runCli(['doctor', '--json']);
    status = res.status;
    report = JSON.parse(res.stdout) as Report;
  });

  it('reports the machine as JSON with every field and exits 0 when ready', () => {
    expect(report.ready).toBe(true);
    expect(status).toBe(0);
    expect(report.node).toBe(process.versions.node);
    expect(report.cores).toBeGreaterThan(0);
    expect(report.pyodide.loadsOffline).toBe(true);
    expect(report.pyodide.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.pyodide.loadMs).toBeGreaterThan(0);
    const names = report.checks.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['node', 'pyodide', 'cores']));
    for (const c of report.checks) expect(['ok', 'warn', 'fail']).toContain(c.status);
  });

  it('lists every tfjs backend, with wasm usable and its SIMD/threads state', () => {
    expect(report.backends.map((b) => b.name)).toEqual(['node-gpu', 'node', 'wasm', 'cpu']);
    const wasm = report.backends.find((b) => b.name === 'wasm');
    expect(wasm?.usable).toBe(true);
    expect(wasm?.detail).toMatch(/simd/);
    expect(wasm?.detail).toMatch(/thread/);
  });

  it('says whether the wasm matrix kernel runs on fused multiply-add, as execwm sets the V8 flag itself', () => {
    // Node 20 validates relaxed SIMD only behind a V8 flag, which the CLI sets at start: the
    // child here gets no flag from us. Node 22+ validates it without one.
    expect(report.fmaKernels).toBe(true);
    expect(report.backends.find((b) => b.name === 'wasm')?.fma).toBe(true);
    const check = report.checks.find((c) => c.name === 'wasm kernels');
    expect(check).toMatchObject({ status: 'ok', detail: expect.stringMatching(/fused multiply-add/) });
  });

  it('treats the optional native tfjs packages as absent when they are not installed', () => {
    for (const [name, pkg] of [
      ['node-gpu', '@tensorflow/tfjs-node-gpu'],
      ['node', '@tensorflow/tfjs-node'],
    ] as const) {
      if (installed(pkg)) continue;
      const probe = report.backends.find((b) => b.name === name);
      expect(probe?.usable).toBe(false);
      expect(probe?.detail).toMatch(/not installed|failed to load/);
    }
    expect(report.ready).toBe(true);
  });

  it('reports the sandbox layers this machine allows', () => {
    expect(report.isolation.map((l) => l.name)).toEqual(
      expect.arrayContaining(['permission-model', 'network-namespace', 'unprivileged-user']),
    );
    for (const layer of report.isolation) {
      expect(typeof layer.available).toBe('boolean');
      expect(layer.detail.length).toBeGreaterThan(0);
    }
  });

  it('prints a table for people', () => {
    const res = runCli(['doctor']);
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/ok\s+pyodide\s+Pyodide/);
    expect(res.stdout).toMatch(/tfjs wasm/);
    expect(res.stdout).toContain('ready: the pipeline can run here');
  });
});
