/**
 * Seeded randomness for every stage: the same seed gives the same draws on every
 * platform, so programs, batch orders and eval samples can be reproduced.
 *
 * Two generators share one splitmix32 and one set of draws. Each one's sequence
 * is already part of what a seed means, so neither can take the other's place:
 *
 * - {@link SplitMix32}, the bare splitmix32 stream (one word of state), fixes
 *   which programs the synthetic generator and mutation give for a seed.
 * - {@link Rng}, sfc32 seeded through splitmix32, keeps four words of state that
 *   a checkpoint saves, so a resumed run draws exactly the same batches.
 */

const GOLDEN = 0x9e3779b9;

/** The splitmix32 stream after `state`: each call adds the golden ratio to a counter and mixes it. */
function splitmix32(state: number): () => number {
  let x = state >>> 0;
  return () => {
    x = (x + GOLDEN) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** The draws every generator offers, on top of its uniform 32-bit words. */
export abstract class Draws {
  abstract nextUint32(): number;

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Uniform integer in [lo, hi], both included. */
  between(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[this.int(xs.length)]!;
  }

  /** One of the items, with probability proportional to its weight. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    const total = items.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, x] of items) {
      r -= w;
      if (r < 0) return x;
    }
    return items[items.length - 1]![1];
  }

  /** A uniformly shuffled [0, n) (Fisher–Yates). */
  permutation(n: number): number[] {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }
}

/** splitmix32 on its own: small and fast, for draws nothing needs to save and resume. */
export class SplitMix32 extends Draws {
  private readonly step: () => number;

  constructor(seed: number) {
    super();
    this.step = splitmix32(seed ^ GOLDEN);
  }

  nextUint32(): number {
    return this.step();
  }
}

/** The whole state of an {@link Rng}: four 32-bit words. */
export type RngState = [number, number, number, number];

/** sfc32, whose state a checkpoint saves so a resumed run continues the same sequence. */
export class Rng extends Draws {
  private s: Uint32Array;

  constructor(seed: number | RngState) {
    super();
    if (Array.isArray(seed)) {
      this.s = Uint32Array.from(seed);
    } else {
      // splitmix32 spreads any integer seed over the four words.
      const next = splitmix32(seed);
      this.s = Uint32Array.from([next(), next(), next(), next()]);
      for (let i = 0; i < 12; i++) this.nextUint32();
    }
  }

  nextUint32(): number {
    const s = this.s;
    const t = (((s[0]! + s[1]!) >>> 0) + s[3]!) >>> 0;
    s[3] = (s[3]! + 1) >>> 0;
    s[0] = s[1]! ^ (s[1]! >>> 9);
    s[1] = (s[2]! + (s[2]! << 3)) >>> 0;
    s[2] = ((s[2]! << 21) | (s[2]! >>> 11)) >>> 0;
    s[2] = (s[2]! + t) >>> 0;
    return t;
  }

  state(): RngState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }
}
