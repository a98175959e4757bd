/**
 * Corpus benchmark: `execwm trace --synthetic N` as the CLI runs it (2 sandboxes),
 * then the two figures the corpus promises:
 *   - size: Arrow shards vs the same traces as JSONL with full per-step locals (goal <= 0.35x);
 *   - throughput: time spent encoding + writing shards vs time spent tracing (goal <= 10%).
 * Also the streaming read speed. Writes bench/results/corpus.json.
 *
 *   npx tsx bench/corpus.ts [--count 10000] [--preset medium] [--workers 2]
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildCorpus } from '../corpus/build.js';
import { CORPUS_FORMAT_VERSION, DEFAULT_SPLIT_RATIOS, readCorpus } from '../corpus/index.js';
import { generatePrograms, type Preset } from '../corpus/synthetic.js';
import { DEFAULT_LIMITS, SCHEMA_VERSION } from '../src/schema.js';
import { TracerPool } from '../tracer/index.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '10000' },
    preset: { type: 'string', default: 'medium' },
    workers: { type: 'string', default: '2' },
  },
});
const count = Number(values.count);
const preset = values.preset as Preset;
const workers = Number(values.workers);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'execwm-bench-corpus-'));
const ms = (t0: number) => Math.round(performance.now() - t0);

try {
  let t0 = performance.now();
  const programs = generatePrograms({ count, seed: 1, preset });
  const generateMs = ms(t0);

  t0 = performance.now();
  const pool = await TracerPool.create({ workers });
  const bootMs = ms(t0);

  t0 = performance.now();
  let lastReport = 0;
  const { manifest, writeMs } = await buildCorpus({
    dir,
    config: {
      formatVersion: CORPUS_FORMAT_VERSION,
      schemaVersion: SCHEMA_VERSION,
      execwmVersion: 'bench',
      pyodideVersion: pool.pyodideVersion,
      pythonVersion: pool.pythonVersion,
      source: { kind: 'synthetic', count, preset },
      seeds: { synthetic: 1 },
      mutate: 0,
      limits: DEFAULT_LIMITS,
      splitRatios: DEFAULT_SPLIT_RATIOS,
      partition: null,
      inputsPerShard: 1000,
    },
    inputs: programs.map((program) => ({ program })),
    tracer: pool,
    onProgress: (done) => {
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        process.stderr.write(`bench corpus: ${done}/${count} traced\n`);
      }
    },
  });
  const buildMs = ms(t0);
  await pool.close();
  const tracingMs = buildMs - writeMs;

  const arrowBytes = manifest.shards.reduce((a, s) => a + statSync(join(dir, s.file)).size, 0);
  let jsonlBytes = 0;
  let steps = 0;
  t0 = performance.now();
  for await (const trace of readCorpus(dir)) steps += trace.steps.length;
  const readMs = ms(t0);
  for await (const trace of readCorpus(dir)) jsonlBytes += Buffer.byteLength(`${JSON.stringify(trace)}\n`);

  const figures = {
    programs: count,
    preset,
    workers,
    traces: manifest.counts.total,
    byStatus: manifest.counts.byStatus,
    steps,
    shards: manifest.shards.length,
    generateMs,
    poolBootMs: bootMs,
    buildMs,
    tracingMs: Math.round(tracingMs),
    writeMs: Math.round(writeMs),
    writerShareOfTracing: Number((writeMs / tracingMs).toFixed(4)),
    writerGoal: 0.1,
    tracesPerSecond: Number(((1000 * manifest.counts.total) / buildMs).toFixed(1)),
    arrowBytes,
    jsonlFullLocalsBytes: jsonlBytes,
    sizeRatio: Number((arrowBytes / jsonlBytes).toFixed(4)),
    sizeGoal: 0.35,
    readMs,
    readStepsPerSecond: Math.round((1000 * steps) / Math.max(1, readMs)),
    loadAverage1mAtEnd: Number(loadavg()[0].toFixed(1)),
    note: 'timings depend on machine load (see loadAverage1mAtEnd; 2 means the two cores were busy); the tracer dominates build time',
  };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'corpus.json'), `${JSON.stringify({ figures }, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
