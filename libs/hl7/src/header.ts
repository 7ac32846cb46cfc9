import { isUtf8 } from 'node:buffer';
import { delimsOf, unescapeHl7 } from './escaping';

/**
 * Reading an MSH before (or without) a full parse: enough to pick the character set, answer with an
 * ACK that names the message, and decide the acknowledgement mode. Tolerant by design: it sees
 * garbage, truncated frames and oversized frames.
 */

export interface MshHeader {
  fieldSeparator: string;
  /** MSH-2, e.g. `^~\&`. */
  encodingCharacters: string;
  /** MSH-3.1 / MSH-4.1 (namespace id): who the sender is to us (dedup key, allow-list). */
  sendingApplication: string;
  sendingFacility: string;
  /**
   * MSH-3 / MSH-4 whole (first repetition, all HD components, raw in the sender's delimiters): what our
   * answers' MSH-5/6 give back, universal id (OID) included.
   */
  sendingApplicationHd?: string;
  sendingFacilityHd?: string;
  receivingApplication: string;
  receivingFacility: string;
  /** MSH-9.1 / 9.2 / 9.3. */
  messageCode: string;
  triggerEvent: string;
  messageStructure: string;
  /** MSH-10. */
  controlId: string;
  /** MSH-11.1. */
  processingId: string;
  /** MSH-11.2 (processing mode, table 0207: A, R, I, T; usually empty). */
  processingMode?: string;
  /** MSH-12.1. */
  version: string;
  /** MSH-15, MSH-16 (empty in original mode). */
  acceptAckType: string;
  applicationAckType: string;
  /** MSH-18, first repetition. */
  characterSet: string;
}

/**
 * The bytes up to the end of the first segment (the MSH) after any leading blank lines, at most 64 KiB:
 * the rest of a frame is not needed, and an MSH is not cut short at an arbitrary length.
 */
function headBytes(raw: Buffer): Buffer {
  let start = 0;
  while (start < raw.length && start < 1024 && [0x20, 0x09, 0x0d, 0x0a, 0xef, 0xbb, 0xbf].includes(raw[start]!))
    start++;
  const cr = raw.indexOf(0x0d, start);
  const lf = raw.indexOf(0x0a, start);
  const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
  return raw.subarray(0, Math.min(end < 0 ? raw.length : end + 1, 64 * 1024));
}

/** The MSH segment's fields, read from raw bytes as Latin-1 (ASCII-compatible whatever the charset). */
export function readHeader(raw: Buffer | string): MshHeader | null {
  let text = typeof raw === 'string' ? raw : headBytes(raw).toString('latin1');
  // A UTF-8 byte order mark before MSH (as text, or its bytes read as Latin-1).
  if (text.startsWith('\ufeff')) text = text.slice(1);
  else if (text.startsWith('\u00ef\u00bb\u00bf')) text = text.slice(3);
  const start = text.search(/\S/);
  if (start < 0 || text.slice(start, start + 3) !== 'MSH') return null;
  const seg = text.slice(start).split(/\r\n|\r|\n/, 1)[0]!;
  if (seg.length < 8) return null;
  const fs = seg[3]!;
  if (/[A-Za-z0-9\s]/.test(fs)) return null;
  const fields = seg.split(fs); // fields[0] = 'MSH', fields[1] = MSH-2, fields[n] = MSH-(n+1)
  const enc = fields[1] ?? '';
  const cs = enc[0] ?? '^';
  const rs = enc[1] ?? '~';
  const f = (n: number) => fields[n - 1] ?? '';
  const comp = (n: number, c: number) => (f(n).split(rs)[0] ?? '').split(cs)[c - 1] ?? '';
  return {
    fieldSeparator: fs,
    encodingCharacters: enc,
    sendingApplication: comp(3, 1),
    sendingFacility: comp(4, 1),
    sendingApplicationHd: f(3).split(rs)[0] ?? '',
    sendingFacilityHd: f(4).split(rs)[0] ?? '',
    receivingApplication: comp(5, 1),
    receivingFacility: comp(6, 1),
    // Codes (tables 0076, 0003, 0354), upper case: an `orm^o01` sender is answered `ACK^O01^ACK`, stored as ORM^O01.
    messageCode: comp(9, 1).trim().toUpperCase(),
    triggerEvent: comp(9, 2).trim().toUpperCase(),
    messageStructure: comp(9, 3).trim().toUpperCase(),
    controlId: f(10).trim(),
    processingId: comp(11, 1).trim(),
    processingMode: comp(11, 2).trim(),
    version: comp(12, 1).trim(),
    acceptAckType: f(15).trim().toUpperCase(),
    applicationAckType: f(16).trim().toUpperCase(),
    characterSet: (f(18).split(rs)[0] ?? '').trim().toUpperCase(),
  };
}

