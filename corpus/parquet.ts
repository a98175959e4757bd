/**
 * A corpus as Parquet in the Hugging Face Hub layout, for readers that do not
 * speak execwm's delta-encoded Arrow shards (pandas, polars, DuckDB, `datasets`):
 *
 *   OUT/README.md                                  the dataset card (card.ts)
 *   OUT/data/train-00000-of-00002.parquet          one row per trace, zstd
 *   OUT/data/validation-00000-of-00001.parquet     (the corpus's `val` split)
 *   OUT/data/test-00000-of-00001.parquet
 *
 * Every step's `locals` is the *full* state (the reader has already rebuilt it
 * from the stored deltas), so any Parquet reader sees what the tracer saw:
 *
 * | column     | type                                                          |
 * | ---------- | ------------------------------------------------------------- |
 * | id         | string                                                        |
 * | split      | string: train / validation / test                             |
 * | origin     | string: `synthetic:easy`, `jsonl:f.jsonl:3`, … (`''` for none)|
 * | difficulty | string?: the synthetic preset, null for other origins         |
 * | status     | string: a TraceStatus                                         |
 * | message    | string?                                                       |
 * | source     | string                                                        |
 * | entry      | string?                                                       |
 * | result     | struct<repr, type, id?>?                                      |
 * | stdout     | string                                                        |
 * | steps      | list<struct<event, line, func, depth, locals, arg, stdout>>  |
 * | text       | string: the CWM text (only when asked for)                    |
 *
 * `locals` is list<struct<name, repr, type, id?>> in the frame's own order, null
 * for return and exception steps; `arg` is struct<repr, type, id?>?.
 *
 * Writer: parquet-wasm (the Rust `parquet` crate of Apache Arrow compiled to
 * WebAssembly), pinned because its API changed at 0.5 and 0.6. It takes the
 * Arrow table as is, nested lists of structs included, and compresses with
 * zstd; docs/export.md compares it with hyparquet-writer on a real corpus.
 *
 * Memory stays bounded whatever the corpus and file sizes: each split is read in
 * its own pass over the corpus (one shard decoded at a time), traces go straight
 * into column buffers, and the writer pulls one batch of about `rowGroupBytes`
 * at a time and streams the compressed file out. A new file starts after about
 * `fileBytes` of uncompressed rows. Files are written under a temporary name and
 * renamed to `-NNNNN-of-MMMMM` when the split's file count is known.
 */
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { join } from 'node:path';
import { Field, Int32, List, RecordBatch, Schema, Struct, Table, Utf8, makeData, tableToIPC, type Data } from 'apache-arrow';
import type { Locals, Step } from '../src/schema.js';
import { CorpusError } from './errors.js';
import { Ints, Lists, Utf8s, Values, fieldType, type CorpusTrace } from './format.js';
import { readManifest, type Manifest } from './manifest.js';
import { readCorpus } from './reader.js';
import { SPLITS, type Split } from './splits.js';

/** Split names as the Hub spells them (the corpus says `val`). */
export const HUB_SPLIT: Record<Split, string> = { train: 'train', val: 'validation', test: 'test' };

/** The Parquet data folder inside the export. */
export const PARQUET_DATA_DIR = 'data';

const DEFAULT_FILE_BYTES = 512 * 1024 * 1024;
const DEFAULT_ROW_GROUP_BYTES = 16 * 1024 * 1024;

function valueType(): Struct {
  return new Struct([
    new Field('repr', new Utf8(), false),
    new Field('type', new Utf8(), false),
    new Field('id', new Int32(), true),
  ]);
}

/** The Arrow schema of the export (the Parquet file stores it too). */
export function parquetSchema(withText: boolean): Schema {
  const local = new Struct([new Field('name', new Utf8(), false), ...valueType().children]);
  const step = new Struct([
    new Field('event', new Utf8(), false),
    new Field('line', new Int32(), false),
    new Field('func', new Utf8(), false),
    new Field('depth', new Int32(), false),
    new Field('locals', new List(new Field('item', local, false)), true),
    new Field('arg', valueType(), true),
    new Field('stdout', new Utf8(), false),
  ]);
  const fields = [
    new Field('id', new Utf8(), false),
    new Field('split', new Utf8(), false),
    new Field('origin', new Utf8(), false),
    new Field('difficulty', new Utf8(), true),
    new Field('status', new Utf8(), false),
    new Field('message', new Utf8(), true),
    new Field('source', new Utf8(), false),
    new Field('entry', new Utf8(), true),
    new Field('result', valueType(), true),
    new Field('stdout', new Utf8(), false),
    new Field('steps', new List(new Field('item', step, false)), false),
  ];
  if (withText) fields.push(new Field('text', new Utf8(), false));
  return new Schema(fields);
}

/** `synthetic:hard` → `hard`; null for programs that did not come from the generator. */
export function difficultyOf(origin: string): string | null {
  const [kind, preset] = origin.split(':');
  return kind === 'synthetic' && preset ? preset : null;
}

