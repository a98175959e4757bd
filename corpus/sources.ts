/**
 * Program sources besides the synthetic generator: JSONL records, a folder of
 * `.py` scripts, standard input. Each yields an ordered list of *inputs*: a
 * program, or a bad record with the reason it was refused (malformed JSON,
 * missing field, not UTF-8, too large, duplicate id). Bad records never stop an
 * import; they land in the manifest's errors table.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { Program } from '../src/schema.js';
import { CorpusError } from './errors.js';

/** One record of the input stream. */
export type InputItem = { program: Program } | { error: { origin: string; reason: string } };

/** The inputs of one import and a hash of the raw bytes they came from (to check `--resume`). */
export interface ImportResult {
  items: InputItem[];
  sha256: string;
}

export interface ImportOptions {
  /** Records or files whose source exceeds this many bytes are refused. Default 1 MiB. */
  maxSourceBytes?: number;
  /** Function called by a CRUXEval-shape record (`code` + `input`): entry `f(<input>)`. Default `f`. */
  entryFunction?: string;
}

export const DEFAULT_MAX_SOURCE_BYTES = 1024 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

/** Gives programs unique ids: a repeated id becomes an error entry. */
class IdGuard {
  private readonly seen = new Set<string>();
  check(program: Program, origin: string): InputItem {
    if (this.seen.has(program.id)) return { error: { origin, reason: `duplicate id "${program.id}"` } };
    this.seen.add(program.id);
    return { program };
  }
}

function oversized(bytes: number, max: number): string {
  return `source is ${bytes} bytes, over the limit of ${max} (--max-source-bytes)`;
}

/**
 * Parses JSONL records: `{code, input}` (CRUXEval: entry `f(<input>)`), or
 * `{code, entry}` (`entry` null for a script). `id` is used when present,
 * otherwise `<name>:<line>`. Blank lines are skipped.
 */
export function parseJsonl(bytes: Uint8Array, options: ImportOptions & { name: string }): ImportResult {
  const { name, maxSourceBytes = DEFAULT_MAX_SOURCE_BYTES, entryFunction = 'f' } = options;
  const items: InputItem[] = [];
  const ids = new IdGuard();
  let start = 0;
  let lineNo = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    lineNo += 1;
    let lineBytes = bytes.subarray(start, end);
    start = end + 1;
    if (lineBytes.length > 0 && lineBytes[lineBytes.length - 1] === 0x0d) lineBytes = lineBytes.subarray(0, -1);
    const origin = `jsonl:${name}:${lineNo}`;
    const fail = (reason: string) => items.push({ error: { origin, reason } });
    const text = decodeUtf8(lineBytes);
    if (text === null) {
      fail('not valid UTF-8');
      continue;
    }
    if (text.trim() === '') continue;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      fail(`malformed JSON: ${(err as Error).message}`);
      continue;
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      fail('record is not a JSON object');
      continue;
    }
    const r = record as Record<string, unknown>;
    if (typeof r.code !== 'string') {
      fail('missing field "code" (a string)');
      continue;
    }
    const size = Buffer.byteLength(r.code);
    if (size > maxSourceBytes) {
      fail(oversized(size, maxSourceBytes));
      continue;
    }
    let entry: string | null;
    if ('entry' in r) {
      if (r.entry !== null && typeof r.entry !== 'string') {
        fail('field "entry" must be a string or null');
        continue;
      }
      entry = r.entry;
    } else if (typeof r.input === 'string') {
      entry = `${entryFunction}(${r.input})`;
    } else {
      fail('missing field "input" or "entry" (a string)');
      continue;
    }
    const id = typeof r.id === 'string' || typeof r.id === 'number' ? String(r.id) : `${name}:${lineNo}`;
    items.push(ids.check({ id, source: r.code, entry, origin }, origin));
  }
  return { items, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function readInput(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CorpusError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** Reads a JSONL file of programs (see {@link parseJsonl}). */
export function readJsonlFile(path: string, options: ImportOptions = {}): ImportResult {
  return parseJsonl(readInput(path), { ...options, name: basename(path) });
}

/** One Python script (no entry: traced as `<module>`). */
export function parseScript(bytes: Uint8Array, options: ImportOptions & { id: string; origin: string }): InputItem {
  const { id, origin, maxSourceBytes = DEFAULT_MAX_SOURCE_BYTES } = options;
  if (bytes.length > maxSourceBytes) return { error: { origin, reason: oversized(bytes.length, maxSourceBytes) } };
  const source = decodeUtf8(bytes);
  if (source === null) return { error: { origin, reason: 'not valid UTF-8' } };
  return { program: { id, source, entry: null, origin } };
}

function listPyFiles(root: string, dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    // Symlinks are not followed: they could loop or leave the folder.
    if (entry.isDirectory()) listPyFiles(root, full, out);
    else if (entry.isFile() && entry.name.endsWith('.py')) out.push(relative(root, full).split(sep).join('/'));
  }
}

/** Every `.py` file under `dir` (recursively, sorted by relative path), each a script. */
export function readPyDir(dir: string, options: ImportOptions = {}): ImportResult {
  const { maxSourceBytes = DEFAULT_MAX_SOURCE_BYTES } = options;
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new CorpusError(`${dir} is not a folder`);
  const files: string[] = [];
  listPyFiles(dir, dir, files);
  files.sort();
  const hash = createHash('sha256');
  const items = files.map((rel): InputItem => {
    const origin = `dir:${rel}`;
    const size = statSync(join(dir, rel)).size;
    hash.update(`${rel}\0${size}\0`);
    // Oversized files are refused without reading them.
    if (size > maxSourceBytes) return { error: { origin, reason: oversized(size, maxSourceBytes) } };
    const bytes = readFileSync(join(dir, rel));
    hash.update(bytes);
    return parseScript(bytes, { ...options, id: rel, origin });
  });
  return { items, sha256: hash.digest('hex') };
}
