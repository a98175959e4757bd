/**
 * One shard of a corpus as an Arrow IPC file: the table layout, and the
 * encode/decode of traces with per-step locals stored as deltas.
 *
 * One row per trace:
 *
 * | column   | type                                   |                                         |
 * | -------- | -------------------------------------- | --------------------------------------- |
 * | id       | Utf8                                   | the program id                          |
 * | split    | Dictionary<Utf8>                       | train / val / test                      |
 * | origin   | Dictionary<Utf8>                       | `synthetic:easy`, `jsonl:f.jsonl:3`, …  |
 * | status   | Dictionary<Utf8>                       | a {@link TraceStatus}                   |
 * | message  | Utf8?                                  |                                         |
 * | source   | Utf8                                   |                                         |
 * | entry    | Utf8?                                  |                                         |
 * | result   | Struct<repr, type, id?>?               | a {@link Value}                         |
 * | stdout   | Utf8                                   |                                         |
 * | steps    | List<Struct<…>>                        | see below                               |
 *
 * Each step: `event`, `func` (dictionaries), `line`, `depth`, `arg` (a value
 * struct), `stdout`, and the locals in three fields:
 *
 * - `locals`: List<Struct<name, repr, type, id?>>, null when the step has no
 *   locals (return / exception);
 * - `locals_full`: true when `locals` is the whole state; false when it lists only
 *   the variables that are new or changed since the previous step of the same
 *   frame (same depth, no `call` or `return` at that depth in between);
 * - `locals_removed`: names present in that previous step and gone now (`del x`).
 *
 * A delta keeps the previous order of surviving names and appends new names; when
 * the real order differs (function locals follow `co_varnames`, not assignment
 * order) the step is stored whole. Decoding applies the same rules, so the states
 * come back identical, order included.
 */
import {
  Bool,
  Dictionary,
  Field,
  Int32,
  Int8,
  List,
  RecordBatch,
  RecordBatchReader,
  Schema,
  Struct,
  Table,
  Utf8,
  makeBuilder,
  tableFromIPC,
  tableToIPC,
  type Data,
} from 'apache-arrow';
import type { Locals, Step, Trace, TraceEvent, TraceStatus, Value } from '../src/schema.js';
import { CorpusError } from './errors.js';
import type { Split } from './splits.js';

/** A trace as stored in a corpus: with its split and where its program came from. */
export interface CorpusTrace extends Trace {
  split: Split;
  /** The program's origin label (`''` when the program had none). */
  origin: string;
}

/** Key of the shard's own bookkeeping in the Arrow schema metadata. */
export const SHARD_METADATA_KEY = 'execwm.shard';

// Dictionary ids are fixed so the same traces always give the same bytes
// (apache-arrow otherwise draws them from a process-wide counter).
let nextDictionaryId = 0;
function dictionary(indexType: Int8 | Int32 = new Int32()): Dictionary<Utf8, Int8 | Int32> {
  return new Dictionary(new Utf8(), indexType, nextDictionaryId++);
}

function valueFields(): Field[] {
  return [
    new Field('repr', new Utf8(), false),
    new Field('type', dictionary(), false),
    new Field('id', new Int32(), true),
  ];
}

function buildSchemaFields(): Field[] {
  nextDictionaryId = 0;
  const local = new Struct([new Field('name', dictionary(), false), ...valueFields()]);
  const step = new Struct([
    new Field('event', dictionary(new Int8()), false),
    new Field('line', new Int32(), false),
    new Field('func', dictionary(), false),
    new Field('depth', new Int32(), false),
    new Field('locals', new List(new Field('item', local, false)), true),
    new Field('locals_full', new Bool(), false),
    new Field('locals_removed', new List(new Field('item', dictionary(), false)), true),
    new Field('arg', new Struct(valueFields()), true),
    new Field('stdout', new Utf8(), false),
  ]);
  return [
    new Field('id', new Utf8(), false),
    new Field('split', dictionary(new Int8()), false),
    new Field('origin', dictionary(), false),
    new Field('status', dictionary(new Int8()), false),
    new Field('message', new Utf8(), true),
    new Field('source', new Utf8(), false),
    new Field('entry', new Utf8(), true),
    new Field('result', new Struct(valueFields()), true),
    new Field('stdout', new Utf8(), false),
    new Field('steps', new List(new Field('item', step, false)), false),
  ];
}

interface ValueRow {
  repr: string;
  type: string;
  id: number | null;
}
interface LocalRow extends ValueRow {
  name: string;
}
interface StepRow {
  event: TraceEvent;
  line: number;
  func: string;
  depth: number;
  locals: LocalRow[] | null;
  locals_full: boolean;
  locals_removed: string[] | null;
  arg: ValueRow | null;
  stdout: string;
}

function valueRow(v: Value | null): ValueRow | null {
  return v === null ? null : { repr: v.repr, type: v.type, id: v.id ?? null };
}

function sameValue(a: Value, b: Value): boolean {
  return a.repr === b.repr && a.type === b.type && a.id === b.id;
}