/** The export writes plain strings where shards dictionary-encode them. */
const plain = () => new Utf8s();

/** Column buffers for one batch of rows; `bytes` estimates their uncompressed size. */
class RowBuffers {
  rows = 0;
  bytes = 0;
  private readonly c = {
    id: new Utf8s(),
    split: new Utf8s(),
    origin: new Utf8s(),
    difficulty: new Utf8s(),
    status: new Utf8s(),
    message: new Utf8s(),
    source: new Utf8s(),
    entry: new Utf8s(),
    result: new Values(plain),
    stdout: new Utf8s(),
    steps: new Lists(),
    text: new Utf8s(),
  };
  private readonly s = {
    event: new Utf8s(),
    line: new Ints(),
    func: new Utf8s(),
    depth: new Ints(),
    locals: new Lists(),
    local: new Values(plain),
    arg: new Values(plain),
    stdout: new Utf8s(),
  };

  constructor(private readonly schema: Schema) {}

  push(trace: CorpusTrace, text: string | null): void {
    const c = this.c;
    const strings: (keyof typeof c & keyof CorpusTrace)[] = ['id', 'origin', 'status', 'message', 'source', 'entry', 'stdout'];
    for (const k of strings) {
      const v = trace[k] as string | null;
      c[k as 'id'].push(v);
      this.bytes += (v?.length ?? 0) + 8;
    }
    c.split.push(HUB_SPLIT[trace.split]);
    c.difficulty.push(difficultyOf(trace.origin));
    this.bytes += c.result.push(trace.result) + 24;
    c.steps.push(trace.steps.length);
    for (const step of trace.steps) this.pushStep(step);
    if (text !== null) {
      c.text.push(text);
      this.bytes += text.length + 4;
    }
    this.rows += 1;
  }

  private pushStep(step: Step): void {
    const { s } = this;
    s.event.push(step.event);
    s.line.push(step.line);
    s.func.push(step.func);
    s.depth.push(step.depth);
    const locals: Locals | null = step.locals;
    s.locals.push(locals === null ? null : Object.keys(locals).length);
    if (locals !== null) for (const [name, v] of Object.entries(locals)) this.bytes += s.local.push(v, name);
    this.bytes += s.arg.push(step.arg);
    s.stdout.push(step.stdout);
    this.bytes += step.event.length + step.func.length + step.stdout.length + 24;
  }

  /** The buffered rows as one Arrow record batch. */
  batch(): RecordBatch {
    const { c, s } = this;
    const fields = this.schema.fields;
    const type = <T>(name: string): T => {
      const f = fields.find((x) => x.name === name);
      if (!f) throw new Error(`no column ${name} in the Parquet schema`);
      return f.type as T;
    };
    const stepsType = type<List>('steps');
    const stepType = stepsType.valueType as Struct;
    const stepChildren: Record<string, () => Data> = {
      event: () => s.event.data(fieldType(stepType, 'event')),
      line: () => s.line.data(fieldType(stepType, 'line')),
      func: () => s.func.data(fieldType(stepType, 'func')),
      depth: () => s.depth.data(fieldType(stepType, 'depth')),
      locals: () => {
        const t = fieldType<List>(stepType, 'locals');
        return s.locals.data(t, s.local.data(t.valueType as Struct));
      },
      arg: () => s.arg.data(fieldType(stepType, 'arg')),
      stdout: () => s.stdout.data(fieldType(stepType, 'stdout')),
    };
    const stepData = makeData({
      type: stepType,
      length: s.event.valid.length,
      nullCount: 0,
      children: stepType.children.map((f) => stepChildren[f.name]()),
    });
    const columns: Record<string, () => Data> = {
      steps: () => c.steps.data(stepsType, stepData),
      result: () => c.result.data(type('result')),
    };
    const children = fields.map((f) =>
      columns[f.name] ? columns[f.name]() : (c[f.name as 'id'] as Utf8s).data(f.type as Utf8),
    );
    const data = makeData({ type: new Struct(fields), length: this.rows, nullCount: 0, children });
    return new RecordBatch(this.schema, data);
  }
}

export interface ParquetFileEntry {
  /** Path inside the export folder, e.g. `data/train-00000-of-00002.parquet`. */
  path: string;
  split: Split;
  rows: number;
  /** Bytes of the Parquet file. */
  bytes: number;
  /** Bytes of the same rows as uncompressed Arrow (what `datasets` calls `num_bytes`). */
  arrowBytes: number;
}

export interface ParquetExport {
  files: ParquetFileEntry[];
  rowsBySplit: Record<Split, number>;
  manifest: Manifest;
}

