import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Trace } from '../../src/schema.js';
import { MostFrequentValues } from '../../eval/baselines.js';
import { readReport, renderSummary, writeReport, type EvalReport } from '../../eval/report.js';
import { TeacherForcedEvaluator } from '../../eval/teacher.js';
import { requiredInCi } from '../helpers.js';
import { step, v } from './fixtures.js';

const TRACE: Trace = {
  id: 'sum-loop',
  // A closing script tag in the source must not break the page.
  source: 'def f(n):\n    s = 0  # </script>\n    for i in range(n):\n        s += i\n    return s\n',
  entry: 'f(2)',
  status: 'ok',
  message: null,
  result: v('1'),
  steps: [
    step('call', 1, { n: '2' }),
    step('line', 2, { n: '2' }),
    step('line', 3, { n: '2', s: '0' }),
    step('line', 4, { n: '2', s: '0', i: '0' }),
    step('line', 3, { n: '2', s: '0', i: '0' }),
    step('line', 4, { n: '2', s: '0', i: '1' }),
    step('line', 3, { n: '2', s: '1', i: '1' }),
    step('line', 5, { n: '2', s: '1', i: '1' }),
    step('return', 5, null, { arg: '1' }),
  ],
  stdout: '',
};

function buildReport(): { report: EvalReport; examples: ReturnType<TeacherForcedEvaluator['add']>[] } {
  const ev = new TeacherForcedEvaluator({ diff: false, mostFrequent: MostFrequentValues.fit([TRACE]) });
  const outputs = new Map<number, string>();
  TRACE.steps.forEach((s, i) => {
    if (s.locals) outputs.set(i, JSON.stringify(Object.fromEntries(Object.entries(s.locals).map(([k, x]) => [k, x.repr]))));
  });
  outputs.set(3, '{"n": "2", "s": "0", "i": "1"}'); // i wrong
  outputs.set(6, '{"n": "2", "s": "1"'); // undecodable
  const example = ev.add({ ...TRACE, origin: 'synthetic:easy' }, outputs);
  const teacherForced = ev.result();
  const report: EvalReport = {
    reportVersion: 1,
    execwm: '0.0.0-test',
    createdAt: '2026-01-01T00:00:00.000Z',
    config: { split: 'test' },
    model: { dir: 'runs/r1', id: 'abc123', trainedOn: 'def456', step: 10, params: 1234, config: {}, diff: false, changedOnly: false, operands: false, stateWeight: 1 },
    corpus: { dir: 'data/c1', id: 'def456', split: 'test', traces: 1 },
    coverage: { frames: 8, framesSkipped: 0, tracesSkipped: 0 },
    teacherForced,
    rollout: null,
    output: null,
    rolloutOutput: null,
    flags: teacherForced.flags,
    timing: { seconds: 1, backend: 'cpu', generatedTokens: 0, tokensPerSecond: null },
  };
  return { report, examples: [example] };
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('report files', () => {
  it('writes report.json with every figure and a self-contained report.html', () => {
    const dir = mkdtempSync(join(tmpdir(), 'execwm-report-'));
    dirs.push(dir);
    const { report, examples } = buildReport();
    const paths = writeReport(dir, report, examples);
    const json = JSON.parse(readFileSync(paths.json, 'utf8')) as EvalReport;
    expect(json.teacherForced!.model.frames).toBe(8);
    expect(json.teacherForced!.breakdowns.role.map((r) => r.key).sort()).toEqual(['accumulator', 'loop counter', 'other']);
    const html = readFileSync(paths.html, 'utf8');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\//);
    expect(html).toContain('<svg');
    // The only literal </script> closes the two script elements.
    expect(html.match(/<\/script>/g)!.length).toBe(2);
  });

  it('reads report.json back through its schema, and refuses a damaged or foreign one in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'execwm-report-'));
    dirs.push(dir);
    const { report, examples } = buildReport();
    const { json } = writeReport(dir, report, examples);
    const stored = readReport(dir);
    expect(stored.teacherForced!.model.variableAccuracy).toBe(report.teacherForced!.model.variableAccuracy);
    expect(stored.model).toEqual(report.model);
    // A report from before rollout outputs were scored beside the direct ones.
    const { rolloutOutput: _, ...older } = report;
    writeFileSync(json, JSON.stringify(older));
    expect(readReport(dir).rolloutOutput).toBeNull();
    writeFileSync(json, JSON.stringify({ ...report, teacherForced: { ...report.teacherForced, model: { frames: 'many' } } }));
    expect(() => readReport(dir)).toThrow(/^corrupt report .*report\.json: teacherForced\.model\.frames: Invalid type: Expected number but received "many"$/);
    writeFileSync(json, '{"reportVersion": 2}');
    expect(() => readReport(dir)).toThrow(/reportVersion: Invalid type: Expected 1 but received 2$/);
    expect(() => readReport(join(dir, 'nope'))).toThrow(/^no report at /);
  });

  it('prints a terminal table of the model beside both baselines', () => {
    const text = renderSummary(buildReport().report);
    expect(text).toMatch(/variable accuracy\s+\d+\.\d%\s+\d+\.\d%\s+\d+\.\d%/);
    expect(text).toContain('copy-previous-state');
    expect(text).toContain('most-frequent-value');
  });
});

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = requiredInCi(existsSync(CHROMIUM), `${CHROMIUM} is absent (apt-get install -y chromium)`);

describe.skipIf(!haveChromium)('report.html in headless Chromium', () => {
  it('loads without console errors, steps change the highlighted line, mismatches are marked', async () => {
    const { chromium } = await import('playwright-core');
    const dir = mkdtempSync(join(tmpdir(), 'execwm-report-'));
    dirs.push(dir);
    const { report, examples } = buildReport();
    const { html } = writeReport(dir, report, examples);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      const requests: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) requests.push(r.url());
      });
      await page.goto(pathToFileURL(html).href);
      const current = () => page.locator('#source div.current').getAttribute('data-line');
      expect(await page.locator('#source div.current').count()).toBe(1);
      expect(await current()).toBe('1');
      await page.click('#next');
      expect(await current()).toBe('2');
      await page.click('#next');
      await page.click('#next');
      expect(await current()).toBe('4');
      // Step 4 (i predicted 1, truly 0): exactly the i row is marked.
      expect(await page.locator('#locals tr.mismatch').count()).toBe(1);
      expect(await page.locator('#locals tr.mismatch td').nth(1).textContent()).toBe('i');
      await page.click('#prev');
      expect(await current()).toBe('3');
      expect(await page.locator('#locals tr.mismatch').count()).toBe(0);
      expect(await page.locator('#locals tr.match').count()).toBe(2);
      await page.click('#nextwrong');
      await page.click('#nextwrong');
      expect(await page.locator('.undecodable').count()).toBe(1);
      expect(await page.locator('#stepinfo').textContent()).toContain('step 7 /');
      expect(await page.locator('svg rect').count()).toBeGreaterThan(0);
      expect(errors).toEqual([]);
      expect(requests).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
