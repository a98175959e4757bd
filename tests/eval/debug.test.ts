/**
 * `execwm debug` driven through stdin: a tiny model trained a few steps with the
 * debugger tasks mixed in, a program traced in the sandbox, and the session's truth
 * and marks checked line by line.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusTrace } from '../../corpus/index.js';
import { train } from '../../training/train.js';
import { runCliAsync } from '../helpers.js';
import { loopTrace } from '../training/fixtures.js';

const runCli = (args: string[], input: string) => runCliAsync(args, { input });

let root: string;
let model: string;
let program: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'execwm-debug-'));
  model = join(root, 'run');
  program = join(root, 'prog.py');
  writeFileSync(program, 'def g(a):\n    b = a * 2\n    return b\n\ndef f(n):\n    s = 0\n    for i in range(n):\n        s += g(i)\n    return s\n');
  const traces: CorpusTrace[] = [];
  for (let n = 0; n < 12; n++) traces.push({ ...loopTrace(n % 6, `t${n}`), split: n % 4 === 3 ? 'val' : 'train', origin: '' });
  await train({
    corpus: { manifestId: 'loops', traces },
    out: model,
    config: { preset: 'tiny', vocabSize: 320, steps: 3, batchSize: 4, evalEvery: 3, evalBatches: 1, checkpointEvery: 3, backend: 'wasm', tasks: { step: 1, next: 1, until: 1 } },
  });
}, 300_000);

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('execwm debug', { timeout: 300_000 }, () => {
  it('follows the real execution through step, next, out, until, break/continue, back and print, marking the model', async () => {
    const commands = ['step', 'next', 'step', 'step', 'out', 'until 8', 'print i', 'break 9', 'continue', 'back', 'next', 'next', 'next', 'jump', 'quit'];
    const res = await runCli(['debug', '--model', model, program, '--entry', 'f(2)', '--backend', 'wasm'], `${commands.join('\n')}\n`);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    const stops = res.stdout.split('\n').filter((l) => /^(\w[\w ]*: )?> line /.test(l));
    expect(stops).toEqual([
      '> line 5 (call, depth 0, frame 0): def f(n):',
      'step: > line 6 (line, depth 0, frame 1): s = 0',
      'next: > line 7 (line, depth 0, frame 2): for i in range(n):',
      'step: > line 8 (line, depth 0, frame 3): s += g(i)',
      'step: > line 1 (call, depth 1, frame 4): def g(a):',
      'out: > line 3 (return, depth 1, frame 7): return b',
      'until 8: > line 8 (line, depth 0, frame 9): s += g(i)',
      'until 9: > line 9 (line, depth 0, frame 15): return s',
      'back: > line 7 (line, depth 0, frame 14): for i in range(n):',
      'next: > line 9 (line, depth 0, frame 15): return s',
      'next: > line 9 (return, depth 0, frame 16): return s',
    ]);
    expect(res.stdout).toContain('  return value = 0    model: ');
    expect(res.stdout).toMatch(/^i = 1 {4}model: .*$/m);
    expect(res.stdout).toContain('breakpoint at line 9: return s');
    expect(res.stdout).toContain('next: the program ends here (no further stop)');
    expect(res.stdout).toContain('unknown command "jump"');
    // Every stop the model was asked about carries a mark, and the session ends with the tally.
    expect(res.stdout.match(/ [✓✗]$/gm)!.length).toBeGreaterThanOrEqual(11);
    expect(res.stdout).toMatch(/the model was right on \d+ of 11 stops \(line and locals\)\n$/);
  });

  it('says in one line that the file is missing', async () => {
    const res = await runCli(['debug', '--model', model, join(root, 'nope.py')], '');
    expect(res.status).toBe(1);
    expect(res.stderr.trim()).toBe(`execwm: no such file: ${join(root, 'nope.py')}`);
  });
});
