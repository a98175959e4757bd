import { Rng } from '../src/rng.js';

/**
 * An independent seed in [1, 2^31) for one consumer (`model`, `packing`, `batches`) of a
 * run's seed, so the streams do not share draws. Never 0: tfjs treats a seed of 0 as
 * "unseeded" and draws from Math.random.
 */
export function deriveSeed(seed: number, stream: string): number {
  let h = seed >>> 0;
  for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x9e3779b1) >>> 0;
  const x = new Rng(h).nextUint32() >>> 1;
  return x === 0 ? 1 : x;
}
