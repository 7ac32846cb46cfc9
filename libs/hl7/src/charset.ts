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

/** What one character outside Latin-1 is folded to (see {@link inLatin1Repertoire}). */
function foldedToLatin1(ch: string): string {
  const fold = FOLDS[ch];
  if (fold !== undefined) return fold;
  const bare = ch.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
  const fits = bare !== '' && [...bare].every((c) => c.codePointAt(0)! <= 0xff) && !DELIMITERS.test(bare);
  return fits ? bare : '?';
}

/** A UTF-16 code unit outside Latin-1 (half of a surrogate pair too). */
const BEYOND_LATIN1 = /[\u0100-\uffff]/g;

/**
 * `text` with every character outside ISO 8859-1 replaced: a typographic one by its usual spelling, a
 * letter with a diacritic Latin-1 lacks by the bare letter (ł has no decomposition, ź becomes z), the
 * rest by `?`. Characters already in Latin-1 are kept as they are.
 *
 * An ORU is megabytes (a long pathology report, one OBX a line), nearly all of it Latin-1 already. Built a
 * character at a time (`for...of`, `+=`), a 5 MB report took 1-3.5 s of CPU, and one of half a million short
 * lines (a 50 MB ORU) 13 s. Now text all in Latin-1 is returned as it is; otherwise its Latin-1 runs are copied
 * whole into a buffer of bytes, and each other character's fold is worked out once.
 */
export function inLatin1Repertoire(text: string): string {
  const find = new RegExp(BEYOND_LATIN1);
  let found = find.exec(text);
  if (!found) return text;
  const n = text.length;
  const folds = new Map<string, string>();
  let bytes = Buffer.allocUnsafe(n + 64);
  let at = 0;
  const room = (more: number) => {
    if (at + more <= bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(bytes.length * 2, at + more));
    bytes.copy(grown, 0, 0, at);
    bytes = grown;
  };
  let from = 0;
  while (found) {
    const i = found.index;
    room(i - from);
    at += bytes.write(text.slice(from, i), at, 'latin1');
    // A surrogate pair is one character (an emoji, a mathematical letter); a lone surrogate is one too.
    const code = text.charCodeAt(i);
    const low = code >= 0xd800 && code <= 0xdbff ? text.charCodeAt(i + 1) : NaN;
    const ch = low >= 0xdc00 && low <= 0xdfff ? text.slice(i, i + 2) : text[i]!;
    let fold = folds.get(ch);
    if (fold === undefined) folds.set(ch, (fold = foldedToLatin1(ch)));
    room(fold.length);
    at += bytes.write(fold, at, 'latin1');
    from = i + ch.length;
    find.lastIndex = from;
    found = find.exec(text);
  }
  room(n - from);
  at += bytes.write(text.slice(from), at, 'latin1');
  return bytes.toString('latin1', 0, at);
}
