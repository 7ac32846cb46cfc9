import { randomBytes } from 'node:crypto';
import { delimsOf, isDefaultDelims, toDefaultDelimiters, unescapeHl7 } from './escaping';
import { readHeader, type MshHeader } from './header';

/** HL7 table 0357 (message error condition codes) as used by this bridge. */
export enum Hl7ErrorCode {
  SegmentSequence = '100',
  RequiredFieldMissing = '101',
  DataTypeError = '102',
  TableValueNotFound = '103',
  UnsupportedMessageType = '200',
  UnsupportedEventCode = '201',
  UnsupportedProcessingId = '202',
  UnsupportedVersionId = '203',
  UnknownKeyIdentifier = '204',
  DuplicateKeyIdentifier = '205',
  ApplicationRecordLocked = '206',
  ApplicationInternalError = '207',
}

const ERROR_TEXT: Record<Hl7ErrorCode, string> = {
  [Hl7ErrorCode.SegmentSequence]: 'Segment sequence error',
  [Hl7ErrorCode.RequiredFieldMissing]: 'Required field missing',
  [Hl7ErrorCode.DataTypeError]: 'Data type error',
  [Hl7ErrorCode.TableValueNotFound]: 'Table value not found',
  [Hl7ErrorCode.UnsupportedMessageType]: 'Unsupported message type',
  [Hl7ErrorCode.UnsupportedEventCode]: 'Unsupported event code',
  [Hl7ErrorCode.UnsupportedProcessingId]: 'Unsupported processing id',
  [Hl7ErrorCode.UnsupportedVersionId]: 'Unsupported version id',
  [Hl7ErrorCode.UnknownKeyIdentifier]: 'Unknown key identifier',
  [Hl7ErrorCode.DuplicateKeyIdentifier]: 'Duplicate key identifier',
  [Hl7ErrorCode.ApplicationRecordLocked]: 'Application record locked',
  [Hl7ErrorCode.ApplicationInternalError]: 'Application internal error',
};

/** One problem found in a message, reported in an ERR segment. */
export interface Hl7Issue {
  code: Hl7ErrorCode;
  /** Where: segment id, its sequence (1-based occurrence), field, component. */
  location?: { segment: string; sequence?: number; field?: number; component?: number };
  /** Human-readable detail (no patient data). */
  text: string;
}

/** Original-mode codes and enhanced-mode commit codes. */
export type AckCode = 'AA' | 'AE' | 'AR' | 'CA' | 'CE' | 'CR';

/** Who we are in MSH-3/MSH-4 of what we send. */
export interface Hl7Identity {
  application: string;
  facility: string;
}

let counter = 0;
/**
 * Tells this process's ids from another's made in the same millisecond. Drawn once: a CSPRNG call per
 * ACK cost ~5 µs on the hot path, and uniqueness within the process comes from time + counter.
 */
const PROCESS_TAG = randomBytes(4).toString('hex').toUpperCase();

/** A message control id unique to this process and run: 20 characters (the v2.5 ST limit). */
export function newControlId(prefix = 'HB'): string {
  counter = (counter + 1) % 0x10000;
  const t = Date.now().toString(36).toUpperCase(); // 8-9 chars
  const id = `${prefix}${t}${counter.toString(36).toUpperCase().padStart(4, '0')}${PROCESS_TAG}`;
  return id.slice(0, 20);
}

/** HL7 v2 timestamp `YYYYMMDDHHMMSS+ZZZZ` in local time. */
export function hl7Timestamp(d = new Date()): string {
  const p = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  return (
    `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}` +
    `${off >= 0 ? '+' : '-'}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`
  );
}

export interface AckOptions {
  /** The message being acknowledged, as far as it could be read (null: no readable MSH). */
  header: MshHeader | null;
  code: AckCode;
  issues?: Hl7Issue[];
  /** MSA-3 text. */
  text?: string;
  us: Hl7Identity;
  controlId?: string;
}

/** HL7 escaping for the default delimiters `|^~\\&` (what we always send with). */
function esc(v: string): string {
  return v.replace(/[\\|^~&\r\n]/g, (c) =>
    c === '\\' ? '\\E\\' : c === '|' ? '\\F\\' : c === '^' ? '\\S\\' : c === '&' ? '\\T\\' : c === '~' ? '\\R\\' : ' ',
  );
}

/**
 * `text` within `max` UTF-16 units (MSA-3 80, ERR-8 250), cut before it is escaped (an escape sequence is never
 * split) and never inside a character: half of a surrogate pair would go out as U+FFFD.
 */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/**
 * A value read raw from the sender's MSH (MSH-3/4, MSH-10), for our reply. Raw values are already
 * escaped with the sender's delimiters: with ours (`|^~\\&`, nearly always) they are echoed byte for byte,
 * so MSA-2 matches MSH-10 exactly; with other delimiters they are unescaped, then escaped with ours.
 */
function fromSender(v: string, h: MshHeader | null): string {
  const d = h ? delimsOf(h) : null;
  if (d && isDefaultDelims(d)) return v.replace(/[\r\n]/g, ' ');
  return esc(d ? unescapeHl7(v, d) : v);
}

