/**
 * Runs programs in native CPython as a reference, for tests only: one python3
 * process executes every program from a JSON file, counting the events
 * sys.settrace reports for the program's own frames.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ReferenceRun {
  /** 'ok', 'syntax_error', 'exception' or 'step_limit'. */
  status: string;
  /** repr of the entry's return value when ok. */
  result: string | null;
  /** `TypeName: message` when the program raised. */
  error: string | null;
  /** call + line + return + exception events in the program's frames. */
  events: number;
  /** Hash of the line events with the locals before each, to tell executions apart; absent when not run. */
  trace?: string;
}

const SCRIPT = String.raw`
import hashlib, json, sys
progs = json.load(open(sys.argv[1]))
budget = int(sys.argv[2])
execute = sys.argv[3] == '1'
class Budget(BaseException):
    pass
out = []
for p in progs:
    count = 0
    digest = hashlib.sha256()
    def local(frame, event, arg):
        global count
        count += 1
        if count > budget:
            raise Budget()
        if event == 'line':
            digest.update(repr((frame.f_lineno, sorted((k, repr(v)) for k, v in frame.f_locals.items()))).encode())
        return local
    def glob(frame, event, arg):
        global count
        if frame.f_code.co_filename != '<prog>':
            return None
        count += 1
        if count > budget:
            raise Budget()
        return local
    rec = {'status': 'ok', 'result': None, 'error': None}
    try:
        code = compile(p['source'], '<prog>', 'exec')
        entry = compile(p['entry'], '<entry>', 'eval') if p['entry'] is not None else None
    except SyntaxError as e:
        rec['status'] = 'syntax_error'
        rec['error'] = 'SyntaxError: ' + str(e)
        out.append(dict(rec, events=0))
        continue
    if not execute or entry is None:
        out.append(dict(rec, events=0))
        continue
    env = {'__name__': '__prog__'}
    try:
        exec(code, env)
        sys.settrace(glob)
        try:
            value = eval(entry, env)
        finally:
            sys.settrace(None)
        rec['result'] = repr(value)
    except Budget:
        rec['status'] = 'step_limit'
    except Exception as e:
        rec['status'] = 'exception'
        rec['error'] = type(e).__name__ + ': ' + str(e)
    out.append(dict(rec, events=count, trace=digest.hexdigest()[:16]))
json.dump(out, sys.stdout)
`;

/** Whether python3 is installed (the reference checks are skipped without it). */
export function pythonAvailable(): boolean {
  return spawnSync('python3', ['--version'], { encoding: 'utf8' }).status === 0;
}

/**
 * Runs each `{source, entry}` in CPython; the entry call is traced, module-level
 * code is not. With `execute: false` the programs are only compiled (status
 * 'ok' or 'syntax_error'), which is safe for code that may not terminate.
 */
export function runInPython(
  programs: { source: string; entry: string | null }[],
  opts: { budget?: number; execute?: boolean } = {},
): ReferenceRun[] {
  const dir = mkdtempSync(join(tmpdir(), 'execwm-ref-'));
  try {
    const file = join(dir, 'programs.json');
    writeFileSync(file, JSON.stringify(programs));
    const args = [file, String(opts.budget ?? 10_000), opts.execute === false ? '0' : '1'];
    const res = spawnSync('python3', ['-c', SCRIPT, ...args], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, PYTHONHASHSEED: '0' },
    });
    if (res.status !== 0) throw new Error(`python3 reference run failed: ${res.stderr}`);
    return JSON.parse(res.stdout) as ReferenceRun[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
