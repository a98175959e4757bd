import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pl from 'nodejs-polars';
import { describe, expect, it } from 'vitest';
import type { CorpusTrace } from '../../corpus/format.js';
import { readCorpus } from '../../corpus/reader.js';
import { writeCorpus } from '../../corpus/writer.js';
import { promptRecords, sequenceOptions, type DiffMode, type PromptRecord } from '../../src/commands/export.js';
import { SPECIAL_TOKENS, outputExampleSegments, traceToText } from '../../training/sequence.js';
import { incrementTrace, randomTrace } from './fixtures.js';
import { runInProcess as run, tempDir, testConfig } from './helpers.js';

const jsonLines = <T>(text: string): T[] =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as T);

async function corpus(): Promise<{ dir: string; traces: CorpusTrace[] }> {
  const dir = tempDir();
  const input = [incrementTrace('inc'), ...Array.from({ length: 13 }, (_, i) => randomTrace(300 + i)), incrementTrace('inc2')];
  await writeCorpus({ dir, config: testConfig(), traces: input });
  const traces: CorpusTrace[] = [];
  for await (const t of readCorpus(dir)) traces.push(t);
  return { dir, traces };
}

describe('export --format cwm', () => {
  it('writes the trainer\'s text in each state encoding', async () => {
    const { dir, traces } = await corpus();
    const modes: [string[], DiffMode][] = [[[], 'none'], [['--diff'], 'cwm'], [['--diff', 'none'], 'none'], [['--diff', 'cwm'], 'cwm'], [['--diff', 'changed'], 'changed']];
    const texts = new Set<string>();
    for (const [flags, mode] of modes) {
      const { code, out } = await run(['export', dir, '--format', 'cwm', ...flags]);
      expect(code).toBe(0);
      const lines = jsonLines<{ id: string; task: string; text: string }>(out);
      expect(lines.map((l) => l.id)).toEqual(traces.map((t) => t.id));
      lines.forEach((l, i) => expect(l.text).toBe(traceToText(traces[i]!, sequenceOptions(mode))));
      expect(lines.every((l) => l.task === 'trace')).toBe(true);
      texts.add(lines[0]!.text);
    }
    expect(texts.size).toBe(3); // the three encodings differ on the increment trace
    const changed = traceToText(traces[0]!, sequenceOptions('changed'));
    expect(changed).toContain('<|line_sep|>{"y": "4"}<|action_sep|>    return y');
  });

  it('writes each line\'s operands with --operands, as the trainer does, and refuses it where there is no CWM text', async () => {
    const { dir, traces } = await corpus();
    const { code, out } = await run(['export', dir, '--format', 'cwm', '--diff', 'changed', '--operands']);
    expect(code).toBe(0);
    const lines = jsonLines<{ id: string; text: string }>(out);
    lines.forEach((l, i) => expect(l.text).toBe(traceToText(traces[i]!, { diff: true, changedOnly: true, operands: true })));
    expect(lines[0]!.text).toContain('<|action_sep|>    y = x + 1<|arg_sep|>{"x": "3"}<|frame_sep|>');
    const prompts = await run(['export', dir, '--format', 'prompts', '--diff', 'changed', '--operands', '--tasks', 'state']);
    expect(prompts.code).toBe(0);
    const second = jsonLines<PromptRecord>(prompts.out).find((r) => r.id === 'inc' && r.step === 2)!;
    expect(second.prompt.endsWith('<|action_sep|>    y = x + 1<|arg_sep|>{"x": "3"}<|frame_sep|><|line_sep|>')).toBe(true);
    expect((await run(['export', dir, '--format', 'jsonl', '--operands'])).code).toBe(2);
    expect((await run(['export', dir, '--format', 'parquet', '--out', tempDir(), '--operands'])).code).toBe(2);
  });

  it('adds each function trace\'s output example with --output-examples', async () => {
    const { dir, traces } = await corpus();
    const { code, out } = await run(['export', dir, '--format', 'cwm', '--output-examples']);
    expect(code).toBe(0);
    const lines = jsonLines<{ id: string; task: string; text: string }>(out);
    const examples = lines.filter((l) => l.task === 'output');
    const expected = traces.flatMap((t) => {
      const seg = outputExampleSegments(t);
      return seg === null ? [] : [{ id: t.id, text: seg.map((s) => s.text).join('') }];
    });
    expect(expected.length).toBeGreaterThan(1);
    expect(examples.map((l) => ({ id: l.id, text: l.text }))).toEqual(expected);
    expect(examples[0]!.text).toBe(
      '<|trace_context_start|>def f(x):\n    y = x + 1\n    return y\nf(3)<|frame_sep|><|return_sep|><|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|><|trace_end|>',
    );
    // Each output example follows its own trace.
    const at = lines.findIndex((l) => l.task === 'output' && l.id === 'inc');
    expect(lines[at - 1]).toMatchObject({ id: 'inc', task: 'trace' });
  });
});

