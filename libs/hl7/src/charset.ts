/**
 * Outgoing character sets. Results go in UTF-8 (MSH-18 `UNICODE UTF-8`) unless the receiver reads only
 * ISO 8859-1 (many LIS and older engines): then a character outside Latin-1 has no byte to go as, and
 * is folded to its nearest Latin-1 spelling rather than left for the encoder to turn into garbage.
 */

export type OutgoingCharset = 'UNICODE UTF-8' | '8859/1';

/** The bytes of a message in that character set. */
export function bufferEncodingOf(charset: OutgoingCharset): BufferEncoding {
  return charset === '8859/1' ? 'latin1' : 'utf8';
}

/** Typographic characters common in report text, spelled in Latin-1 (never with an HL7 delimiter). */
const FOLDS: Record<string, string> = {
  '\u2018': "'",
  '\u2019': "'",
  '\u201A': "'",
  '\u2032': "'",
  '\u201C': '"',
  '\u201D': '"',
  '\u201E': '"',
  '\u2033': '"',
  '\u2010': '-',
  '\u2011': '-',
  '\u2012': '-',
  '\u2013': '-',
  '\u2014': '-',
  '\u2212': '-',
  '\u2026': '...',
  '\u2264': '<=',
  '\u2265': '>=',
  '\u2260': '!=',
  '\u2022': '*',
  '\u2192': '->',
  '\u2190': '<-',
  '\u2009': ' ',
  '\u200A': ' ',
  '\u202F': ' ',
  '\u2002': ' ',
  '\u2003': ' ',
  // Greek mu as the micro sign Latin-1 has.
  '\u03BC': '\u00B5',
};

/** HL7's delimiters (default encoding characters): a fold must never create one. */
const DELIMITERS = /[|^~\\&\r]/;

/**
 * `text` with every character outside ISO 8859-1 replaced: a typographic one by its usual spelling, a
 * letter with a diacritic Latin-1 lacks by the bare letter (ł has no decomposition, ź becomes z), the
 * rest by `?`. Characters already in Latin-1 are kept as they are.
 */
export function inLatin1Repertoire(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code <= 0xff) {
      out += ch;
      continue;
    }
    const fold = FOLDS[ch];
    if (fold !== undefined) {
      out += fold;
      continue;
    }
    const bare = ch.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
    const fits = bare !== '' && [...bare].every((c) => c.codePointAt(0)! <= 0xff) && !DELIMITERS.test(bare);
    out += fits ? bare : '?';
  }
  return out;
}
