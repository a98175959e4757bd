/**
 * `metrics.jsonl`: one line per training step and one per validation, appended as
 * the run goes, read back for the loss plot, by a resumed run and by tools.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const METRICS_FILE = 'metrics.jsonl';

/** Losses of a step or a validation: the objective and each of its terms. */
export interface ValLosses {
  loss: number;
  next: number;
  /** Absent in runs from before the output loss had a term of its own. */
  output?: number;
  state: number;
}

/** One line of metrics.jsonl: a training step (its learning rate, losses, gradient norm, tokens so far) or a validation. */
export type MetricsLine =
  | ({ type: 'train'; step: number; lr: number } & ValLosses & { gradNorm: number; tokens: number; tokensPerSec: number })
  | ({ type: 'val'; step: number } & ValLosses);

export type TrainLine = Extract<MetricsLine, { type: 'train' }>;

/** The lines of `<runDir>/metrics.jsonl` (none when the run has not started). */
export function readMetrics(runDir: string): MetricsLine[] {
  const file = path.join(runDir, METRICS_FILE);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as MetricsLine);
}

/**
 * Keeps the metrics lines up to `step` (those a resumed run will not redo). The file is
 * replaced by a rename, so a kill during the rewrite cannot lose the lines it keeps.
 */
export async function truncateMetrics(runDir: string, step: number): Promise<void> {
  const file = path.join(runDir, METRICS_FILE);
  if (!existsSync(file)) return;
  const kept = (await readFile(file, 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      try {
        return (JSON.parse(l) as MetricsLine).step <= step;
      } catch {
        return false; // a line cut by a kill
      }
    });
  await writeFile(`${file}.tmp`, kept.map((l) => `${l}\n`).join(''));
  await rename(`${file}.tmp`, file);
}