describe('export --format prompts', () => {
  it('asks for the state of every call/line frame after the true prefix, as eval does', async () => {
    const { traces } = await corpus();
    for (const mode of ['none', 'cwm', 'changed'] as const) {
      for (const t of traces) {
        const full = traceToText(t, sequenceOptions(mode));
        const states = promptRecords(t, { diff: mode, tasks: ['state'] });
        const frames = t.steps.flatMap((s, i) => (s.event === 'call' || s.event === 'line' ? [i] : []));
        expect(states.map((r) => r.step)).toEqual(frames);
        for (const r of states) {
          const sep = t.steps[r.step!]!.event === 'call' ? SPECIAL_TOKENS.callSep : SPECIAL_TOKENS.lineSep;
          expect(r.prompt.endsWith(sep)).toBe(true);
          expect(r.completion.endsWith(SPECIAL_TOKENS.actionSep)).toBe(true);
          expect(full.startsWith(r.prompt + r.completion)).toBe(true);
        }
      }
    }
    const [first, second] = promptRecords(traces[0]!, { diff: 'none', tasks: ['state'] });
    expect(first!.completion).toBe('{"x": "3"}<|action_sep|>');
    expect(second!.prompt).toBe(
      '<|trace_context_start|>def f(x):\n    y = x + 1\n    return y\nf(3)<|frame_sep|><|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|><|line_sep|>',
    );
  });

  it('splits the output example where the trainer does, and writes the JSONL through the CLI', async () => {
    const { dir, traces } = await corpus();
    const [output] = promptRecords(traces[0]!, { diff: 'none', tasks: ['output'] });
    expect(output).toEqual({
      id: 'inc',
      split: traces[0]!.split,
      task: 'output',
      prompt: '<|trace_context_start|>def f(x):\n    y = x + 1\n    return y\nf(3)<|frame_sep|><|return_sep|>',
      completion: '<|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|><|trace_end|>',
    });
    const { code, out } = await run(['export', dir, '--format', 'prompts', '--diff', 'changed']);
    expect(code).toBe(0);
    const records = jsonLines<PromptRecord>(out);
    expect(records).toEqual(traces.flatMap((t) => promptRecords(t, { diff: 'changed', tasks: ['state', 'output'] })));
    expect(new Set(records.map((r) => r.task))).toEqual(new Set(['state', 'output']));
    const only = await run(['export', dir, '--format', 'prompts', '--tasks', 'output']);
    expect(jsonLines<PromptRecord>(only.out).every((r) => r.task === 'output')).toBe(true);
  });

  it('writes every derived task example of a trace with its command, prompt and completion', async () => {
    const { dir, traces } = await corpus();
    const records = promptRecords(traces[0]!, { diff: 'none', tasks: ['next', 'back', 'coverage'] });
    // f(3): call, line 2, line 3, return — next from each but the last, back from each but the first, coverage of lines 2 and 3.
    expect(records.map((r) => `${r.task} ${r.command} ${r.step ?? ''}`)).toEqual([
      'next next 0',
      'next next 1',
      'next next 2',
      'back back 1',
      'back back 2',
      'back back 3',
      'coverage coverage 2 ',
      'coverage coverage 3 ',
    ]);
    expect(records[0]).toMatchObject({
      prompt: '<|trace_context_start|>def f(x):\n    y = x + 1\n    return y\nf(3)<|frame_sep|><|call_sep|>{"x": "3"}<|action_sep|>def f(x):<|frame_sep|><|action_sep|>next<|frame_sep|>',
      completion: '<|line_sep|>{"x": "3"}<|action_sep|>    y = x + 1<|frame_sep|><|trace_end|>',
    });
    const all = await run(['export', dir, '--format', 'prompts', '--tasks', 'all']);
    expect(all.code).toBe(0);
    const tasks = new Set(jsonLines<PromptRecord>(all.out).map((r) => r.task));
    expect(tasks).toEqual(new Set(['state', 'output', 'step', 'next', 'out', 'until', 'back', 'coverage', 'nextline', 'value', 'input']));
    const [input] = promptRecords(traces[0]!, { diff: 'none', tasks: ['input'] });
    expect(input).toMatchObject({
      task: 'input',
      command: 'input f',
      prompt: '<|trace_context_start|>def f(x):\n    y = x + 1\n    return y\n<|frame_sep|><|return_sep|><|action_sep|>    return y<|arg_sep|>"4"<|frame_sep|><|action_sep|>input f<|frame_sep|>',
      completion: '3<|frame_sep|><|trace_end|>',
    });
  });
});

