import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type CorpusTrace } from '../../corpus/index.js';
import { testConfig } from '../corpus/helpers.js';
import { readMetrics } from '../../training/metrics.js';
import { REPO_ROOT, runCli } from '../helpers.js';
import { loopTrace } from './fixtures.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'execwm-train-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const config = testConfig({ splitRatios: { train: 0.75, val: 0.25, test: 0 }, inputsPerShard: 8 });

function loops(count: number, opts: { status?: CorpusTrace['status']; splits?: CorpusTrace['split'][] } = {}): CorpusTrace[] {
  const splits = opts.splits ?? ['train', 'train', 'train', 'val'];
  return Array.from({ length: count }, (_, n) => ({
    ...loopTrace(n % 8, `t${n}`),
    status: opts.status ?? 'ok',
    split: splits[n % splits.length]!,
    origin: '',
  }));
}

async function corpus(name: string, traces: CorpusTrace[]): Promise<string> {
  const dir = path.join(tmp, name);
  await writeCorpus({ dir, config, traces });
  return dir;
}

// The default seed (0) on purpose: runs in separate processes must agree with it too.
const TINY = ['--preset', 'tiny', '--backend', 'wasm', '--batch', '4', '--vocab-size', '320', '--quiet'];
const metrics = (out: string) => readMetrics(out).filter((l) => l.type === 'train');

let good: string;
beforeAll(async () => {
  good = await corpus('good', loops(16));
});

describe('execwm train (built CLI)', () => {
  it('trains a tiny model and writes checkpoint, metrics and plot', () => {
    const out = path.join(tmp, 'ok-run');
    const res = runCli(['train', '--corpus', good, '--out', out, ...TINY, '--steps', '3', '--json']);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ step: 3, backend: 'wasm' });
    for (const f of ['checkpoint/checkpoint.json', 'checkpoint/weights.bin', 'checkpoint/tokenizer.json', 'metrics.jsonl', 'loss.svg']) {
      expect(existsSync(path.join(out, f))).toBe(true);
    }
    const before = readFileSync(path.join(out, 'checkpoint', 'weights.bin'));
    const again = runCli(['train', '--corpus', good, '--out', out, ...TINY, '--steps', '5']);
    expect(again.status).toBe(1);
    expect(again.stderr.trim().split('\n')).toEqual([expect.stringMatching(/already holds a training run; pass --resume/)]);
    const other = runCli(['train', '--corpus', good, '--out', out, ...TINY, '--steps', '3', '--lr', '0.1', '--resume']);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/^execwm: Cannot resume .* other settings: lr/);
    expect(readFileSync(path.join(out, 'checkpoint', 'weights.bin'))).toEqual(before);
  });

  it('--digits lsd saves the digit order with the tokenizer and the config, and resume keeps to it', () => {
    const out = path.join(tmp, 'lsd-run');
    const res = runCli(['train', '--corpus', good, '--out', out, ...TINY, '--steps', '2', '--digits', 'lsd']);
    expect(res.status, res.stderr).toBe(0);
    const tokenizer = JSON.parse(readFileSync(path.join(out, 'checkpoint', 'tokenizer.json'), 'utf8'));
    expect(tokenizer.digitOrder).toBe('lsd');
    const meta = JSON.parse(readFileSync(path.join(out, 'checkpoint', 'checkpoint.json'), 'utf8'));
    expect(meta.trainConfig.digitOrder).toBe('lsd');
    const other = runCli(['train', '--corpus', good, '--out', out, ...TINY, '--steps', '2', '--digits', 'msd', '--resume']);
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/other settings: digitOrder/);
    const bad = runCli(['train', '--corpus', good, '--out', path.join(tmp, 'lsd-bad'), ...TINY, '--digits', 'reversed']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/one of msd, lsd/);
  });

  it('refuses bad input with a one-line error and writes nothing', async () => {
    const cases: [string, RegExp, string[]][] = [
      [await corpus('empty', []), /is empty/, []],
      [await corpus('failed', loops(8, { status: 'exception' })), /none with status ok/, []],
      [await corpus('noval', loops(8, { splits: ['train'] })), /no ok traces in the val split/, []],
      [path.join(tmp, 'missing'), /no corpus at/, []],
      [
        await corpus('long', loops(8).map((t) => ({ ...t, source: `${'# padding\n'.repeat(160)}${t.source}` }))),
        /No train trace fits the context of 256 tokens/,
        ['--vocab-size', '266'],
      ],
    ];
    for (const [dir, message, extra] of cases) {
      const out = path.join(tmp, `bad-${path.basename(dir)}-${extra.length}`);
      const res = runCli(['train', '--corpus', dir, '--out', out, ...TINY, '--steps', '2', ...extra]);
      expect(res.status, res.stderr).toBe(1);
      expect(res.stderr).toMatch(message);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
      expect(existsSync(out)).toBe(false);
    }
    const usage = runCli(['train', '--corpus', good, '--out', path.join(tmp, 'u'), '--batch', '0']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/--batch must be a positive integer/);
  });

  it('after kill -9, --resume continues with the losses of an uninterrupted run', async () => {
    const STEPS = 40;
    const args = (out: string) => ['train', '--corpus', good, '--out', out, ...TINY, '--steps', String(STEPS), '--checkpoint-every', '4'];
    const whole = path.join(tmp, 'whole');
    expect(runCli(args(whole)).status).toBe(0);

    const killed = path.join(tmp, 'killed');
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'execwm.js'), ...args(killed)], { stdio: 'ignore' });
    // Kill as soon as a step past the first checkpoint (step 4) is logged. The 35 steps still to
    // run are the margin: the run can only end first if this process is starved that long.
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        const file = path.join(killed, 'metrics.jsonl');
        if (existsSync(file) && readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"train"')).length >= 5) {
          clearInterval(timer);
          child.kill('SIGKILL');
          resolve();
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(timer);
        reject(new Error('the run finished before it could be killed'));
      });
    });
    await new Promise((r) => child.once('exit', r));
    const before = metrics(killed).length;
    expect(before).toBeGreaterThanOrEqual(5);
    expect(before).toBeLessThan(STEPS);
    const resumed = runCli([...args(killed), '--resume']);
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    const a = metrics(whole);
    const b = metrics(killed);
    expect(a).toHaveLength(STEPS);
    expect(b.map((l) => l.step)).toEqual(a.map((l) => l.step));
    b.forEach((l, i) => expect(Math.abs(l.loss - a[i]!.loss)).toBeLessThan(1e-6));
  });
});
