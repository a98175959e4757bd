/**
 * The scale-out recipe (docs/scale-out.md) end to end with the real sandbox: four tasks
 * started the way a Kubernetes Indexed Job starts them (JOB_COMPLETION_INDEX = 0..3, the
 * same command line) write their partitions to one shared folder, `execwm corpus merge`
 * joins them, and the result holds exactly what one machine tracing everything writes.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { CorpusTrace } from '../../corpus/format.js';
import { readManifest } from '../../corpus/manifest.js';
import { readCorpus } from '../../corpus/reader.js';
import { tempDir } from './helpers.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** execwm from the sources, as the EXECWM of deploy/trace-shard.sh. */
const EXECWM = `${process.execPath} --import tsx ${join(root, 'tests', 'corpus', 'run-cli.ts')}`;
const TRACE_FLAGS = ['--synthetic', '24', '--preset', 'easy', '--seed', '5', '--workers', '1', '--inputs-per-shard', '4', '--quiet'];

function sh(command: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', rej);
    child.on('exit', (code) => res({ code, stderr }));
  });
}

async function tracesById(dir: string): Promise<Map<string, CorpusTrace>> {
  const out = new Map<string, CorpusTrace>();
  for await (const t of readCorpus(dir)) out.set(t.id, t);
  return out;
}

describe('scale-out: an Indexed Job of 4 tasks, then corpus merge', () => {
  it('gives the same traces as one machine', { timeout: 600_000 }, async () => {
    const shared = tempDir('execwm-scale-');
    const tasks = [0, 1, 2, 3].map((i) =>
      sh('sh', [join(root, 'deploy', 'trace-shard.sh'), join(shared, 'c1'), ...TRACE_FLAGS], {
        JOB_COMPLETION_INDEX: String(i),
        SHARD_COUNT: '4',
        EXECWM,
      }),
    );
    const single = join(shared, 'single');
    const whole = sh(process.execPath, ['--import', 'tsx', join(root, 'tests', 'corpus', 'run-cli.ts'), 'trace', ...TRACE_FLAGS, '--out', single]);
    for (const [i, r] of (await Promise.all(tasks)).entries()) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`partition ${i}/4 -> ${join(shared, 'c1', `part-0000${i}`)}`);
    }
    expect((await whole).code).toBe(0);
    expect(readdirSync(join(shared, 'c1')).sort()).toEqual(['part-00000', 'part-00001', 'part-00002', 'part-00003']);

    const merged = join(shared, 'c1', 'merged');
    const parts = [0, 1, 2, 3].map((i) => join(shared, 'c1', `part-0000${i}`));
    const merge = await sh(process.execPath, ['--import', 'tsx', join(root, 'tests', 'corpus', 'run-cli.ts'), 'corpus', 'merge', merged, ...parts]);
    expect(merge.code, merge.stderr).toBe(0);

    const a = await tracesById(merged);
    const b = await tracesById(single);
    expect(a.size).toBe(24);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [id, t] of b) expect(a.get(id), id).toEqual(t);
    const ma = readManifest(merged);
    const mb = readManifest(single);
    expect(ma.counts).toEqual(mb.counts);
    expect(ma.mergedPartitions).toEqual([0, 1, 2, 3].map((index) => ({ index, count: 4 })));
    // Each task traced only its own partition: inputs at positions p with p % 4 == i.
    parts.forEach((p, i) => expect(readManifest(p).partition).toEqual({ index: i, count: 4 }));
  });

  it('refuses to start a task without an index or a count, in one line', async () => {
    const noIndex = await sh('sh', [join(root, 'deploy', 'trace-shard.sh'), tempDir()], { SHARD_COUNT: '4', JOB_COMPLETION_INDEX: '', SLURM_ARRAY_TASK_ID: '', SHARD_INDEX: '' });
    expect(noIndex.code).toBe(2);
    expect(noIndex.stderr).toMatch(/^trace-shard\.sh: no task index: set JOB_COMPLETION_INDEX, SLURM_ARRAY_TASK_ID or SHARD_INDEX\n/);
    const outOfRange = await sh('sh', [join(root, 'deploy', 'trace-shard.sh'), tempDir()], { SHARD_COUNT: '4', SLURM_ARRAY_TASK_ID: '4', JOB_COMPLETION_INDEX: '' });
    expect(outOfRange.code).toBe(2);
    expect(outOfRange.stderr).toMatch(/^trace-shard\.sh: task index 4 is not below SHARD_COUNT 4\n/);
  });
});
