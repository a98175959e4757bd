import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, runCli } from '../helpers.js';

const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('execwm CLI', () => {
  it('prints help listing the commands and exits 0', () => {
    const res = runCli(['--help']);
    expect(res.status).toBe(0);
    expect(res.stdout).toContain('Usage: execwm');
    expect(res.stdout).toContain('doctor');
  });

  it('prints usage when run without arguments', () => {
    const res = runCli([]);
    expect(res.status).toBe(0);
    expect(res.stdout).toContain('Usage: execwm');
  });

  it('stops quietly with exit 0 when the reader of its output goes away (`| head`)', () => {
    // `true` exits before node has started, so every write of the help meets a closed pipe.
    const res = spawnSync('bash', ['-c', `"${process.execPath}" bin/execwm.js train --help | true; echo "status \${PIPESTATUS[0]}"`], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(res.stdout.trim()).toBe('status 0');
    expect(res.stderr).toBe('');
  });

  it('prints the package version', () => {
    const res = runCli(['--version']);
    expect(res.status).toBe(0);
    expect(res.stdout.trim()).toBe(version);
  });

  it('rejects an unknown command with one line of cause, usage and exit 2', () => {
    const res = runCli(['frobnicate']);
    expect(res.status).toBe(2);
    const [first] = res.stderr.split('\n');
    expect(first).toBe("execwm: unknown command 'frobnicate'");
    expect(res.stderr).toContain('Usage: execwm');
    expect(res.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it('rejects an unknown flag of a command with that command\'s usage and exit 2', () => {
    const res = runCli(['doctor', '--no-such-flag']);
    expect(res.status).toBe(2);
    expect(res.stderr.split('\n')[0]).toBe("execwm: unknown option '--no-such-flag'");
    expect(res.stderr).toContain('Usage: execwm doctor');
  });

  it('explains each command with --help', () => {
    const res = runCli(['doctor', '--help']);
    expect(res.status).toBe(0);
    expect(res.stdout).toContain('--json');
    expect(res.stdout).toContain('Exit status');
  });
});