/**
 * Per-frame state shared by the encoder and the decoder: the last full locals
 * seen at each depth. Both sides call the same transitions, which is what makes
 * the delta lossless.
 */
class FrameStates {
  private readonly byDepth = new Map<number, Locals>();
  /** Forgets frames at `depth` and deeper (a new call there, or a return from it). */
  reset(depth: number): void {
    for (const d of this.byDepth.keys()) if (d >= depth) this.byDepth.delete(d);
  }
  get(depth: number): Locals | undefined {
    return this.byDepth.get(depth);
  }
  set(depth: number, locals: Locals): void {
    this.byDepth.set(depth, locals);
  }
}

function encodeLocals(
  locals: Locals,
  base: Locals | undefined,
): Pick<StepRow, 'locals' | 'locals_full' | 'locals_removed'> {
  const names = Object.keys(locals);
  const full = (): Pick<StepRow, 'locals' | 'locals_full' | 'locals_removed'> => ({
    locals: names.map((name) => ({ name, ...(valueRow(locals[name]) as ValueRow) })),
    locals_full: true,
    locals_removed: null,
  });
  if (base === undefined) return full();
  const baseNames = Object.keys(base);
  const removed = baseNames.filter((n) => !Object.hasOwn(locals, n));
  const added = names.filter((n) => !Object.hasOwn(base, n));
  const expected = baseNames.filter((n) => Object.hasOwn(locals, n)).concat(added);
  if (expected.some((n, i) => n !== names[i])) return full();
  const changed: LocalRow[] = [];
  for (const name of names) {
    const v = locals[name];
    if (!Object.hasOwn(base, name) || !sameValue(base[name], v)) {
      changed.push({ name, ...(valueRow(v) as ValueRow) });
    }
  }
  return { locals: changed, locals_full: false, locals_removed: removed.length > 0 ? removed : null };
}

function stepRows(steps: Step[]): StepRow[] {
  const frames = new FrameStates();
  return steps.map((s) => {
    if (s.event === 'call') frames.reset(s.depth);
    let stored: Pick<StepRow, 'locals' | 'locals_full' | 'locals_removed'> = {
      locals: null,
      locals_full: false,
      locals_removed: null,
    };
    if (s.locals !== null) {
      stored = encodeLocals(s.locals, frames.get(s.depth));
      frames.set(s.depth, s.locals);
    }
    if (s.event === 'return') frames.reset(s.depth);
    return {
      event: s.event,
      line: s.line,
      func: s.func,
      depth: s.depth,
      ...stored,
      arg: valueRow(s.arg),
      stdout: s.stdout,
    };
  });
}

/** Encodes traces (in the given order) as one Arrow IPC file with `metadata` in its schema. */
export function encodeShard(traces: readonly CorpusTrace[], metadata: string): Uint8Array {
  const fields = buildSchemaFields();
  const builder = makeBuilder({ type: new Struct(fields), nullValues: [null, undefined] });
  // The struct builder accepts plain objects keyed by field name; its typing wants row proxies.
  const append = (row: Record<string, unknown>) => builder.append(row as never);
  for (const t of traces) {
    append({
      id: t.id,
      split: t.split,
      origin: t.origin,
      status: t.status,
      message: t.message,
      source: t.source,
      entry: t.entry,
      result: valueRow(t.result),
      stdout: t.stdout,
      steps: stepRows(t.steps),
    });
  }
  const data = builder.finish().flush();
  const schema = new Schema(fields, new Map([[SHARD_METADATA_KEY, metadata]]));
  const table = new Table([new RecordBatch(schema, data as Data<Struct>)]);
  return tableToIPC(table, 'file');
}

// ---- decoding: straight from the column buffers, without per-cell proxies ----

function child(data: Data, name: string): Data {
  const index = (data.type as Struct).children.findIndex((f) => f.name === name);
  if (index < 0) throw new CorpusError(`shard is missing the column "${name}"`);
  return data.children[index];
}

type Getter<T> = (i: number) => T;

function utf8(data: Data): Getter<string> {
  const offsets = data.valueOffsets as Int32Array;
  const values = data.values as Uint8Array;
  const buf = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return (i) => buf.toString('utf8', offsets[i], offsets[i + 1]);
}

function dictionaryStrings(data: Data): Getter<string> {
  const dict = data.dictionary;
  if (!dict) throw new CorpusError('shard has a dictionary column without a dictionary');
  const words: string[] = [];
  for (const chunk of dict.data) {
    const get = utf8(chunk);
    for (let i = 0; i < chunk.length; i++) words.push(get(i));
  }
  const keys = data.values as Int8Array | Int32Array;
  return (i) => words[keys[i]];
}

function nullable<T>(data: Data, get: Getter<T>): Getter<T | null> {
  if (data.nullCount === 0) return get;
  return (i) => (data.getValid(i) ? get(i) : null);
}

function int32(data: Data): Getter<number> {
  const values = data.values as Int32Array;
  return (i) => values[i];
}

function bool(data: Data): Getter<boolean> {
  const bytes = data.values as Uint8Array;
  return (i) => {
    const pos = data.offset + i;
    return (bytes[pos >> 3] & (1 << (pos % 8))) !== 0;
  };
}

