import { describe, expect, it } from 'vitest';
import { writeCorpus } from '../../corpus/writer.js';
import { exportLines } from '../../src/commands/export.js';
import { formatTrace } from '../../src/commands/show.js';
import { corpusStats, formatStats } from '../../src/commands/stats.js';
import { TRUNCATION_MARKER } from '../../src/schema.js';
import { traceToText } from '../../training/sequence.js';
import { incrementTrace, v } from './fixtures.js';
import { runInProcess as run, tempDir, testConfig } from './helpers.js';

async function smallCorpus(): Promise<string> {
  const dir = tempDir();
  const cut = incrementTrace('cut');
  cut.stdout = 'hi\n';
  cut.steps[3].arg = v(`'${'a'.repeat(10)}${TRUNCATION_MARKER}`, 'str');
  await writeCorpus({ dir, config: testConfig(), traces: [incrementTrace('a'), { ...incrementTrace('b'), status: 'exception' }, cut] });
  return dir;
}

describe('show, stats and export', () => {
  it('show marks the current line and prints changed locals and the return value', async () => {
    const text = formatTrace({ ...incrementTrace(), split: 'train', origin: 'synthetic:easy' }, { context: 0 });
    expect(text).toContain('trace inc · ok · train · synthetic:easy · 4 steps');
    expect(text).toMatch(/1 +line +f +→ 2 │ {5}y = x \+ 1/);
    expect(text).toMatch(/ +y = 4\n *2 +line/);
    expect(text).toContain('⇒ 4');
    const dir = await smallCorpus();
    const shown = await run(['show', dir, '--id', 'b', '--json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.out)).toMatchObject({ id: 'b', status: 'exception' });
  });

  it('stats counts statuses, steps, types and truncations', async () => {
    const dir = await smallCorpus();
    const s = await corpusStats(dir);
    expect(s).toMatchObject({ traces: 3, steps: { total: 12, byEvent: { call: 3, line: 6, return: 3 } }, truncatedValues: 1, tracesWithTruncation: 1, tracesWithStdout: 1 });
    expect(s.byStatus.exception).toBe(1);
    expect(s.valueTypes).toEqual({ int: 14, str: 1 });
    expect(formatStats(dir, s)).toContain('steps per trace (histogram):');
  });

  it('export writes one JSON line per trace with the trainer\'s CWM text', async () => {
    const dir = await smallCorpus();
    const { code, out } = await run(['export', dir, '--format', 'cwm', '--ok-only']);
    expect(code).toBe(0);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { id: string; text: string });
    expect(lines.map((l) => l.id)).toEqual(['a', 'cut']);
    expect(lines[0].text).toBe(
      '<|trace_context_start|>def f(x):\n    y = x + 1\n    return y\nf(3)<|frame_sep|>' +
        '<|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|>' +
        '<|line_sep|>{"x": "3"}<|action_sep|>    y = x + 1<|frame_sep|>' +
        '<|line_sep|>{"x": "3", "y": "4"}<|action_sep|>    return y<|frame_sep|>' +
        '<|return_sep|><|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|><|trace_end|>',
    );
    expect(lines[0].text).toBe(traceToText(incrementTrace(), { diff: false }));
    const [jsonl] = exportLines({ ...incrementTrace(), split: 'val', origin: '' }, { format: 'jsonl', diff: 'none', outputExamples: false, tasks: [] });
    expect(JSON.parse(jsonl!).steps).toHaveLength(4);
  });

  it('reports a missing corpus or an unknown id in one line with exit code 1', async () => {
    const missing = await run(['stats', '/nonexistent/corpus']);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe('execwm: no corpus at /nonexistent/corpus (folder does not exist)\n');
    const dir = await smallCorpus();
    const unknown = await run(['show', dir, '--index', '7']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/^execwm: --index 7 is out of range: .* has 3 traces\n$/);
  });
});
