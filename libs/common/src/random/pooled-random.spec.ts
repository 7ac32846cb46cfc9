import { pooledRandomBytes } from './pooled-random';

describe('pooledRandomBytes', () => {
  it('never hands out the same bytes twice, across pool refills', () => {
    const seen = new Set<string>();
    // 12 bytes × 2,000 = 24 KB: several refills of the 4 KiB pool.
    for (let i = 0; i < 2000; i++) {
      const b = pooledRandomBytes(12);
      expect(b).toHaveLength(12);
      seen.add(b.toString('hex'));
    }
    expect(seen.size).toBe(2000);
  });

  it('returns independent copies (changing one leaves the next draw alone)', () => {
    const a = pooledRandomBytes(16);
    a.fill(0);
    const b = pooledRandomBytes(16);
    expect(b.equals(Buffer.alloc(16))).toBe(false);
  });

  it('serves large requests directly', () => {
    const big = pooledRandomBytes(10_000);
    expect(big).toHaveLength(10_000);
    // Not all one value: 10,000 random bytes have many distinct values.
    expect(new Set(big).size).toBeGreaterThan(200);
  });
});
