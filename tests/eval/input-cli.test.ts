/**
 * `execwm eval --tasks input` end to end: a tiny model trained a few steps with input
 * prediction mixed in, scored on a corpus (the answers run in the sandbox) and on
 * CRUXEval problems traced on the fly.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SPLIT_RATIOS, writeCorpus, type CorpusTrace } from '../../corpus/index.js';
import { splitOf } from '../../corpus/splits.js';
import type { EvalReport } from '../../eval/report.js';
import { train } from '../../training/train.js';
import { testConfig } from '../corpus/helpers.js';
import { CRUXEVAL_PATH, cruxevalAvailable, runCliAsync } from '../helpers.js';
import { loopTrace } from './fixtures.js';

let root: string;
let corpus: string;
let model: string;
let testTraces: CorpusTrace[];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'execwm-input-'));
  corpus = join(root, 'corpus');
  model = join(root, 'run');
  // f(n) sums range(n) from a start; n = 2 is the most frequent input. Test entries are
  // spelled `f(n=2)`, so the baseline's `2` is right by value and never by text.
  const traces: CorpusTrace[] = [];
  for (let k = 0; k < 60; k++) {
    const n = k % 3 === 0 ? 3 : 2;
    const t = loopTrace({ start: k, n });
    const split = splitOf(t.source, DEFAULT_SPLIT_RATIOS);
    traces.push({ ...t, entry: split === 'test' ? `f(n=${n})` : t.entry, split, origin: 'synthetic:easy' });
  }
  testTraces = traces.filter((t) => t.split === 'test');
  await writeCorpus({ dir: corpus, config: testConfig({ inputsPerShard: 16 }), traces });
  await train({
    corpus,
    out: model,
    config: { preset: 'tiny', vocabSize: 320, steps: 3, batchSize: 4, evalEvery: 3, evalBatches: 1, checkpointEvery: 3, backend: 'wasm', tasks: { input: 1, next: 1 } },
  });
}, 300_000);

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

const readReport = (dir: string) => JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as EvalReport;

describe('execwm eval --tasks input', { timeout: 300_000 }, () => {
  it('runs the answers in the sandbox and puts the most frequent train input beside them', async () => {
    expect(testTraces.length).toBeGreaterThanOrEqual(4);
    const out = join(root, 'out');
    const res = await runCliAsync(['eval', '--model', model, '--corpus', corpus, '--tasks', 'input', '--out', out, '--backend', 'wasm', '--quiet']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const report = readReport(out);
    expect(report.config.tasks).toEqual(['input']);
    const f = report.tasks!.tasks.input!;
    expect(f.examples).toBe(testTraces.length);
    expect(f.metric).toBe('f(input) == output');
    expect(f.model).toBeGreaterThanOrEqual(0);
    // `2` is right (by ==) exactly on the test programs called with n=2, identical in text on none.
    const withTwo = testTraces.filter((t) => t.entry === 'f(n=2)').length;
    expect(withTwo).toBeGreaterThan(0);
    expect(f.baseline).toEqual({ name: 'most frequent input', value: withTwo / testTraces.length });
    expect(f.exactText!.baseline).toBe(0);
    expect(res.stdout).toMatch(/^input\s+\d+\s+f\(input\) == output\s+\d+\.\d%\s+\d+\.\d%\s+most frequent input$/m);
    expect(res.stdout).toMatch(/^\s+input text identical\s+\d+\.\d%\s+0\.0%/m);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('id="task-input"');
  });

  it('exports the input examples as prompt/completion pairs', async () => {
    const res = await runCliAsync(['export', corpus, '--format', 'prompts', '--tasks', 'input', '--split', 'test']);
    expect(res.status).toBe(0);
    const records = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { task: string; command: string; prompt: string; completion: string });
    expect(records).toHaveLength(testTraces.length);
    for (const r of records) {
      expect(r).toMatchObject({ task: 'input', command: 'input f' });
      expect(r.completion).toMatch(/^n=[23]<\|frame_sep\|><\|trace_end\|>$/);
      expect(r.prompt).not.toContain('f(n=');
    }
  });

  it.skipIf(!cruxevalAvailable())('on CRUXEval traces the problems in the sandbox and scores the tasks on them', async () => {
    const out = join(root, 'crux');
    const res = await runCliAsync(['eval', '--model', model, '--cruxeval', CRUXEVAL_PATH, '--limit', '3', '--tasks', 'input,next', '--baselines-from', corpus, '--out', out, '--backend', 'wasm']);
    expect(res.status).toBe(0);
    // Progress goes to stderr: the tracing of the problems among it.
    expect(res.stderr).toMatch(/trace CRUXEval: 3\/3 programs/);
    const report = readReport(out);
    expect(report.config).toMatchObject({ problems: 3, tasks: ['input', 'next'], baselinesFrom: corpus, traced: { programs: 3 } });
    // All three return a value, unless a sandbox ran out of wall-clock time on a loaded machine.
    const { notOk } = report.config.traced as { notOk: number };
    expect(report.output!.model.programs).toBe(3);
    const { input, next } = report.tasks!.tasks;
    expect(input!.examples).toBeGreaterThan(0);
    expect(input!.examples + report.tasks!.skipped).toBeGreaterThanOrEqual(3 - notOk);
    expect(next!.examples).toBeGreaterThan(0);
    // The baseline `2` runs on CRUXEval's functions too (none of the first three returns their output for it).
    expect(input!.baseline.value).toBe(0);
    expect(res.stdout).toMatch(/^input\s+\d+\s+f\(input\) == output/m);
    expect(report.flags.some((f) => f.includes('--baselines-from'))).toBe(false);
  });

  it.skipIf(!cruxevalAvailable())('on CRUXEval without a train split says the baselines have none', async () => {
    const out = join(root, 'crux-alone');
    const res = await runCliAsync(['eval', '--model', model, '--cruxeval', CRUXEVAL_PATH, '--limit', '2', '--tasks', 'input', '--out', out, '--backend', 'wasm', '--quiet']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const report = readReport(out);
    expect(report.tasks!.tasks.input!.baseline.value).toBeNull();
    expect(report.flags).toContain(
      'tasks on CRUXEval: no train split to fit the most-frequent baselines (value, output, input) on; give --baselines-from the training corpus',
    );
  });

  it('refuses --baselines-from with --cruxeval but no --tasks as bad usage', async () => {
    const refused = await runCliAsync(['eval', '--model', model, '--cruxeval', join(root, 'any.jsonl'), '--baselines-from', corpus]);
    expect(refused.status).toBe(2);
    expect(refused.stderr.split('\n')[0]).toBe('execwm: --baselines-from with --cruxeval fits the baselines of --tasks; give --tasks too');
  });
});
