/**
 * Tracer benchmark: the sandboxed tracer against a PySnooper-style tracer on native CPython 3.11
 * (full `repr` of every local at every event), on the same programs (the CRUXEval set, traced as
 * `f(<input>)`). Writes bench/results/tracer.json.
 *
 *   npx tsx bench/tracer.ts [--programs N] [--repeat R]
 *
 * Each program set is traced R times over (default 3) so that a measurement lasts seconds, not
 * a fraction of one: a single pass over CRUXEval takes about a second in one sandbox.
 * Figures: events/s and programs/s for 1 and 2 sandboxes and for native; the 2-vs-1 speed-up;
 * the time to get a working sandbox back after a kill; the RSS of each sandbox process. Isolation
 * between programs: the synthetic presets in one sandbox, the sandboxes replaced because a program
 * changed process-wide state (none, for these sets), what a program costs when the tracer has to
 * check every standard-library module after it, and when every program changes state.
 * Timings on a shared machine are noisy: the load average is recorded beside them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { TracerPool } from '../tracer/index.js';
import { generatePrograms } from '../corpus/synthetic.js';
import type { Program } from '../src/schema.js';

const root = resolve(import.meta.dirname, '..');
const datasetPath = resolve(root, '..', 'shared', 'datasets', 'cruxeval.jsonl');
const countArg = process.argv.indexOf('--programs');
const maxPrograms = countArg > 0 ? Number(process.argv[countArg + 1]) : 800;
const repeatArg = process.argv.indexOf('--repeat');
const repeat = repeatArg > 0 ? Number(process.argv[repeatArg + 1]) : 3;

/** The programs `times` times over, each copy with its own id. */
function repeated(programs: Program[], times: number): Program[] {
  return Array.from({ length: times }, (_, r) => programs.map((p) => ({ ...p, id: `${p.id}#${r}` }))).flat();
}

