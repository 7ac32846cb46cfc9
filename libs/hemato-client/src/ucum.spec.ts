import { toUcum } from './ucum';

describe('toUcum', () => {
  it('maps known Hemato.AI units to UCUM and leaves unknown ones out', () => {
    expect(toUcum('%')).toEqual({ code: '%', unit: '%' });
    expect(toUcum('cells/megapixel')).toEqual({ code: '{cells}/{megapixel}', unit: 'cells/megapixel' });
    expect(toUcum('10^9/L')).toEqual({ code: '10*9/L', unit: '10^9/L' });
    expect(toUcum('y')).toBeNull();
    expect(toUcum(undefined)).toBeNull();
  });
});
