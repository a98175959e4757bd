import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, runCliAsync } from '../helpers.js';
import { demoFigures, formatDemoTable } from '../../src/commands/demo.js';

describe('execwm demo', () => {
  const out = mkdtempSync(join(tmpdir(), 'execwm-demo-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs trace, train and eval end to end and prints the table beside the baselines', async () => {
    const res = await runCliAsync(['demo', '--quick', '--programs', '40', '--steps', '4', '--eval-limit', '3', '--rollout-limit', '2', '--out', out, '--quiet'], {
      timeoutMs: 600_000,
    });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/variable accuracy\s+\S+%\s+\S+%\s+copy-previous-state/);
    expect(res.stdout).toMatch(/state exact match/);
    expect(res.stdout).toMatch(/output accuracy \(direct\)/);
    expect(res.stdout).toContain(join(out, 'eval', 'report.html'));
    const report = JSON.parse(readFileSync(join(out, 'eval', 'report.json'), 'utf8')) as { corpus: { split: string; traces: number }; rolloutOutput: unknown };
    expect(report.corpus).toMatchObject({ split: 'test', traces: 3 });
    expect(report.rolloutOutput).toBeNull();
    // Rollouts run on their own seeded sample, reported apart and named in the table with their count.
    const rolled = JSON.parse(readFileSync(join(out, 'eval-rollout', 'report.json'), 'utf8')) as { corpus: { traces: number }; rolloutOutput: { model: { programs: number } } };
    expect(rolled.corpus.traces).toBe(2);
    expect(res.stdout).toMatch(/held-out synthetic easy programs \(3 of the test split\)/);
    expect(res.stdout).toMatch(new RegExp(`output accuracy \\(rollout, ${rolled.rolloutOutput.model.programs} programs\\)`));
  }, 600_000);

  it('refuses a bad flag value with exit 2', () => {
    const res = runCli(['demo', '--steps', '-3']);
    expect(res.status).toBe(2);
    expect(res.stderr.split('\n')[0]).toBe('execwm: --steps must be a positive integer, got "-3"');
  });
});

describe('demo table', () => {
  it('says whether the model beats each baseline', () => {
    const figures = demoFigures({
      reportVersion: 1,
      model: { id: 'm', params: 1, step: 1 },
      corpus: { id: 'c', split: 'test', traces: 1 },
      teacherForced: {
        model: { frames: 1, variableAccuracy: 0.9, stateExactMatch: 0.2, undecodableShare: 0 },
        baselines: { copyPrevious: { variableAccuracy: 0.8, stateExactMatch: 0.4 } },
      },
      rollout: null,
      output: {
        mode: 'direct',
        model: { programs: 1, equalAccuracy: 0.5, exactAccuracy: 0.5 },
        baseline: { programs: 1, equalAccuracy: 0.1, exactAccuracy: 0.1 },
        flags: [],
      },
      rolloutOutput: null,
    });
    const table = formatDemoTable(figures);
    expect(table).toMatch(/variable accuracy\s+90\.0%\s+80\.0%\s+copy-previous-state\s+yes/);
    expect(table).toMatch(/state exact match\s+20\.0%\s+40\.0%\s+copy-previous-state\s+NO/);
    expect(table).toMatch(/output accuracy \(direct\)\s+50\.0%\s+10\.0%/);
  });
});