describe('export --format parquet', () => {
  it('writes data files and a dataset card; the text column is the trainer\'s text', async () => {
    const { dir, traces } = await corpus();
    const out = join(tempDir('execwm-parquet-'), 'hub');
    const { code, err } = await run(['export', dir, '--format', 'parquet', '--out', out, '--text', '--diff', 'changed', '--license', 'cc-by-4.0', '--quiet']);
    expect(err).toMatch(/^wrote 15 traces in \d+ Parquet files \([\d.]+ KiB\) and a dataset card to /);
    expect(code).toBe(0);
    const card = readFileSync(join(out, 'README.md'), 'utf8');
    expect(card).toMatch(/^---\nlicense: cc-by-4.0\n/);
    expect(card).toContain('`--diff changed`');
    const texts = new Map<string, string>();
    for (const split of ['train', 'validation', 'test']) {
      const file = join(out, 'data', `${split}-00000-of-00001.parquet`);
      if (!existsSync(file)) continue;
      const df = pl.readParquet(file).select('id', 'text');
      df.toRecords().forEach((r) => texts.set(r.id as string, r.text as string));
    }
    expect(texts.size).toBe(traces.length);
    for (const t of traces) expect(texts.get(t.id)).toBe(traceToText(t, sequenceOptions('changed')));
  });

  it('refuses flags that do not fit the format with a one-line usage error', async () => {
    const { dir } = await corpus();
    const cases: [string[], RegExp][] = [
      [['--format', 'parquet'], /--format parquet needs --out DIR/],
      [['--format', 'parquet', '--out', tempDir(), '--split', 'train'], /--split does not apply to --format parquet \(a Parquet export holds the whole corpus/],
      [['--format', 'parquet', '--out', tempDir(), '--diff', 'cwm'], /--diff with --format parquet chooses the encoding of --text; give --text too/],
      [['--format', 'jsonl', '--diff'], /--diff does not apply to --format jsonl/],
      [['--format', 'cwm', '--diff', 'sometimes'], /--diff takes none, cwm or changed, got "sometimes"/],
      [['--format', 'cwm', '--tasks', 'state'], /--tasks does not apply to --format cwm/],
      [['--format', 'prompts', '--tasks', 'state,guess'], /expected all or a comma-separated list of state, output, step, next, out, until, back, coverage, nextline, value, input, got "guess"/],
    ];
    for (const [flags, message] of cases) {
      const res = await run(['export', dir, ...flags]);
      expect(res.code, flags.join(' ')).toBe(2);
      expect(res.err).toMatch(message);
    }
  });
});
