import { generateSmearWithTruth } from '@hemato/testing';
import { checkAndAnalyse } from '../../apps/hemato-sandbox/src/files';

describe('sandbox image analysis on synthetic smears', () => {
  const cases = [
    { width: 800, height: 600, format: 'png' as const, seed: 1, parasites: true },
    { width: 800, height: 600, format: 'jpeg' as const, seed: 2, parasites: true },
    { width: 640, height: 480, format: 'jpeg' as const, seed: 3, parasites: false },
    { width: 1800, height: 1300, format: 'jpeg' as const, seed: 4, parasites: true }, // pooled 2x2
    { width: 300, height: 200, format: 'png' as const, seed: 5, parasites: true },
    { width: 600, height: 400, format: 'png' as const, seed: 6, parasites: true, wbcCount: 3, rbcCount: 20 },
    { width: 600, height: 400, format: 'jpeg' as const, seed: 7, parasites: false, wbcCount: 0, rbcCount: 5 },
  ];
  it.each(cases)('counts what the generator drew ($width x $height $format, parasites $parasites)', (c) => {
    const { image, truth } = generateSmearWithTruth(c);
    const [a] = checkAndAnalyse(image, c.format === 'png' ? 'image/png' : 'image/jpeg');
    expect(a.parasites.length).toBe(truth.parasites);
    expect(a.wbc).toBe(truth.wbc);
    expect(Math.abs(a.rbc - truth.rbc)).toBeLessThanOrEqual(Math.max(2, truth.rbc * 0.05));
    expect(Math.abs(a.platelets - truth.platelets)).toBeLessThanOrEqual(1);
  });

  it('is deterministic: decoding and analysing the same bytes twice gives identical results', () => {
    const { image } = generateSmearWithTruth({ width: 500, height: 400, format: 'jpeg', seed: 9, parasites: true });
    expect(checkAndAnalyse(image, 'image/jpeg')).toEqual(checkAndAnalyse(Buffer.from(image), 'image/jpeg'));
  });

  it('the generator is deterministic by seed and varies with it', () => {
    const a = generateSmearWithTruth({ width: 200, height: 150, format: 'png', seed: 7 }).image;
    const b = generateSmearWithTruth({ width: 200, height: 150, format: 'png', seed: 7 }).image;
    const c = generateSmearWithTruth({ width: 200, height: 150, format: 'png', seed: 8 }).image;
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(false);
  });
});
