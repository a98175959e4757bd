/**
 * The corpus stage's public API: Arrow trace corpora (write, read, manifest),
 * splits, the Parquet export and its dataset card, and the CWM special tokens.
 * Program sources live beside it (`synthetic.ts`, `mutate.ts`, `sources.ts`) and
 * the build pipeline in `build.ts`.
 */
export { CorpusError } from './errors.js';
export { SPLITS, DEFAULT_SPLIT_RATIOS, splitOf, normalizeSource, type Split, type SplitRatios } from './splits.js';
export type { CorpusTrace } from './format.js';
export {
  readManifest,
  manifestId,
  CORPUS_FORMAT_VERSION,
  MANIFEST_FILE,
  type Manifest,
  type CorpusConfig,
  type CorpusCounts,
  type CorpusErrorEntry,
  type ShardEntry,
  type SourceConfig,
} from './manifest.js';
export { readCorpus, type ReadCorpusOptions } from './reader.js';
export { CorpusWriter, writeCorpus, type CorpusWriterOptions, type InputResult } from './writer.js';
export { CWM_TOKENS } from './cwm.js';
export { exportParquet, parquetSchema, HUB_SPLIT, type ParquetExport, type ParquetExportOptions, type ParquetFileEntry } from './parquet.js';
export { datasetCard, licenseOf, sizeCategory, type CardOptions } from './card.js';
