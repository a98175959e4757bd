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
  makeData,
  makeVector,
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

/**
 * How one step's locals are stored: the entries written to `locals` (all of them
 * when `full`), and the names removed since the base state.
 */
function localsDelta(locals: Locals, base: Locals | undefined): { names: string[]; full: boolean; removed: string[] } {
  const names = Object.keys(locals);
  if (base === undefined) return { names, full: true, removed: [] };
  // A delta can only say "surviving names keep their order, new names come last".
  const removed: string[] = [];
  let kept = 0;
  for (const n of Object.keys(base)) {
    if (!Object.hasOwn(locals, n)) removed.push(n);
    else if (names[kept++] !== n) return { names, full: true, removed: [] };
  }
  const changed: string[] = [];
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    if (!Object.hasOwn(base, n)) {
      if (i < kept) return { names, full: true, removed: [] };
      changed.push(n);
    } else if (i >= kept) {
      return { names, full: true, removed: [] };
    } else if (!sameValue(base[n], locals[n])) {
      changed.push(n);
    }
  }
  return { names: changed, full: false, removed };
}

// ---- encoding: columns filled directly, then wrapped as Arrow data ----
// (apache-arrow's generic builders cost ~60 µs per step; this path is several times faster;
// the Parquet export builds its columns with the same classes)

export class Int32s {
  private buf = new Int32Array(256);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Int32Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  values(): Int32Array {
    return this.buf.slice(0, this.length);
  }
}

/** A bit per slot (validity, or Bool values). */
export class Bits {
  private buf = new Uint8Array(64);
  length = 0;
  zeros = 0;
  push(bit: boolean): void {
    if (this.length >> 3 >= this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    if (bit) this.buf[this.length >> 3] |= 1 << (this.length & 7);
    else this.zeros += 1;
    this.length += 1;
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, (this.length + 7) >> 3);
  }
  /** Validity props for makeData: no bitmap when nothing is null. */
  validity(): { nullCount: number; nullBitmap?: Uint8Array } {
    return this.zeros === 0 ? { nullCount: 0 } : { nullCount: this.zeros, nullBitmap: this.bytes() };
  }
}

export class Utf8s {
  private buf = Buffer.allocUnsafe(1 << 14);
  private pos = 0;
  private readonly offsets = new Int32s();
  readonly valid = new Bits();
  constructor() {
    this.offsets.push(0);
  }
  push(s: string | null): void {
    if (s !== null) {
      if (this.pos + s.length * 3 > this.buf.length) {
        const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + s.length * 3));
        this.buf.copy(next, 0, 0, this.pos);
        this.buf = next;
      }
      this.pos += this.buf.write(s, this.pos);
    }
    this.offsets.push(this.pos);
    this.valid.push(s !== null);
  }
  data(type: Utf8): Data<Utf8> {
    const data = new Uint8Array(this.pos);
    data.set(this.buf.subarray(0, this.pos));
    return makeData({ type, length: this.valid.length, ...this.valid.validity(), valueOffsets: this.offsets.values(), data });
  }
}

/** Dictionary-encoded strings; words numbered in first-seen order, so bytes are deterministic. */
class Words {
  private readonly index = new Map<string, number>();
  private readonly words = new Utf8s();
  private readonly keys = new Int32s();
  readonly valid = new Bits();
  push(s: string | null): void {
    // A null slot still needs a valid key; the empty word serves.
    const word = s ?? '';
    let k = this.index.get(word);
    if (k === undefined) {
      k = this.index.size;
      this.index.set(word, k);
      this.words.push(word);
    }
    this.keys.push(k);
    this.valid.push(s !== null);
  }
  data(type: Dictionary<Utf8, Int8 | Int32>): Data {
    const keys = this.keys.values();
    if (type.indices.bitWidth === 8 && this.index.size > 127) {
      throw new Error(`dictionary column ${type.id} has ${this.index.size} words; its Int8 keys hold 127`);
    }
    const data = type.indices.bitWidth === 8 ? Int8Array.from(keys) : keys;
    const dictionary = makeVector(this.words.data(type.dictionary));
    return makeData({ type, length: this.valid.length, ...this.valid.validity(), data, dictionary } as never);
  }
}

export class Ints {
  private readonly values = new Int32s();
  readonly valid = new Bits();
  push(v: number | null): void {
    this.values.push(v ?? 0);
    this.valid.push(v !== null);
  }
  data(type: Int32): Data<Int32> {
    return makeData({ type, length: this.valid.length, ...this.valid.validity(), data: this.values.values() });
  }
}

/** A string column builder: plain ({@link Utf8s}) or dictionary-encoded ({@link Words}). */
interface Strings {
  push(s: string | null): void;
  data(type: never): Data;
}

/**
 * Struct<repr, type, id?> for a Value, optionally with a leading `name` (a local). The name and
 * type columns are dictionary-encoded in shards; the Parquet export passes plain strings.
 */
