import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers.js';

describe('execwm doctor', () => {
  it('reports the machine as JSON with every field and exits 0 when ready', () => {
    const res = runCli(['doctor', '--json']);
    const report = JSON.parse(res.stdout) as Record<string, unknown> & {
      pyodide: { version: string; loadsOffline: boolean; loadMs: number };
      checks: { name: string; status: string; detail: string }[];
      ready: boolean;
      reasons: string[];
    };
    expect(report.ready).toBe(true);
    expect(res.status).toBe(0);
    expect(report.node).toBe(process.versions.node);
    expect(report.cores).toBeGreaterThan(0);
    expect(report.pyodide.loadsOffline).toBe(true);
    expect(report.pyodide.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.pyodide.loadMs).toBeGreaterThan(0);
    const names = report.checks.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['node', 'pyodide', 'cores']));
    for (const c of report.checks) expect(['ok', 'warn', 'fail']).toContain(c.status);
  });

  it('prints a table for people', () => {
    const res = runCli(['doctor']);
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/ok\s+pyodide\s+Pyodide/);
    expect(res.stdout).toContain('ready: the pipeline can run here');
  });
});
