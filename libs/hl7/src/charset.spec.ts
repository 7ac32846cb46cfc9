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

  it('returns text all in Latin-1 as it is', () => {
    const text = 'MSH|^~\\&|HB\rOBX|1|TX|x|1|Müller José ÄÖÜß µ ½ ÿ\r';
    expect(inLatin1Repertoire(text)).toBe(text);
    expect(inLatin1Repertoire('')).toBe('');
  });

  it('folds compatibility forms by their letters, and scripts Latin-1 lacks to ?', () => {
    expect(inLatin1Repertoire('ﬁ ① ™ 𝔘')).toBe('fi 1 TM U');
    expect(inLatin1Repertoire('Кольца 環')).toBe('?????? ?');
  });

  it('takes a lone surrogate as one character', () => {
    expect(inLatin1Repertoire('a\uD800b\uDC00c\uD83D')).toBe('a?b?c?');
    expect(inLatin1Repertoire('\uDE00\uD83D\uDE00')).toBe('??');
  });

  it('folds every occurrence in a long text the same way', () => {
    const line = 'OBX|1|TX|PATH-REPORT^Pathology report^99HAI|1|Größe ≥ 5 μm – see “field”||||||F\r';
    const folded = 'OBX|1|TX|PATH-REPORT^Pathology report^99HAI|1|Größe >= 5 µm - see "field"||||||F\r';
    expect(inLatin1Repertoire(line.repeat(20_000))).toBe(folded.repeat(20_000));
  });
});
