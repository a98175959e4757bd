/**
 * The training stage's public API: tokenizer, CWM sequences, the model and its
 * backends, the objective, the training loop and checkpoints.
 */
export { Tokenizer, trainTokenizer, type TokenizerJSON, type TrainTokenizerOptions } from './tokenizer.js';
export {
  SPECIAL_TOKENS,
  SPECIAL_TOKEN_LIST,
  UNCHANGED,
  ROLE_CODE,
  ROLE_ACTION,
  ROLE_STATE,
  contextSegments,
  contextText,
  encodeSegments,
  encodeTrace,
  frameSegments,
  localsJson,
  sourceLine,
  traceToSegments,
  traceToText,
  type EncodedTrace,
  type FrameSpan,
  type Role,
  type Segment,
  type SequenceOptions,
} from './sequence.js';
export { GPT, validateModelConfig, type ModelConfig } from './model.js';
export { BACKEND_NAMES, probeBackends, setupBackend, type BackendName } from './backend.js';
export { cwmObjective, type ObjectiveInput, type ObjectiveOutput } from './objective.js';
export {
  DEFAULT_TRAIN_CONFIG,
  MODEL_PRESETS,
  PRESET_NAMES,
  learningRate,
  resolveTrainConfig,
  type PresetName,
  type TrainConfig,
  type TrainConfigInput,
} from './config.js';
export { train, type InMemoryCorpus, type TrainOptions, type TrainResult } from './train.js';
export { readMetrics, type MetricsLine } from './metrics.js';
export { loadCheckpoint, readCheckpoint, findCheckpoint, type LoadedCheckpoint } from './checkpoint.js';
export { TrainingError } from './errors.js';
