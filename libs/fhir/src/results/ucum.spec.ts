import { toUcum } from './ucum';
import { stableUuid } from './diagnostic-report.builder';

describe('toUcum', () => {
  it('maps known Hemato.AI units to UCUM and leaves unknown ones out', () => {
    expect(toUcum('%')).toEqual({ code: '%', unit: '%' });
    expect(toUcum('cells/megapixel')).toEqual({ code: '{cells}/{megapixel}', unit: 'cells/megapixel' });
    expect(toUcum('10^9/L')).toEqual({ code: '10*9/L', unit: '10^9/L' });
    expect(toUcum('y')).toBeNull();
    expect(toUcum(undefined)).toBeNull();
  });
});

describe('stableUuid', () => {
  it('is a v4-shaped UUID, the same for the same name', () => {
    expect(stableUuid('a')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(stableUuid('a')).toBe(stableUuid('a'));
    expect(stableUuid('a')).not.toBe(stableUuid('b'));
  });
});