/**
 * Node encoding for an MSH-18 value, or null when we do not support it. Empty and `ASCII` are read as
 * UTF-8 (a superset) — unless the bytes (`raw`, when given) are not valid UTF-8: senders that leave
 * MSH-18 empty and send Latin-1 are common, and reading them as UTF-8 would garble names. `8859/1` is
 * Latin-1; `UNICODE UTF-8` (and the common `UTF-8`) is UTF-8.
 */
export function encodingFor(characterSet: string, raw?: Buffer): BufferEncoding | null {
  switch (characterSet.trim().toUpperCase()) {
    case '':
    case 'ASCII':
      return raw && !isUtf8(raw) ? 'latin1' : 'utf8';
    case 'UNICODE UTF-8':
    case 'UTF-8':
    case 'UTF8':
      return 'utf8';
    case '8859/1':
    case 'ISO-8859-1':
    case 'ISO IR100':
      return 'latin1';
    default:
      return null;
  }
}

/** Decodes a frame's bytes in its character set and normalises segment terminators to CR. */
export function decodeMessage(raw: Buffer, encoding: BufferEncoding): string {
  let text = raw.toString(encoding);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text.replace(/\r\n|\n/g, '\r').replace(/^\s+/, '');
}

/**
 * The header as the message's character set reads it. `readHeader` reads bytes as Latin-1 (it runs before
 * the character set is known); in UTF-8 a non-ASCII MSH-3/4/10 then comes out garbled, so it is read
 * again from the decoded text. ASCII headers (nearly all) are returned as they are.
 */
export function headerInCharset(raw: Buffer, header: MshHeader, text: string, encoding: BufferEncoding): MshHeader {
  if (encoding !== 'utf8') return header;
  const end = raw.indexOf(0x0d);
  const head = raw.subarray(0, end < 0 ? Math.min(raw.length, 8192) : end);
  if (!head.some((b) => b >= 0x80)) return header;
  return readHeader(text) ?? header;
}

/** True when the sender (`MSH-3`, `MSH-4`) matches an allow-list of `APP|FACILITY` entries (`*` = any). */
export function senderAllowed(allowList: readonly string[], app: string, facility: string): boolean {
  if (allowList.length === 0) return true;
  return allowList.some((entry) => {
    const [a = '*', f = '*'] = entry.split('|').map((s) => s.trim());
    return (
      (a === '*' || a.toUpperCase() === app.toUpperCase()) && (f === '*' || f.toUpperCase() === facility.toUpperCase())
    );
  });
}

/**
 * The sender's MSH-3 and MSH-4 as HD components (`['LIS', '2.16.840.1.113883.3.1', 'ISO']`), unescaped, when
 * either has more than its namespace id: kept with an order so the result's MSH-5/6 name the sender whole.
 */
export function senderHd(h: MshHeader): { application: string[]; facility: string[] } | null {
  const d = delimsOf(h);
  const hd = (whole: string | undefined, namespace: string) => {
    const parts = (whole ?? namespace).split(d.component).map((c) => unescapeHl7(c, d).trim());
    while (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
    return parts;
  };
  const application = hd(h.sendingApplicationHd, h.sendingApplication);
  const facility = hd(h.sendingFacilityHd, h.sendingFacility);
  return application.length > 1 || facility.length > 1 ? { application, facility } : null;
}

/** Enhanced acknowledgement mode: MSH-15 or MSH-16 valued. */
export function isEnhancedMode(h: MshHeader): boolean {
  return h.acceptAckType !== '' || h.applicationAckType !== '';
}

/** Whether an ACK type (MSH-15/16: AL/NE/ER/SU; empty = AL) asks for an acknowledgement with this outcome. */
export function ackWanted(type: string, success: boolean): boolean {
  switch (type) {
    case 'NE':
      return false;
    case 'ER':
      return !success;
    case 'SU':
      return success;
    default:
      return true;
  }
}