/**
 * A whole HD field of the sender's MSH (MSH-3/4, all components: `LIS^2.16.840.1.113883.3.1^ISO`) for our
 * MSH-5/6: byte for byte with our delimiters, else re-encoded into ours (components kept as components).
 * Falls back to the namespace id alone when the header was made without the whole field.
 */
function hdFromSender(whole: string | undefined, namespace: string | undefined, h: MshHeader | null): string {
  if (whole === undefined || !h) return fromSender(namespace ?? '', h);
  const d = delimsOf(h);
  return (isDefaultDelims(d) ? whole : toDefaultDelimiters(whole, d)).replace(/[\r\n]/g, ' ');
}

/**
 * Builds an ACK: MSH-9 `ACK^<event>^ACK`, a fresh MSH-10, MSA-2 = the message's MSH-10, one ERR per
 * issue in the fields of the version answered in (ERR-1 alone up to v2.4, ERR-1 + ERR-2/3/4/8 in v2.5/2.6; see
 * errShapeOf). A plain template rather than the
 * node-hl7-client builder: it is on the hot path of every message (the builder costs ~0.5 ms per ACK,
 * a third of the budget at 1,000 msgs/s on two cores); tests parse its output back with node-hl7-client.
 */
export function buildAck(opts: AckOptions): string {
  return responseSegments(opts, `ACK^${esc(opts.header?.triggerEvent ?? '')}^ACK`).join('\r');
}

/** HL7 version we answer in: the sender's when it is a v2 version, else 2.5.1. */
export function replyVersion(h: MshHeader | null): string {
  return h?.version && /^2\.\d(\.\d)?$/.test(h.version) ? h.version : '2.5.1';
}

/**
 * MSH + MSA + ERR of a response to `opts.header` (an ACK or an order response), with `messageType` in
 * MSH-9 and, when given, MSH-15/16 (our own acknowledgement wishes for this message).
 */
export function responseSegments(opts: AckOptions, messageType: string, ackTypes?: [string, string]): string[] {
  const h = opts.header;
  const version = replyVersion(h);
  // MSH-11 as the message's (a test message is answered as a test message): the id in any case, and its mode.
  const id = (h?.processingId ?? '').toUpperCase();
  const mode = (h?.processingMode ?? '').toUpperCase();
  const processing = ['P', 'T', 'D'].includes(id) ? (/^[A-Z]$/.test(mode) ? `${id}^${mode}` : id) : 'P';
  const msh = [
    'MSH',
    '^~\\&',
    esc(opts.us.application),
    esc(opts.us.facility),
    hdFromSender(h?.sendingApplicationHd, h?.sendingApplication, h),
    hdFromSender(h?.sendingFacilityHd, h?.sendingFacility, h),
    hl7Timestamp(),
    '',
    messageType,
    esc(opts.controlId ?? newControlId()),
    processing,
    version,
  ];
  if (ackTypes || h?.characterSet) msh.push('', '', ackTypes?.[0] ?? '', ackTypes?.[1] ?? '');
  if (h?.characterSet) msh.push('', esc(h.characterSet));
  const segments = [msh.join('|')];
  const text = opts.text ?? opts.issues?.[0]?.text;
  const shape = errShapeOf(version);
  segments.push(['MSA', opts.code, fromSender(h?.controlId ?? '', h), ...(text ? [esc(cut(text, 80))] : [])].join('|'));
  for (const issue of opts.issues ?? []) {
    const loc = issue.location;
    const codeText = ERROR_TEXT[issue.code];
    const seq = String(loc?.sequence ?? 1);
    // ERR-1 (CM in v2.3, ELD in v2.4, kept in v2.5/2.6): segment^sequence^field^code&text&HL70357
    const eld = `${loc ? `${esc(loc.segment)}^${seq}^${loc.field ?? ''}` : '^^'}^${issue.code}&${codeText}&HL70357`;
    // ERR-2 (ERL, v2.5+): segment^sequence^field^field repetition^component
    const erl = loc
      ? [esc(loc.segment), seq, loc.field ?? '', loc.component ? '1' : '', loc.component ?? '']
          .join('^')
          .replace(/\^+$/, '')
      : '';
    const severity = opts.code === 'AR' || opts.code === 'CR' ? 'F' : 'E';
    // Before v2.5 ERR has no field beyond ERR-1 (the text goes in MSA-3 only).
    if (!shape.fields25) segments.push(`ERR|${eld}`);
    else {
      const fields = [erl, `${issue.code}^${codeText}^HL70357`, severity, '', '', '', esc(cut(issue.text, 250))];
      segments.push(['ERR', shape.eld ? eld : '', ...fields].join('|'));
    }
  }
  return segments;
}