function loadPrograms(): Program[] {
  if (existsSync(datasetPath)) {
    return readFileSync(datasetPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .slice(0, maxPrograms)
      .map((l) => {
        const r = JSON.parse(l) as { id: string; code: string; input: string };
        return { id: r.id, source: r.code, entry: `f(${r.input})` };
      });
  }
  const dir = join(root, 'tests', 'fixtures', 'tracer', 'golden');
  throw new Error(`${datasetPath} is missing; the goldens in ${dir} are too few for a benchmark`);
}

/** Loop-heavy programs (thousands of events each), where per-event cost dominates per-program cost. */
function longPrograms(): Program[] {
  const bodies: [string, string][] = [
    ['def f(xs):\n    xs = list(xs)\n    for i in range(len(xs)):\n        for j in range(len(xs) - 1 - i):\n            if xs[j] > xs[j + 1]:\n                xs[j], xs[j + 1] = xs[j + 1], xs[j]\n    return xs\n', 'f([(i * 37) % 41 for i in range(N)])'],
    ['def f(n):\n    sieve = [True] * n\n    primes = []\n    for i in range(2, n):\n        if sieve[i]:\n            primes.append(i)\n            for k in range(i * i, n, i):\n                sieve[k] = False\n    return len(primes)\n', 'f(N * 10)'],
    ['def f(text):\n    counts = {}\n    for ch in text:\n        counts[ch] = counts.get(ch, 0) + 1\n    best = max(counts, key=counts.get)\n    return best, counts[best]\n', "f('the quick brown fox jumps over the lazy dog ' * (N // 8))"],
    ['def f(n):\n    a, b = 0, 1\n    out = []\n    for _ in range(n):\n        a, b = b, a + b\n        out.append(a % 1000)\n    return sum(out)\n', 'f(N * 4)'],
    ['class Acc:\n    def __init__(self):\n        self.total = 0\n        self.items = []\n    def add(self, x):\n        self.total += x\n        self.items.append(x)\n\ndef f(n):\n    acc = Acc()\n    for i in range(n):\n        acc.add(i * i % 7)\n    return acc.total\n', 'f(N * 3)'],
    ['def f(s):\n    words = s.split()\n    result = ""\n    for w in words:\n        if len(w) > 3:\n            result += w[::-1] + " "\n        else:\n            result += w.upper() + " "\n    return result.strip()\n', "f('alpha be gamma de epsilon ' * (N // 4))"],
  ];
  const out: Program[] = [];
  for (const n of [20, 40, 60]) {
    bodies.forEach(([source, entry], i) => out.push({ id: `long-${i}-${n}`, source, entry: entry.replaceAll('N', String(n)) }));
  }
  return out;
}

// A PySnooper-style tracer: settrace, repr of every local at every event, no caching.
const NATIVE = String.raw`
import sys, json, time, io
programs = [json.loads(l) for l in sys.stdin]
events = 0
real_stdout = sys.stdout
start = time.perf_counter()
for p in programs:
    steps = []
    def tracer(frame, event, arg):
        if frame.f_code.co_filename != '<program>':
            return None
        if len(steps) >= 10000:
            raise RuntimeError('step limit')
        steps.append({'event': event, 'line': frame.f_lineno, 'func': frame.f_code.co_name,
                      'locals': {k: repr(v) for k, v in frame.f_locals.items()},
                      'arg': repr(arg) if event == 'return' else None})
        return tracer
    sys.stdout = io.StringIO()
    g = {'__name__': '__main__'}
    try:
        exec(compile(p['source'], '<program>', 'exec'), g)
        entry = compile(p['entry'], '<entry>', 'eval')
        sys.settrace(tracer)
        try:
            eval(entry, g)
        finally:
            sys.settrace(None)
    except BaseException:
        pass
    sys.stdout = real_stdout
    json.dumps(steps)
    events += len(steps)
elapsed = time.perf_counter() - start
print(json.dumps({'events': events, 'seconds': elapsed, 'programs': len(programs)}))
`;

function native(programs: Program[]): { events: number; seconds: number; programs: number } {
  const res = spawnSync('python3', ['-c', NATIVE], {
    input: programs.map((p) => JSON.stringify(p)).join('\n'),
    encoding: 'utf8',
    env: { ...process.env, PYTHONHASHSEED: '0' },
    maxBuffer: 1 << 26,
  });
  if (res.status !== 0) throw new Error(`native tracer failed: ${res.stderr}`);
  return JSON.parse(res.stdout.trim().split('\n').at(-1) as string);
}

async function sandboxed(
  programs: Program[],
  workers: number,
  opts: { warmUp?: number } = {},
): Promise<{
  events: number;
  seconds: number;
  bootSeconds: number;
  rssMB: number[];
  parentCpuSeconds: number;
  sandboxCpuSeconds: number;
  replacements: Record<string, number>;
}> {
  const t0 = performance.now();
  const pool = await TracerPool.create({ workers });
  const bootSeconds = (performance.now() - t0) / 1000;
  try {
    // A warm-up pass so that the measurement sees sandboxes in their steady state: V8 keeps
    // tiering up Pyodide's hot wasm functions in the background for the first thousand or so
    // programs (in a sandbox fed 2,400 and 7,200 CRUXEval programs, the first 2,400 cost ~870 µs
    // of CPU each, the next ones ~650 µs).
    for await (const _ of pool.traceAll(programs.slice(0, opts.warmUp ?? 1000))) void _;
    const replaced0 = pool.replacements;
    const start = performance.now();
    // CPU of this (parent) process: if it nears the wall time, the pool, not the sandboxes, limits.
    const cpu0 = process.cpuUsage();
    const pids = pool.pids;
    const sandboxCpu0 = pids.map(cpuSeconds);
    let events = 0;
    for await (const t of pool.traceAll(programs)) events += t.steps.length;
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    // CPU of the sandboxes the run started with (a sandbox replaced during the run drops out).
    const sandboxCpuSeconds = pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - (sandboxCpu0[i] as number), 0);
    const replacements = Object.fromEntries(
      Object.entries(pool.replacements)
        .map(([k, v]): [string, number] => [k, v - (replaced0[k] ?? 0)])
        .filter(([, v]) => v > 0),
    );
    return { events, seconds, bootSeconds, rssMB: pool.pids.map(rssMB), parentCpuSeconds: (cpu.user + cpu.system) / 1e6, sandboxCpuSeconds, replacements };
  } finally {
    await pool.close();
  }
}

