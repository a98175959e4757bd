/**
 * `npm run bench`: runs every benchmark side by side in one session and writes
 * bench/results/<name>.json (each wrapped with the command, machine, versions and
 * date) plus bench/results/SUMMARY.md.
 *
 * Each benchmark is a script `bench/<name>.ts` that writes its own figures to
 * bench/results/<name>.json; this runner adds the context a reader needs to
 * trust or reproduce them. `npm run bench -- tracer corpus` runs a subset (the summary
 * keeps the last results of the others); `npm run bench -- --summarize` only rewrites it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ALL = ['tracer', 'corpus', 'train', 'eval'];
const summarizeOnly = process.argv.includes('--summarize');
const asked = process.argv.slice(2).filter((a) => a !== '--summarize');
const unknown = asked.filter((n: string) => !ALL.includes(n));
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown benchmark ${unknown.join(', ')}; known: ${ALL.join(', ')}\n`);
  process.exit(2);
}
const names = summarizeOnly ? [] : asked.length > 0 ? asked : ALL;

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
const installed = (name: string): string | null => {
  const p = join(root, 'node_modules', name, 'package.json');
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')).version : null;
};
const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const machine = {
  cores: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  platform: `${process.platform}-${process.arch}`,
};
const versions = {
  execwm: pkg.version,
  node: process.versions.node,
  pyodide: installed('pyodide'),
  tfjs: installed('@tensorflow/tfjs-core'),
  apacheArrow: installed('apache-arrow'),
  nativePython: (python.stdout || python.stderr || '').trim() || null,
};

interface SummaryRow {
  figure: string;
  value: string | number;
  goal?: string;
  met?: boolean;
}
interface Entry {
  name: string;
  error?: string;
  command?: string;
  date?: string;
  seconds?: number;
  figures?: { summary?: SummaryRow[] } & Record<string, unknown>;
}
const summary: Entry[] = [];
let failed = 0;
for (const name of names) {
  const script = join('bench', `${name}.ts`);
  if (!existsSync(join(root, script))) {
    process.stderr.write(`bench: ${script} does not exist, skipped\n`);
    summary.push({ name, error: 'missing' });
    continue;
  }
  const command = `npx tsx ${script}`;
  process.stderr.write(`\nbench: ${command}\n`);
  const started = new Date();
  const res = spawnSync('npx', ['tsx', script], { cwd: root, stdio: 'inherit' });
  const out = join(root, 'bench', 'results', `${name}.json`);
  if (res.status !== 0 || !existsSync(out)) {
    failed += 1;
    summary.push({ name, error: `exit ${res.status}` });
    continue;
  }
  const raw = JSON.parse(readFileSync(out, 'utf8')) as { figures?: Entry['figures'] } & Record<string, unknown>;
  const figures = raw.figures ?? raw;
  const entry: Entry & { machine: typeof machine; versions: typeof versions } = {
    name,
    command: `npm run bench -- ${name}  (${command})`,
    date: started.toISOString(),
    seconds: Math.round((Date.now() - started.getTime()) / 1000),
    machine,
    versions,
    figures,
  };
  writeFileSync(out, `${JSON.stringify(entry, null, 2)}\n`);
  summary.push(entry);
}

// Results of benchmarks not run this time stay in the summary, with their own date.
for (const name of ALL) {
  const file = join(root, 'bench', 'results', `${name}.json`);
  if (names.includes(name) || !existsSync(file)) continue;
  const old = JSON.parse(readFileSync(file, 'utf8')) as Entry;
  if (old.command) summary.push({ ...old, name });
}
summary.sort((a, b) => ALL.indexOf(a.name) - ALL.indexOf(b.name));

const lines = ['# Benchmark results', '', `Machine: ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.platform}.`];
lines.push(`Versions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
for (const e of summary) {
  lines.push(`## ${e.name}`, '');
  if (e.error) {
    lines.push(`Not measured (${e.error}).`, '');
    continue;
  }
  lines.push(`\`${e.command}\` — ${e.date}, ${e.seconds} s`, '');
  const rows = Array.isArray(e.figures?.summary) ? e.figures.summary : null;
  if (rows) {
    lines.push('| figure | value | goal | met |', '| --- | --- | --- | --- |');
    for (const r of rows) lines.push(`| ${r.figure} | ${r.value} | ${r.goal ?? ''} | ${r.met === undefined ? '' : r.met ? 'yes' : 'no'} |`);
  } else {
    lines.push('```json', JSON.stringify(e.figures, null, 2), '```');
  }
  lines.push('');
}
writeFileSync(join(root, 'bench', 'results', 'SUMMARY.md'), `${lines.join('\n')}\n`);
process.stderr.write(`\nbench: wrote bench/results/SUMMARY.md${failed ? ` (${failed} failed)` : ''}\n`);
process.exit(failed > 0 ? 1 : 0);