export class Values {
  readonly name: Strings;
  readonly repr = new Utf8s();
  readonly type: Strings;
  readonly id = new Ints();
  readonly valid = new Bits();
  constructor(strings: () => Strings = () => new Words()) {
    this.name = strings();
    this.type = strings();
  }
  /** Adds a value (null for none); returns about how many bytes it adds uncompressed. */
  push(v: Value | null, name?: string): number {
    if (name !== undefined) this.name.push(name);
    this.repr.push(v === null ? '' : v.repr);
    this.type.push(v === null ? '' : v.type);
    this.id.push(v?.id ?? null);
    this.valid.push(v !== null);
    return (v === null ? 0 : v.repr.length + v.type.length) + (name?.length ?? 0) + 16;
  }
  data(type: Struct): Data<Struct> {
    const columns: Record<string, (t: never) => Data> = {
      name: (t) => this.name.data(t),
      repr: (t) => this.repr.data(t),
      type: (t) => this.type.data(t),
      id: (t) => this.id.data(t),
    };
    const children = type.children.map((f) => columns[f.name](f.type as never));
    return makeData({ type, length: this.valid.length, ...this.valid.validity(), children });
  }
}

/** List offsets plus validity. */
export class Lists {
  private readonly offsets = new Int32s();
  readonly valid = new Bits();
  private end = 0;
  constructor() {
    this.offsets.push(0);
  }
  push(count: number | null): void {
    this.end += count ?? 0;
    this.offsets.push(this.end);
    this.valid.push(count !== null);
  }
  data(type: List, child: Data): Data<List> {
    return makeData({ type, length: this.valid.length, ...this.valid.validity(), valueOffsets: this.offsets.values(), child });
  }
}

/** The type of field `name` of a struct (or of a list's struct items). */
export function fieldType<T>(struct: Struct | List, name: string): T {
  const s = (struct instanceof List ? struct.valueType : struct) as Struct;
  const f = s.children.find((c) => c.name === name);
  if (!f) throw new Error(`no field ${name}`);
  return f.type as T;
}

/** Encodes traces (in the given order) as one Arrow IPC file with `metadata` in its schema. */
export function encodeShard(traces: readonly CorpusTrace[], metadata: string): Uint8Array {
  const fields = buildSchemaFields();
  const c = {
    id: new Utf8s(),
    split: new Words(),
    origin: new Words(),
    status: new Words(),
    message: new Utf8s(),
    source: new Utf8s(),
    entry: new Utf8s(),
    result: new Values(),
    stdout: new Utf8s(),
    steps: new Lists(),
  };
  const s = {
    event: new Words(),
    line: new Ints(),
    func: new Words(),
    depth: new Ints(),
    locals: new Lists(),
    localItems: new Values(),
    full: new Bits(),
    removed: new Lists(),
    removedNames: new Words(),
    arg: new Values(),
    stdout: new Utf8s(),
  };
  for (const t of traces) {
    c.id.push(t.id);
    c.split.push(t.split);
    c.origin.push(t.origin);
    c.status.push(t.status);
    c.message.push(t.message);
    c.source.push(t.source);
    c.entry.push(t.entry);
    c.result.push(t.result);
    c.stdout.push(t.stdout);
    c.steps.push(t.steps.length);
    const frames = new FrameStates();
    for (const step of t.steps) {
      if (step.event === 'call') frames.reset(step.depth);
      s.event.push(step.event);
      s.line.push(step.line);
      s.func.push(step.func);
      s.depth.push(step.depth);
      if (step.locals === null) {
        s.locals.push(null);
        s.full.push(false);
        s.removed.push(null);
      } else {
        const delta = localsDelta(step.locals, frames.get(step.depth));
        for (const name of delta.names) s.localItems.push(step.locals[name], name);
        s.locals.push(delta.names.length);
        s.full.push(delta.full);
        for (const name of delta.removed) s.removedNames.push(name);
        s.removed.push(delta.removed.length > 0 ? delta.removed.length : null);
        frames.set(step.depth, step.locals);
      }
      if (step.event === 'return') frames.reset(step.depth);
      s.arg.push(step.arg);
      s.stdout.push(step.stdout);
    }
  }
  const type = (name: string) => fields.find((f) => f.name === name)?.type as never;
  const stepsType = type('steps') as List<Struct>;
  const stepType = stepsType.valueType;
  const localsType = fieldType<List<Struct>>(stepType, 'locals');
  const removedType = fieldType<List>(stepType, 'locals_removed');
  const stepColumns: Record<string, (t: never) => Data> = {
    event: (t) => s.event.data(t),
    line: (t) => s.line.data(t),
    func: (t) => s.func.data(t),
    depth: (t) => s.depth.data(t),
    locals: () => s.locals.data(localsType, s.localItems.data(localsType.valueType)),
    locals_full: (t: Bool) => makeData({ type: t, length: s.full.length, nullCount: 0, data: s.full.bytes() }),
    locals_removed: () => s.removed.data(removedType, s.removedNames.data(removedType.valueType as Dictionary<Utf8, Int32>)),
    arg: (t) => s.arg.data(t),
    stdout: (t) => s.stdout.data(t),
  };
  const stepChildren = stepType.children.map((f) => stepColumns[f.name](f.type as never));
  const stepData = makeData({ type: stepType, length: s.event.valid.length, nullCount: 0, children: stepChildren });
  const columns: Record<string, Data> = {
    id: c.id.data(type('id')),
    split: c.split.data(type('split')),
    origin: c.origin.data(type('origin')),
    status: c.status.data(type('status')),
    message: c.message.data(type('message')),
    source: c.source.data(type('source')),
    entry: c.entry.data(type('entry')),
    result: c.result.data(type('result')),
    stdout: c.stdout.data(type('stdout')),
    steps: c.steps.data(stepsType, stepData),
  };
  const data = makeData({ type: new Struct(fields), length: traces.length, nullCount: 0, children: fields.map((f) => columns[f.name]) });
  const schema = new Schema(fields, new Map([[SHARD_METADATA_KEY, metadata]]));
  const table = new Table([new RecordBatch(schema, data)]);
  return tableToIPC(table, 'file');
}

