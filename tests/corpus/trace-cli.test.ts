/**
 * `execwm trace` end to end with the real sandbox pool, run as separate processes
 * so that a run can be killed with SIGKILL at an arbitrary moment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CorpusTrace } from '../../corpus/format.js';
import { readManifest } from '../../corpus/manifest.js';
import { readCorpus } from '../../corpus/reader.js';
import { generatePrograms } from '../../corpus/synthetic.js';
import { TYPES, VALUE_TYPES } from '../../corpus/synthetic/value-types.js';
import { CRUXEVAL_PATH, REPO_ROOT, cruxevalAvailable } from '../helpers.js';
import { tempDir } from './helpers.js';

const root = REPO_ROOT;
const cruxeval = CRUXEVAL_PATH;

/** Starts the CLI from the sources in its own process group (so its sandboxes die with it). */
function startCli(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'tests', 'corpus', 'run-cli.ts'), ...args], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stderr: string }>((res) => child.on('exit', (code) => res({ code, stderr })));
  return { child, done };
}

const shardCount = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => /^part-\d+\.arrow$/.test(f)).length : 0);

async function waitUntil(cond: () => boolean, what: string, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Kills the run (SIGKILL, its whole process group) once `cond` holds; returns what it printed. */
async function killWhen(run: ReturnType<typeof startCli>, cond: () => boolean, what: string): Promise<string> {
  await Promise.race([waitUntil(cond, what), run.done.then((r) => Promise.reject(new Error(`run ended before ${what}: ${r.stderr}`)))]);
  process.kill(-(run.child.pid as number), 'SIGKILL');
  return (await run.done).stderr;
}

async function readAll(dir: string): Promise<CorpusTrace[]> {
  const out: CorpusTrace[] = [];
  for await (const t of readCorpus(dir)) out.push(t);
  return out;
}

describe('execwm trace (real tracer)', () => {
  it('after kill -9 twice and a damaged shard, --resume gives the corpus of an uninterrupted run: same ids, bytes per trace, shards, manifest', async () => {
    const args = ['trace', '--synthetic', '80', '--seed', '7', '--preset', 'easy', '--inputs-per-shard', '4', '--workers', '1', '--quiet'];
    const cut = tempDir();
    const whole = tempDir();
    const reference = startCli([...args, '--out', whole]);

    await killWhen(startCli([...args, '--out', cut]), () => shardCount(cut) >= 2, 'two shards');
    expect(existsSync(join(cut, 'manifest.json'))).toBe(false);
    const afterFirst = shardCount(cut);
    // Bytes flipped inside a complete shard: the resume must trace its inputs again, not keep it.
    // part-00000 is recorded in run.json: part-00001 exists, and it is written after that record.
    const damaged = join(cut, 'part-00000.arrow');
    const bytes = readFileSync(damaged);
    for (let i = 0; i < 8; i++) bytes[Math.floor(bytes.length / 2) + i] ^= 0x5a;
    writeFileSync(damaged, bytes);
    const verify = await startCli(['corpus', 'verify', cut]).done;
    expect(verify.code).toBe(1);
    expect(verify.stderr).toContain(`${cut}: part-00000.arrow does not match the sha256 recorded when it was written`);
    const resumed = await killWhen(startCli([...args, '--out', cut, '--resume']), () => shardCount(cut) > afterFirst, 'one more shard');
    expect(resumed).toContain(`${cut}: part-00000.arrow does not match the sha256 recorded when it was written`);
    expect(resumed).toContain('its inputs are traced again');
    expect(existsSync(join(cut, 'manifest.json'))).toBe(false);
    const last = await startCli([...args, '--out', cut, '--resume']).done;
    expect(last.code, last.stderr).toBe(0);
    const ref = await reference.done;
    expect(ref.code, ref.stderr).toBe(0);

    const m = readManifest(cut);
    expect(m).toEqual(readManifest(whole));
    expect(m.counts.total).toBe(80);
    for (const s of m.shards) expect(readFileSync(join(cut, s.file)).equals(readFileSync(join(whole, s.file)))).toBe(true);
    const [a, b] = [await readAll(cut), await readAll(whole)];
    expect(a.map((t) => t.id)).toEqual(b.map((t) => t.id));
    expect(new Set(a.map((t) => t.id)).size).toBe(80);
    a.forEach((t, i) => expect(JSON.stringify(t)).toBe(JSON.stringify(b[i])));
    expect(readdirSync(cut).sort()).toEqual(readdirSync(whole).sort());
  }, 400_000);

  it.skipIf(!cruxevalAvailable())(
    'imports CRUXEval JSONL with bad records into the errors table and keeps only ok mutants',
    async () => {
      const dir = tempDir();
      const good = readFileSync(cruxeval, 'utf8').split('\n').filter(Boolean).slice(0, 12);
      const input = join(tempDir(), 'progs.jsonl');
      writeFileSync(input, [...good.slice(0, 6), '{not json', JSON.stringify({ code: 'x = 1' }), ...good.slice(6)].join('\n'));
      const run = await startCli(['trace', '--jsonl', input, '--mutate', '1', '--workers', '2', '--quiet', '--out', dir]).done;
      expect(run.code, run.stderr).toBe(0);
      const m = readManifest(dir);
      expect(m.source).toMatchObject({ kind: 'jsonl', file: 'progs.jsonl' });
      expect(m.errors.map((e) => [e.input, e.origin, e.reason.split(':')[0]])).toEqual([
        [6, 'jsonl:progs.jsonl:7', 'malformed JSON'],
        [7, 'jsonl:progs.jsonl:8', 'missing field "input" or "entry" (a string)'],
      ]);
      const traces = await readAll(dir);
      const parents = traces.filter((t) => !t.origin.startsWith('mutation:'));
      expect(parents.map((t) => t.id)).toEqual(good.map((l) => (JSON.parse(l) as { id: string }).id));
      expect(parents.every((t) => t.status === 'ok')).toBe(true);
      // CRUXEval outputs are Python literals of the return value.
      for (const t of parents) {
        const rec = JSON.parse(good.find((l) => (JSON.parse(l) as { id: string }).id === t.id) as string) as { output: string };
        expect(t.result?.repr).toBe(rec.output);
      }
      const mutants = traces.filter((t) => t.origin.startsWith('mutation:'));
      // The checks below hold for any list; they must not pass because no mutant was kept.
      expect(mutants.length).toBeGreaterThan(0);
      expect(mutants.every((t) => t.status === 'ok')).toBe(true);
      expect(m.counts.mutants.kept).toBe(mutants.length);
      for (const mt of mutants) {
        const parent = parents.find((p) => mt.origin === `mutation:of=${p.id}`);
        expect(parent?.split).toBe(mt.split);
      }
    },
    200_000,
  );
  it('traces a folder of scripts: statuses, printed text and bad files in the errors table', async () => {
    const src = tempDir();
    mkdirSync(join(src, 'pkg'));
    writeFileSync(join(src, 'a.py'), 'xs = [1, 2]\nfor x in xs:\n    print(x)\n');
    writeFileSync(join(src, 'b.py'), 'def f(:\n');
    writeFileSync(join(src, 'pkg', 'c.py'), 'n = 1 // 0\n');
    writeFileSync(join(src, 'd.py'), Buffer.from([0x78, 0x3d, 0xff, 0x0a]));
    const dir = tempDir();
    const run = await startCli(['trace', '--dir', src, '--workers', '1', '--quiet', '--out', dir]).done;
    expect(run.code, run.stderr).toBe(0);
    const byId = new Map((await readAll(dir)).map((t) => [t.id, t]));
    expect([...byId.keys()].sort()).toEqual(['a.py', 'b.py', 'pkg/c.py']);
    expect(byId.get('a.py')).toMatchObject({ status: 'ok', stdout: '1\n2\n', entry: null });
    expect(byId.get('a.py')?.steps[0].func).toBe('<module>');
    expect(byId.get('b.py')?.status).toBe('syntax_error');
    expect(byId.get('pkg/c.py')?.status).toBe('exception');
    expect(readManifest(dir).errors).toEqual([{ input: 2, origin: 'dir:d.py', reason: 'not valid UTF-8' }]);
  }, 200_000);

  it('--fresh-names traces the generator\'s programs with made-up names, and refuses imported sources', async () => {
    const dir = tempDir();
    const run = await startCli(['trace', '--synthetic', '12', '--preset', 'easy', '--seed', '3', '--fresh-names', '1', '--workers', '1', '--quiet', '--out', dir]).done;
    expect(run.code, run.stderr).toBe(0);
    const traces = await readAll(dir);
    const programs = generatePrograms({ count: 12, seed: 3, preset: 'easy', freshNames: 1 });
    expect(traces.map((t) => t.source).sort()).toEqual(programs.map((p) => p.source).sort());
    expect(traces.every((t) => t.status === 'ok')).toBe(true);
    const pools = new Set(TYPES.flatMap((t) => [...VALUE_TYPES[t].names, ...(VALUE_TYPES[t].param?.names ?? [])]));
    for (const t of traces) for (const name of Object.keys(t.steps[0]!.locals ?? {})) expect(pools.has(name)).toBe(false);
    const bad = await startCli(['trace', '--jsonl', join(tempDir(), 'x.jsonl'), '--fresh-names', '0.5', '--out', tempDir()]).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--fresh-names .* needs --synthetic/);
  }, 200_000);
});
