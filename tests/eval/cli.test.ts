import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvalReport } from '../../eval/report.js';
import { SPECIAL_TOKEN_LIST, traceToText } from '../../training/sequence.js';
import { spawn } from 'node:child_process';
import { CRUXEVAL_PATH, REPO_ROOT, cruxevalAvailable } from '../helpers.js';
import { writeLoopCorpus, writeRandomCheckpoint } from './fixtures.js';

/**
 * Runs the built CLI without blocking the test worker (a synchronous spawn that
 * outlasts vitest's RPC timeout fails the run on a loaded machine).
 */
function runCli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'execwm.js'), ...args], { cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr }));
  });
}

let root: string;
let corpus: string;
let trainOnly: string;
let model: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'execwm-eval-cli-'));
  corpus = join(root, 'corpus');
  trainOnly = join(root, 'train-only');
  model = join(root, 'run');
  const traces = await writeLoopCorpus(corpus, { count: 80 });
  await writeLoopCorpus(trainOnly, { count: 10, onlySplit: 'train' });
  await writeRandomCheckpoint(model, { texts: traces.map((t) => traceToText(t, { diff: true })), blockSize: 256, diff: true });
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('execwm eval', { timeout: 180_000 }, () => {
  it('writes report.json and report.html and prints the model beside the baselines', async () => {
    const out = join(root, 'out');
    const res = await runCli(['eval', '--model', model, '--corpus', corpus, '--split', 'test', '--out', out, '--limit', '3', '--quiet']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/variable accuracy\s+\d+\.\d%\s+\d+\.\d%\s+\d+\.\d%/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as EvalReport;
    expect(report.corpus).toMatchObject({ split: 'test', traces: 3 });
    expect(report.model.diff).toBe(true);
    expect(report.model.id).toMatch(/^[0-9a-f]{12}$/);
    expect(report.teacherForced!.model.frames).toBeGreaterThan(0);
    expect(report.coverage.framesSkipped).toBe(0);
    expect(report.output!.mode).toBe('direct');
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('id="viewer-data"');
  });

  it('with --rollout scores outputs both directly and from the rollouts; --baselines-from fits baselines on another corpus', async () => {
    const testOnly = join(root, 'test-only');
    await writeLoopCorpus(testOnly, { count: 80, onlySplit: 'test' });
    const alone = join(root, 'out-alone');
    const borrowed = join(root, 'out-borrowed');
    const common = ['eval', '--model', model, '--corpus', testOnly, '--split', 'test', '--limit', '2', '--rollout', '--max-rollout-tokens', '64', '--quiet'];
    for (const [out, extra] of [[alone, []], [borrowed, ['--baselines-from', corpus]]] as const) {
      const res = await runCli([...common, ...extra, '--out', out]);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(0);
      expect(res.stdout).toMatch(/output prediction \(direct\)[\s\S]*output prediction \(rollout\)/);
    }
    const read = (dir: string) => JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as EvalReport;
    const a = read(alone);
    const b = read(borrowed);
    expect(a.output!.mode).toBe('direct');
    expect(a.rolloutOutput!.mode).toBe('rollout');
    expect(a.rolloutOutput!.model.programs).toBe(a.output!.model.programs);
    // No train split to take the most frequent return value from, unless borrowed.
    expect(a.output!.baseline).toBeNull();
    expect(b.output!.baseline).not.toBeNull();
    expect(b.rolloutOutput!.baseline).toEqual(b.output!.baseline);
    const missing = await runCli([...common, '--baselines-from', join(root, 'nope'), '--out', join(root, 'out-missing')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.skipIf(!cruxevalAvailable())('scores output prediction on CRUXEval problems', async () => {
    const out = join(root, 'crux');
    const res = await runCli(['eval', '--model', model, '--cruxeval', CRUXEVAL_PATH, '--limit', '4', '--out', out, '--quiet']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/output prediction \(direct\), 4 programs/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as EvalReport;
    expect(report.output!.model.programs).toBe(4);
    expect(report.config).toMatchObject({ problems: 4, pythonEquality: 'sandbox' });
    const lines = readFileSync(join(out, 'predictions.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(['sample_0', 'sample_1', 'sample_2', 'sample_3']);
  });

  it('with --tasks scores every derived task beside its baseline in report.json, report.html and the summary', async () => {
    const out = join(root, 'out-tasks');
    const res = await runCli(['eval', '--model', model, '--corpus', corpus, '--out', out, '--limit', '2', '--tasks', 'all', '--quiet']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as EvalReport;
    const tasks = report.tasks!;
    expect(Object.keys(tasks.tasks)).toEqual(['step', 'next', 'out', 'until', 'back', 'coverage', 'nextline', 'value', 'output', 'input']);
    for (const f of Object.values(tasks.tasks)) {
      expect(f.examples).toBeGreaterThan(0);
      expect(f.baseline.value).not.toBeNull();
    }
    // On these loops the copy baselines are right now and then: next line after `s = k` is the loop header.
    expect(tasks.tasks.nextline!.baseline.value).toBeGreaterThan(0);
    expect(tasks.tasks.coverage!.baseline.value).toBe(1);
    expect(tasks.incrementalConsistency!.chains).toBe(2);
    expect(report.config.tasks).toHaveLength(10);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const t of Object.keys(tasks.tasks)) expect(html).toContain(`id="task-${t}"`);
    expect(res.stdout).toMatch(/^until\s+\d+\s+frame exact match\s+\d+\.\d%\s+\d+\.\d%\s+line L, state copied$/m);
    expect(res.stdout).toMatch(/^consistency\s+2\s+incremental consistency/m);
    const bad = await runCli(['eval', '--model', model, '--corpus', corpus, '--tasks', 'jump', '--quiet']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr.split('\n')[0]).toMatch(/^execwm: --tasks: Unknown task "jump"/);
  });

  it('says in one line that the model is missing', async () => {
    const res = await runCli(['eval', '--model', join(root, 'nope'), '--corpus', corpus]);
    expect(res.status).toBe(1);
    expect(res.stderr.trim().split('\n')).toEqual([`execwm: no model at ${join(root, 'nope')} (no checkpoint.json there or in ${join(root, 'nope', 'checkpoint')})`]);
  });

  it('says in one line that the corpus has no such split', async () => {
    const res = await runCli(['eval', '--model', model, '--corpus', trainOnly, '--split', 'test', '--backend', 'cpu']);
    expect(res.status).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/^execwm: corpus .* has no traces in split test \(train \d+, val 0, test 0\)/);
  });

  it('refuses a model whose tokenizer has other special tokens', async () => {
    const other = join(root, 'other-run');
    await writeRandomCheckpoint(other, { texts: ['def f(): pass'], blockSize: 64, specialTokens: SPECIAL_TOKEN_LIST.slice(0, -2) });
    const res = await runCli(['eval', '--model', other, '--corpus', corpus, '--backend', 'cpu']);
    expect(res.status).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/^execwm: tokenizer mismatch: /);
  });

  it('rejects asking for a corpus and CRUXEval at once as bad usage', async () => {
    const res = await runCli(['eval', '--model', model, '--corpus', corpus, '--cruxeval', 'x.jsonl']);
    expect(res.status).toBe(2);
    expect(res.stderr.split('\n')[0]).toBe('execwm: give exactly one of --corpus DIR or --cruxeval FILE');
  });
});