export interface ParquetExportOptions {
  /** The corpus folder. */
  corpus: string;
  /** The export folder (gets `data/` and the card). */
  out: string;
  /**
   * Adds a `text` column: the CWM text of each trace. The caller brings the
   * serializer (training/sequence.ts), which corpus/ does not import.
   */
  text?: (trace: CorpusTrace) => string;
  /** Start a new file once a file's rows hold about this many uncompressed bytes. Default 512 MiB. */
  fileBytes?: number;
  /** Row groups (and the batches handed to the writer) of about this many uncompressed bytes. Default 16 MiB. */
  rowGroupBytes?: number;
  /** Replace the Parquet files and card of an earlier export in `out`. Default false. */
  overwrite?: boolean;
  /** Called after each trace with the count so far and the corpus total. */
  onProgress?: (done: number, total: number) => void;
}

/** A finished export's files in `out/data`, or the half-written ones of a killed run. */
function exportFiles(dataDir: string): string[] {
  if (!existsSync(dataDir)) return [];
  return readdirSync(dataDir).filter((f) => /^(train|validation|test)-\d{5}(-of-\d{5})?\.parquet(\.tmp)?$/.test(f));
}

/** Writes the Parquet files of a corpus (see the module comment); the card is card.ts's job. */
export async function exportParquet(options: ParquetExportOptions): Promise<ParquetExport> {
  const { corpus, out, text, overwrite = false, onProgress } = options;
  const fileBytes = options.fileBytes ?? DEFAULT_FILE_BYTES;
  const rowGroupBytes = options.rowGroupBytes ?? DEFAULT_ROW_GROUP_BYTES;
  if (!(fileBytes > 0)) throw new TypeError(`Expected \`fileBytes\` to be positive, got ${fileBytes}`);
  if (!(rowGroupBytes > 0)) throw new TypeError(`Expected \`rowGroupBytes\` to be positive, got ${rowGroupBytes}`);
  const manifest = readManifest(corpus);
  const dataDir = join(out, PARQUET_DATA_DIR);
  const earlier = exportFiles(dataDir);
  if (earlier.length > 0) {
    if (!overwrite) throw new CorpusError(`${out} already holds a Parquet export (use --overwrite to replace it)`);
    for (const f of earlier) rmSync(join(dataDir, f));
  }
  mkdirSync(dataDir, { recursive: true });
  // Loaded here so that commands which never write Parquet do not compile its wasm.
  const pw = await import('parquet-wasm/node');
  const schema = parquetSchema(text !== undefined);
  const files: ParquetFileEntry[] = [];
  const rowsBySplit = Object.fromEntries(SPLITS.map((s) => [s, 0])) as Record<Split, number>;
  let done = 0;

  for (const split of SPLITS) {
    const traces = readCorpus(corpus, { split })[Symbol.asyncIterator]();
    // One trace read ahead, so that a file is started only when it will have rows
    // (the writer fails on a stream without batches).
    let next = await traces.next();
    const pending: { tmp: string; rows: number; bytes: number; arrowBytes: number }[] = [];
    while (next.done !== true) {
      const file = { tmp: join(dataDir, `${HUB_SPLIT[split]}-${String(pending.length).padStart(5, '0')}.parquet.tmp`), rows: 0, bytes: 0, arrowBytes: 0 };
      let estimated = 0;
      // The writer pulls one record batch (about one row group) at a time, so memory holds
      // one batch whatever the size of the file.
      const batches = new ReadableStream(
        {
          pull: async (controller) => {
            if (next.done === true || estimated >= fileBytes) {
              controller.close();
              return;
            }
            const buf = new RowBuffers(schema);
            while (next.done !== true && buf.bytes < rowGroupBytes && estimated + buf.bytes < fileBytes) {
              buf.push(next.value, text ? text(next.value) : null);
              onProgress?.(++done, manifest.counts.total);
              next = await traces.next();
            }
            estimated += buf.bytes;
            file.rows += buf.rows;
            const ipc = tableToIPC(new Table(schema, buf.batch()), 'stream');
            file.arrowBytes += ipc.length;
            const table = pw.Table.fromIPCStream(ipc);
            const batch = table.recordBatch(0);
            table.free();
            controller.enqueue(batch);
          },
        },
        { highWaterMark: 0 },
      );
      const props = new pw.WriterPropertiesBuilder()
        .setCompression(pw.Compression.ZSTD)
        .setMaxRowGroupBytes(rowGroupBytes)
        .setCreatedBy('execwm (parquet-wasm 0.8.0)')
        .build();
      const bytes = await pw.transformParquetStream(batches, props);
      const sink = createWriteStream(file.tmp);
      await pipeline(Readable.fromWeb(bytes as NodeReadableStream<Uint8Array>), sink);
      file.bytes = sink.bytesWritten;
      pending.push(file);
    }
    pending.forEach((p, k) => {
      const path = `${PARQUET_DATA_DIR}/${HUB_SPLIT[split]}-${String(k).padStart(5, '0')}-of-${String(pending.length).padStart(5, '0')}.parquet`;
      renameSync(p.tmp, join(out, path));
      files.push({ path, split, rows: p.rows, bytes: p.bytes, arrowBytes: p.arrowBytes });
      rowsBySplit[split] += p.rows;
    });
  }
  return { files, rowsBySplit, manifest };
}