function listRange(data: Data): Getter<[number, number]> {
  const offsets = data.valueOffsets as Int32Array;
  return (i) => [offsets[i], offsets[i + 1]];
}

function valueGetter(data: Data): Getter<Value | null> {
  const repr = utf8(child(data, 'repr'));
  const type = dictionaryStrings(child(data, 'type'));
  const id = nullable(child(data, 'id'), int32(child(data, 'id')));
  return nullable(data, (i) => {
    const v: Value = { repr: repr(i), type: type(i) };
    const n = id(i);
    if (n !== null) v.id = n;
    return v;
  });
}

/** Sets `obj[key]`, also for the key `__proto__` (a valid Python name). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/** Decides from split and status alone whether a row is decoded at all. */
export type RowFilter = (split: Split, status: TraceStatus) => boolean;

/** Decodes the rows of one Arrow IPC shard, in order (those `keep` accepts, when given). */
export function* decodeShard(bytes: Uint8Array, keep?: RowFilter): Generator<CorpusTrace> {
  const table = tableFromIPC(bytes);
  for (const batch of table.batches) yield* decodeBatch(batch.data as Data<Struct>, keep);
}

function decodeBatch(data: Data<Struct>, keep: RowFilter | undefined): Generator<CorpusTrace> {
  const id = utf8(child(data, 'id'));
  const split = dictionaryStrings(child(data, 'split')) as Getter<Split>;
  const origin = dictionaryStrings(child(data, 'origin'));
  const status = dictionaryStrings(child(data, 'status')) as Getter<TraceStatus>;
  const message = nullable(child(data, 'message'), utf8(child(data, 'message')));
  const source = utf8(child(data, 'source'));
  const entry = nullable(child(data, 'entry'), utf8(child(data, 'entry')));
  const result = valueGetter(child(data, 'result'));
  const stdout = utf8(child(data, 'stdout'));
  const stepsList = child(data, 'steps');
  const stepRange = listRange(stepsList);
  const steps = stepsList.children[0];
  const s = {
    event: dictionaryStrings(child(steps, 'event')) as Getter<TraceEvent>,
    line: int32(child(steps, 'line')),
    func: dictionaryStrings(child(steps, 'func')),
    depth: int32(child(steps, 'depth')),
    localsRange: nullable(child(steps, 'locals'), listRange(child(steps, 'locals'))),
    full: bool(child(steps, 'locals_full')),
    removedRange: nullable(child(steps, 'locals_removed'), listRange(child(steps, 'locals_removed'))),
    arg: valueGetter(child(steps, 'arg')),
    stdout: utf8(child(steps, 'stdout')),
  };
  const localItems = child(steps, 'locals').children[0];
  const localName = dictionaryStrings(child(localItems, 'name'));
  const localValue = valueGetter(localItems);
  const removedName = dictionaryStrings(child(steps, 'locals_removed').children[0]);

  function decodeSteps(row: number): Step[] {
    const [begin, end] = stepRange(row);
    const frames = new FrameStates();
    const out: Step[] = [];
    for (let k = begin; k < end; k++) {
      const event = s.event(k);
      const depth = s.depth(k);
      if (event === 'call') frames.reset(depth);
      let locals: Locals | null = null;
      const range = s.localsRange(k);
      if (range !== null) {
        locals = {};
        if (!s.full(k)) {
          const base = frames.get(depth);
          if (base === undefined) throw new CorpusError(`shard row ${row} step ${k - begin}: delta locals without a previous state`);
          const gone = new Set<string>();
          const removed = s.removedRange(k);
          if (removed !== null) for (let r = removed[0]; r < removed[1]; r++) gone.add(removedName(r));
          for (const name of Object.keys(base)) if (!gone.has(name)) setOwn(locals, name, base[name]);
        }
        for (let j = range[0]; j < range[1]; j++) setOwn(locals, localName(j), localValue(j) as Value);
        frames.set(depth, locals);
      }
      if (event === 'return') frames.reset(depth);
      out.push({ event, line: s.line(k), func: s.func(k), depth, locals, arg: s.arg(k), stdout: s.stdout(k) });
    }
    return out;
  }

  return (function* () {
    for (let row = 0; row < data.length; row++) {
      if (keep !== undefined && !keep(split(row), status(row))) continue;
      yield {
        id: id(row),
        source: source(row),
        entry: entry(row),
        status: status(row),
        message: message(row),
        result: result(row),
        steps: decodeSteps(row),
        stdout: stdout(row),
        split: split(row),
        origin: origin(row),
      };
    }
  })();
}

/** The shard's own metadata string (see {@link SHARD_METADATA_KEY}), read without decoding rows. */
export function shardMetadata(bytes: Uint8Array): string {
  const reader = RecordBatchReader.from(bytes).open();
  const meta = reader.schema.metadata.get(SHARD_METADATA_KEY);
  if (meta === undefined) throw new CorpusError('shard has no execwm metadata');
  return meta;
}