/**
 * Which ERR fields the version we answer in has. v2.3 and v2.4 have ERR-1 alone (CM / ELD: segment ^ sequence ^
 * field ^ code identifying error as code&text&system); a receiver validating against them refuses more fields.
 * v2.5 brought ERR-2 (location), ERR-3 (HL7 error code), ERR-4 (severity) and ERR-8 (user message), and kept
 * ERR-1 for backward compatibility: we still fill it there, since engines written against v2.3/2.4 read the
 * error from it and v2.5/2.6 allow it. v2.7 withdrew ERR-1, so it is left empty from v2.7 on.
 */
function errShapeOf(version: string): { eld: boolean; fields25: boolean } {
  const minor = Number(/^2\.(\d)/.exec(version)?.[1] ?? 5);
  return { eld: minor < 7, fields25: minor >= 5 };
}

/** Reads MSA-1/MSA-2 (and ERR texts) of an acknowledgement, tolerant of anything. */
export function readAck(
  text: string,
): { code: string; ackedControlId: string; controlId: string; errors: string[] } | null {
  // A byte order mark before MSH (as UTF-8 text, or its bytes read as Latin-1), as some engines write.
  const segs = text.replace(/^(\ufeff|\u00ef\u00bb\u00bf)/, '').split(/\r\n|\r|\n/);
  const msh = segs.find((s) => s.startsWith('MSH'));
  const msa = segs.find((s) => s.startsWith('MSA'));
  if (!msh || !msa) return null;
  const fs = msh[3] ?? '|';
  const m = msa.split(fs);
  return {
    code: (m[1] ?? '').trim().toUpperCase(),
    ackedControlId: (m[2] ?? '').trim(),
    controlId: (msh.split(fs)[9] ?? '').trim(),
    errors: segs.filter((s) => s.startsWith('ERR')),
  };
}

/** Most characters of a receiver's own words kept with a delivery (its failure reason, the order's timeline). */
export const RECEIVER_TEXT_MAX = 200;

/**
 * What a receiver said in a negative ACK (AE/AR/CE/CR), as one line for the delivery's failure reason: MSA-3,
 * then per ERR its error code with text (v2.5+ ERR-3; v2.3 ERR-1 component 4, `code&text&system`, as v2.4's
 * ERR-1 ELD has it too) and its user message (ERR-8) and diagnostic information (ERR-7). Unescaped with the ACK's
 * delimiters, control and bidirectional-formatting characters made spaces (a line break or an RLO must not
 * reshape the dashboard's line), a text repeated (MSA-3 = ERR-8, as many engines send) said once, and cut to
 * RECEIVER_TEXT_MAX characters, never inside one. '' when it said nothing.
 * The receiver's words may name the patient: they go on the delivery row, never into a log line.
 */
export function receiverText(raw: string): string {
  const segs = raw.replace(/^(\ufeff|\u00ef\u00bb\u00bf)/, '').split(/\r\n|\r|\n/);
  const header = readHeader(segs.find((s) => s.startsWith('MSH')) ?? '');
  if (!header) return '';
  const d = delimsOf(header);
  const fieldsOf = (seg: string) => seg.split(d.field);
  const said: string[] = [];
  const add = (v: string | undefined) => {
    const text = v === undefined ? '' : plain(unescapeHl7(v, d));
    if (text && !said.includes(text)) said.push(text);
  };
  const msa = segs.find((s) => s.startsWith('MSA'));
  if (msa) add(fieldsOf(msa)[3]);
  for (const err of segs.filter((s) => s.startsWith('ERR'))) {
    const f = fieldsOf(err);
    const codes: string[] = [];
    const hl7Code = (f[3] ?? '').split(d.repetition)[0]!.split(d.component);
    if (hl7Code[0] || hl7Code[1]) codes.push([hl7Code[0], hl7Code[1]].filter(Boolean).join(' '));
    else {
      for (const rep of (f[1] ?? '').split(d.repetition)) {
        const ce = (rep.split(d.component)[3] ?? '').split(d.subcomponent);
        if (ce[0] || ce[1]) codes.push([ce[0], ce[1]].filter(Boolean).join(' '));
      }
    }
    const words = [f[8], f[7]].map((v) => (v === undefined ? '' : plain(unescapeHl7(v, d)))).filter(Boolean);
    const code = codes
      .map((c) => plain(unescapeHl7(c, d)))
      .filter(Boolean)
      .join(', ');
    add([code, ...words.filter((w, i) => words.indexOf(w) === i)].filter(Boolean).join(': '));
  }
  return cutWords(said.join('; '), RECEIVER_TEXT_MAX);
}

/** Controls (C0, C1, line and paragraph separators) and bidirectional-formatting characters as one space each. */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** Half of a surrogate pair on its own (not a character: stored and shown as U+FFFD). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function plain(v: string): string {
  return v.replace(UNSAFE, ' ').replace(LONE_SURROGATE, '\ufffd').replace(/\s+/g, ' ').trim();
}

/** `text` within `max` UTF-16 units, `…` marking a cut, never inside a character (a surrogate pair). */
function cutWords(text: string, max: number): string {
  return text.length <= max ? text : `${cut(text, max - 1).trimEnd()}…`;
}
