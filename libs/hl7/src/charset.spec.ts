import { inLatin1Repertoire } from './charset';

describe('inLatin1Repertoire', () => {
  it('keeps Latin-1 as it is and folds what Latin-1 cannot say', () => {
    expect(inLatin1Repertoire('MÜLLER^JOSÉ ± 3 µm')).toBe('MÜLLER^JOSÉ ± 3 µm');
    expect(inLatin1Repertoire('≥ 5 – “a” … ‘b’ →')).toBe('>= 5 - "a" ... \'b\' ->');
    expect(inLatin1Repertoire('Łódź Dvořák')).toBe('?ódz Dvorák');
  });

  it('never makes an HL7 delimiter out of a look-alike (fullwidth ｜ ＾ ～ ＼ ＆ would decompose to them)', () => {
    expect(inLatin1Repertoire('a｜b＾c～d＼e＆f')).toBe('a?b?c?d?e?f');
  });

  it('takes characters outside the BMP as one character', () => {
    expect(inLatin1Repertoire('x🩸y')).toBe('x?y');
  });
});
