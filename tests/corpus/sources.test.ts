import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJsonl, readPyDir } from '../../corpus/sources.js';
import { tempDir } from './helpers.js';

describe('program import', () => {
  it('reads CRUXEval-shape and entry records and lists every bad record with a reason', () => {
    const lines = [
      JSON.stringify({ id: 'sample_0', code: 'def f(a):\n    return a', input: '[1, 2]', output: '[1, 2]' }),
      JSON.stringify({ code: 'x = 1\n', entry: null }),
      '',
      '{"code": "def f(): pass", ',
      JSON.stringify({ code: 'def g(): pass' }),
      JSON.stringify([1, 2]),
      JSON.stringify({ id: 'sample_0', code: 'def f(a): pass', input: '1' }),
      JSON.stringify({ code: 'x' .repeat(50), entry: null }),
      JSON.stringify({ code: 3, entry: null }),
    ];
    const bytes = Buffer.concat([Buffer.from(lines.join('\n') + '\r\n'), Buffer.from([0xff, 0xfe, 0x0a])]);
    const { items } = parseJsonl(bytes, { name: 'p.jsonl', maxSourceBytes: 40 });
    const programs = items.flatMap((i) => ('program' in i ? [i.program] : []));
    const errors = items.flatMap((i) => ('error' in i ? [i.error] : []));
    expect(programs).toEqual([
      { id: 'sample_0', source: 'def f(a):\n    return a', entry: 'f([1, 2])', origin: 'jsonl:p.jsonl:1' },
      { id: 'p.jsonl:2', source: 'x = 1\n', entry: null, origin: 'jsonl:p.jsonl:2' },
    ]);
    expect(errors.map((e) => `${e.origin} ${e.reason.split(':')[0]}`)).toEqual([
      'jsonl:p.jsonl:4 malformed JSON',
      'jsonl:p.jsonl:5 missing field "input" or "entry" (a string)',
      'jsonl:p.jsonl:6 record is not a JSON object',
      'jsonl:p.jsonl:7 duplicate id "sample_0"',
      'jsonl:p.jsonl:8 source is 50 bytes, over the limit of 40 (--max-source-bytes)',
      'jsonl:p.jsonl:9 missing field "code" (a string)',
      'jsonl:p.jsonl:10 not valid UTF-8',
    ]);
  });

  it('imports a folder of scripts recursively, in path order, refusing oversized and non-UTF-8 files', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'b.py'), 'y = 2\n');
    writeFileSync(join(dir, 'a.py'), 'x = 1\n');
    writeFileSync(join(dir, 'sub', 'c.py'), 'z = 3\n');
    writeFileSync(join(dir, 'notes.txt'), 'not python');
    writeFileSync(join(dir, 'big.py'), '#'.repeat(100));
    writeFileSync(join(dir, 'latin1.py'), Buffer.from([0x78, 0x3d, 0xe9, 0x0a]));
    const { items, sha256 } = readPyDir(dir, { maxSourceBytes: 50 });
    expect(items.map((i) => ('program' in i ? i.program.id : `error ${i.error.origin}: ${i.error.reason}`))).toEqual([
      'a.py',
      'b.py',
      'error dir:big.py: source is 100 bytes, over the limit of 50 (--max-source-bytes)',
      'error dir:latin1.py: not valid UTF-8',
      'sub/c.py',
    ]);
    expect(readPyDir(dir, { maxSourceBytes: 50 }).sha256).toBe(sha256);
  });
});