/** User + system CPU seconds of the children of this process that have exited and been waited for. */
function exitedChildrenCpuSeconds(): number {
  const fields = (readFileSync('/proc/self/stat', 'utf8').split(') ')[1] as string).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/**
 * Programs that each change process-wide state, so that every one of them is followed by a
 * replacement of its sandbox: wall time and CPU (of every sandbox, replaced ones included) per
 * program, with one sandbox.
 */
async function everyProgramRecycles(programs: Program[]): Promise<{ programs: number; seconds: number; cpuSeconds: number; replacements: Record<string, number> }> {
  const pool = await TracerPool.create({ workers: 1 });
  try {
    for await (const _ of pool.traceAll(programs.slice(0, 5))) void _;
    // Let the spare finish booting, as it would between two such programs in a longer run.
    await new Promise((res) => setTimeout(res, 8000));
    const live0 = pool.pids.map(cpuSeconds).reduce((a, b) => a + b, 0);
    const exited0 = exitedChildrenCpuSeconds();
    const start = performance.now();
    for await (const _ of pool.traceAll(programs)) void _;
    const seconds = (performance.now() - start) / 1000;
    const replacements = pool.replacements;
    // Sandboxes still alive (the current ones) are counted from /proc before they are closed; the
    // spare booted last is not among pool.pids, so its boot is left out of the figure.
    const live = pool.pids.map(cpuSeconds).reduce((a, b) => a + b, 0);
    await pool.close();
    await new Promise((res) => setTimeout(res, 500));
    const cpu = exitedChildrenCpuSeconds() - exited0 + live - live0;
    return { programs: programs.length, seconds, cpuSeconds: cpu, replacements };
  } finally {
    await pool.close();
  }
}

/** User + system CPU seconds of a process so far (0 once it is gone). */
function cpuSeconds(pid: number): number {
  try {
    const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] as string).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function rssMB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** Time from a wall-clock kill until a trivial program has been traced by the replacement. */
async function recycle(): Promise<number[]> {
  const pool = await TracerPool.create({ workers: 1, limits: { timeoutMs: 300 } });
  const trivial: Program = { id: 't', source: 'def f():\n    return 1\n', entry: 'f()' };
  const stuck: Program = { id: 's', source: 'def f():\n    return sum(range(10**12))\n', entry: 'f()' };
  const times: number[] = [];
  try {
    await pool.trace(trivial);
    for (let i = 0; i < 4; i++) {
      const t = await pool.trace(stuck);
      if (t.status !== 'timeout') throw new Error(`expected a timeout, got ${t.status}`);
      const start = performance.now();
      await pool.trace(trivial);
      times.push(Math.round(performance.now() - start));
      // Give the new spare time to boot, as a pool between kills would have.
      await new Promise((res) => setTimeout(res, 8000));
    }
  } finally {
    await pool.close();
  }
  return times;
}

const programs = repeated(loadPrograms(), repeat);
const long = repeated(longPrograms(), repeat);
const load = { before: loadavg()[0] };
process.stderr.write(`tracer bench: ${programs.length} programs, load average ${load.before.toFixed(1)}\n`);
const nat = native(programs);
process.stderr.write(`native: ${nat.events} events in ${nat.seconds.toFixed(2)} s\n`);
const one = await sandboxed(programs, 1);
process.stderr.write(`1 sandbox: ${one.events} events in ${one.seconds.toFixed(2)} s\n`);
const two = await sandboxed(programs, 2);
process.stderr.write(`2 sandboxes: ${two.events} events in ${two.seconds.toFixed(2)} s\n`);
const natLong = native(long);
const oneLong = await sandboxed(long, 1);
const twoLong = await sandboxed(long, 2);
process.stderr.write(
  `long programs: native ${natLong.events} events in ${natLong.seconds.toFixed(2)} s, 1 sandbox ${oneLong.events} in ${oneLong.seconds.toFixed(2)} s, 2 sandboxes in ${twoLong.seconds.toFixed(2)} s\n`,
);
const recycleMs = await recycle();
process.stderr.write(`recycle after kill: ${recycleMs.join(', ')} ms\n`);

// Isolation between programs. The synthetic presets, in one sandbox.
const presetRuns: Record<string, Awaited<ReturnType<typeof sandboxed>> & { programs: number }> = {};
for (const preset of ['easy', 'medium', 'hard'] as const) {
  const set = repeated(
    generatePrograms({ count: 500, seed: 1, preset }).map((p) => ({ id: p.id, source: p.source, entry: p.entry })),
    repeat,
  );
  presetRuns[preset] = { ...(await sandboxed(set, 1, { warmUp: 500 })), programs: set.length };
  process.stderr.write(`synthetic ${preset}: ${set.length} programs in ${(presetRuns[preset] as { seconds: number }).seconds.toFixed(2)} s\n`);
}
// CRUXEval programs whose module body names `getattr` (and does nothing else with it): after each,
// the tracer checks every standard-library module instead of those the program can name.
const dynamic = programs.map((p) => ({ ...p, source: `_ = getattr\n${p.source}` }));
const oneDynamic = await sandboxed(dynamic, 1);
process.stderr.write(`1 sandbox, every module checked: ${oneDynamic.seconds.toFixed(2)} s\n`);
// CRUXEval programs that each set an environment variable first: every one recycles its sandbox.
const poisoning = programs.slice(0, 60).map((p) => ({ ...p, source: `import os\nos.environ['EXECWM_BENCH'] = '1'\n${p.source}` }));
const recycling = await everyProgramRecycles(poisoning);
process.stderr.write(`every program recycles: ${recycling.programs} programs in ${recycling.seconds.toFixed(2)} s, ${recycling.cpuSeconds.toFixed(1)} s of CPU\n`);

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const nativeEventsPerSecond = nat.events / nat.seconds;
const oneEventsPerSecond = one.events / one.seconds;
const ratio = oneEventsPerSecond / nativeEventsPerSecond;
const longRatio = oneLong.events / oneLong.seconds / (natLong.events / natLong.seconds);
const scaling = one.seconds / two.seconds;
const longScaling = oneLong.seconds / twoLong.seconds;
// The first replacement starts Pyodide from the snapshot; later ones swap in the booted spare.
const recycleMedian = [...recycleMs.slice(1)].sort((a, b) => a - b)[1] as number;
const rssMax = Math.max(...one.rssMB, ...two.rssMB);
/** The figures of one sandboxed run over `count` programs. */
const runFigures = (run: Awaited<ReturnType<typeof sandboxed>>, count: number): Record<string, number> => ({
  events: run.events,
  seconds: round(run.seconds, 2),
  eventsPerSecond: Math.round(run.events / run.seconds),
  programsPerSecond: round(count / run.seconds),
  bootSeconds: round(run.bootSeconds),
  parentCpuSeconds: round(run.parentCpuSeconds, 2),
  sandboxCpuSeconds: round(run.sandboxCpuSeconds, 2),
  sandboxCpuMsPerProgram: round((run.sandboxCpuSeconds / count) * 1000, 3),
});
const figures = {
  programs: programs.length,
  repeat,
  native: { events: nat.events, seconds: round(nat.seconds, 2), eventsPerSecond: Math.round(nativeEventsPerSecond), programsPerSecond: round(nat.programs / nat.seconds) },
  sandbox1: runFigures(one, programs.length),
  sandbox2: runFigures(two, programs.length),
  longPrograms: {
    programs: long.length,
    native: { events: natLong.events, seconds: round(natLong.seconds, 2), eventsPerSecond: Math.round(natLong.events / natLong.seconds) },
    sandbox1: runFigures(oneLong, long.length),
    sandbox2: runFigures(twoLong, long.length),
  },
  recycleAfterKillMs: recycleMs,
  isolation: {
    note: 'a sandbox is replaced when a program leaves process-wide state different from a fresh sandbox; the replacements counted here are those of the measured passes',
    replacements: { cruxeval1: one.replacements, cruxeval2: two.replacements, loopHeavy1: oneLong.replacements },
    syntheticPresets1: Object.fromEntries(
      Object.entries(presetRuns).map(([preset, run]) => [preset, { ...runFigures(run, run.programs), replacements: run.replacements }]),
    ),
    cruxevalEveryModuleChecked1: { ...runFigures(oneDynamic, dynamic.length), replacements: oneDynamic.replacements },
    everyProgramRecycles1: {
      programs: recycling.programs,
      seconds: round(recycling.seconds, 2),
      msPerProgram: Math.round((recycling.seconds / recycling.programs) * 1000),
      cpuMsPerProgram: Math.round((recycling.cpuSeconds / recycling.programs) * 1000),
      replacements: recycling.replacements,
    },
  },
  rssPerSandboxMB: { oneSandbox: one.rssMB, twoSandboxes: two.rssMB },
  loadAverage: { before: round(load.before, 2), after: round(loadavg()[0], 2) },
  note: 'sandbox figures are end to end (JSON over a pipe, parsing included) and exclude pool start-up; the machine is shared, so timings are noisy',
  summary: [
    { figure: 'sandboxed vs native events/s (1 sandbox, CRUXEval)', value: round(ratio, 2), goal: '>= 1.0', met: ratio >= 1.0 },
    { figure: 'sandboxed vs native events/s (1 sandbox, loop-heavy)', value: round(longRatio, 2), goal: '>= 1.0', met: longRatio >= 1.0 },
    { figure: '2 sandboxes vs 1 (throughput, CRUXEval)', value: round(scaling, 2), goal: '>= 1.8', met: scaling >= 1.8 },
    { figure: '2 sandboxes vs 1 (throughput, loop-heavy)', value: round(longScaling, 2), goal: '>= 1.8', met: longScaling >= 1.8 },
    { figure: 'recycle after kill (spare booted), median ms', value: recycleMedian, goal: '<= 500', met: recycleMedian <= 500 },
    { figure: 'RSS per sandbox, max MB', value: rssMax, goal: '<= 250', met: rssMax <= 250 },
  ],
};
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'tracer.json'), `${JSON.stringify({ figures }, null, 2)}\n`);
process.stderr.write(`${JSON.stringify(figures.summary, null, 2)}\n`);
