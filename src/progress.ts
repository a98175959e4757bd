/**
 * Progress output for long work, always on stderr so stdout stays machine-readable.
 *
 * On a terminal it is a live bar (cli-progress); elsewhere (CI, pipes) it prints a
 * plain line at most every `intervalMs`, so logs show that work is moving
 * without a line per item.
 */
import cliProgress from 'cli-progress';

export interface ProgressOptions {
  /** What is being counted, e.g. `tracing` or `train`. */
  label: string;
  /** Total number of units; 0 when unknown. */
  total: number;
  /** Unit name shown after the counts, e.g. `programs`. */
  unit?: string;
  /** Silences all output (for `--quiet` and tests). */
  quiet?: boolean;
  /** Minimum time between plain-text lines when stderr is not a terminal. */
  intervalMs?: number;
}

export interface Progress {
  /** Sets the absolute count and, optionally, extra fields shown after the bar (`loss=1.23`). */
  update(value: number, fields?: Record<string, string | number>): void;
  /** Adds `delta` to the count. */
  increment(delta?: number, fields?: Record<string, string | number>): void;
  /** Ends the bar and prints a final line. */
  stop(): void;
}

function formatFields(fields: Record<string, string | number>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? formatNumber(v) : v}`)
    .join(' ');
}

function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(4);
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.round((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

export function createProgress(options: ProgressOptions): Progress {
  const { label, total, unit = '', quiet = false, intervalMs = 5000 } = options;
  const start = performance.now();
  let value = 0;
  let fields: Record<string, string | number> = {};
  if (quiet) {
    return { update: () => undefined, increment: () => undefined, stop: () => undefined };
  }
  const line = (): string => {
    const secs = (performance.now() - start) / 1000;
    const rate = secs > 0 ? value / secs : 0;
    const eta = total > 0 && rate > 0 ? formatEta((total - value) / rate) : '?';
    const counts = total > 0 ? `${value}/${total}` : `${value}`;
    const extra = formatFields(fields);
    return `${label}: ${counts} ${unit} (${formatNumber(rate)}/s, eta ${eta})${extra ? ` ${extra}` : ''}`;
  };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} ${unit} | {rate}/s | eta {eta_formatted} | {extra}`,
        hideCursor: true,
        stream: process.stderr,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total || 1, 0, { rate: '0', extra: '' });
    const payload = () => {
      const secs = (performance.now() - start) / 1000;
      return { rate: formatNumber(secs > 0 ? value / secs : 0), extra: formatFields(fields) };
    };
    return {
      update(v, f) {
        value = v;
        if (f) fields = { ...fields, ...f };
        bar.update(v, payload());
      },
      increment(d = 1, f) {
        this.update(value + d, f);
      },
      stop() {
        bar.stop();
      },
    };
  }
  let last = performance.now();
  return {
    update(v, f) {
      value = v;
      if (f) fields = { ...fields, ...f };
      const now = performance.now();
      if (now - last >= intervalMs) {
        last = now;
        process.stderr.write(`${line()}\n`);
      }
    },
    increment(d = 1, f) {
      this.update(value + d, f);
    },
    stop() {
      process.stderr.write(`${line()} done\n`);
    },
  };
}