// ---- decoding: straight from the column buffers, without per-cell proxies ----

function child(data: Data, name: string): Data {
  const index = (data.type as Struct).children.findIndex((f) => f.name === name);
  if (index < 0) throw new CorpusError(`shard is missing the column "${name}"`);
  return data.children[index];
}

type Getter<T> = (i: number) => T;

// Offsets and keys are checked before use: bytes that are damaged but still parse as Arrow
// must fail as a corpus error, not read past a buffer or allocate a string of gigabytes.

function outOfRange(what: string, i: number): CorpusError {
  return new CorpusError(`${what} ${i} out of range (damaged shard)`);
}

function utf8(data: Data): Getter<string> {
  const offsets = data.valueOffsets as Int32Array;
  const values = data.values as Uint8Array;
  const buf = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return (i) => {
    const begin = offsets[i];
    const end = offsets[i + 1];
    if (!(begin >= 0 && end >= begin && end <= buf.length)) throw outOfRange('string offset', i);
    return buf.toString('utf8', begin, end);
  };
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
  return (i) => {
    const word = words[keys[i]];
    if (word === undefined) throw outOfRange('dictionary key', keys[i]);
    return word;
  };
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
  const items = data.children[0]?.length ?? 0;
  return (i) => {
    const begin = offsets[i];
    const end = offsets[i + 1];
    if (!(begin >= 0 && end >= begin && end <= items)) throw outOfRange('list offset', i);
    return [begin, end];
  };
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

export interface DecodeOptions {
  /** Decides from split and status alone whether a row is decoded at all. Default: every row. */
  keep?: RowFilter;
  /** How errors name the shard, e.g. `corpus data/c1: part-00003.arrow`. Default `shard`. */
  label?: string;
  /** The row count the shard must have (from the manifest); checked before any row is decoded. */
  expectedRows?: number;
}

/** The message of anything thrown while decoding, for a one-line corpus error. */
function causeOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Decodes the rows of one Arrow IPC shard, in order (those `keep` accepts). Bytes that do
 * not decode raise a {@link CorpusError} naming the shard and the row, never an Arrow error.
 */
export function* decodeShard(bytes: Uint8Array, options: DecodeOptions = {}): Generator<CorpusTrace> {
  const { keep, label = 'shard', expectedRows } = options;
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    throw new CorpusError(`${label}: not a readable Arrow IPC file (${causeOf(err)})`);
  }
  if (expectedRows !== undefined && table.numRows !== expectedRows) {
    throw new CorpusError(`${label}: holds ${table.numRows} rows, the manifest says ${expectedRows}`);
  }
  let firstRow = 0;
  for (const batch of table.batches) {
    yield* decodeBatch(batch.data as Data<Struct>, keep, label, firstRow);
    firstRow += batch.numRows;
  }
}

function decodeBatch(data: Data<Struct>, keep: RowFilter | undefined, label: string, firstRow: number): Generator<CorpusTrace> {
  try {
    return decodeRows(data, keep, label, firstRow);
  } catch (err) {
    throw new CorpusError(`${label}: ${causeOf(err)}`);
  }
}

function decodeRows(data: Data<Struct>, keep: RowFilter | undefined, label: string, firstRow: number): Generator<CorpusTrace> {
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
          if (base === undefined) throw new CorpusError(`step ${k - begin}: delta locals without a previous state`);
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
      let trace: CorpusTrace | null;
      try {
        trace = keep !== undefined && !keep(split(row), status(row)) ? null : {
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
      } catch (err) {
        throw new CorpusError(`${label} row ${firstRow + row}: ${causeOf(err)}`);
      }
      if (trace !== null) yield trace;
    }
  })();
}

/** The shard's own metadata string (see {@link SHARD_METADATA_KEY}), read without decoding rows. */
export function shardMetadata(bytes: Uint8Array): string {
  let meta: string | undefined;
  try {
    meta = RecordBatchReader.from(bytes).open().schema.metadata.get(SHARD_METADATA_KEY);
  } catch (err) {
    throw new CorpusError(`shard is not a readable Arrow IPC file (${causeOf(err)})`);
  }
  if (meta === undefined) throw new CorpusError('shard has no execwm metadata');
  return meta;
}
