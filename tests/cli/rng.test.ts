import { describe, expect, it } from 'vitest';
import { Rng, SplitMix32 } from '../../src/rng.js';
import { deriveSeed } from '../../training/rng.js';

// A seed's draws are part of what it means (which programs a corpus seed gives,
// which batches a run trains on), so the first words of each stream are pinned.
describe('seeded generators', () => {
  it('SplitMix32 gives the pinned splitmix32 stream, negative seeds included', () => {
    const a = new SplitMix32(1);
    expect([a.nextUint32(), a.nextUint32(), a.nextUint32()]).toEqual([4230986166, 697614773, 1778835764]);
    const b = new SplitMix32(-5);
    expect([b.nextUint32(), b.nextUint32()]).toEqual([2474590542, 1959625965]);
  });

  it('Rng gives the pinned sfc32 stream, permutations and derived seeds', () => {
    const r = new Rng(7);
    expect([r.nextUint32(), r.nextUint32(), r.nextUint32()]).toEqual([838155491, 1550620431, 3610122010]);
    expect(new Rng(0).permutation(8)).toEqual([2, 4, 6, 0, 3, 1, 5, 7]);
    expect(deriveSeed(0, 'model')).toBe(1451951515);
  });

  it('Rng resumes from a saved state with the same draws', () => {
    const r = new Rng(42);
    r.permutation(10);
    const resumed = new Rng(r.state());
    expect(Array.from({ length: 5 }, () => resumed.nextUint32())).toEqual(Array.from({ length: 5 }, () => r.nextUint32()));
  });

  it('draws stay in their ranges', () => {
    const r = new SplitMix32(3);
    for (let i = 0; i < 1000; i++) {
      const x = r.between(-2, 4);
      expect(Number.isInteger(x) && x >= -2 && x <= 4).toBe(true);
      const y = r.int(5);
      expect(Number.isInteger(y) && y >= 0 && y < 5).toBe(true);
    }
    expect(r.weighted([[0, 'never'], [1, 'always']])).toBe('always');
    expect(() => r.pick([])).toThrow('pick from an empty list');
  });
});
