import { randomBytes } from 'node:crypto';
import { Message } from 'node-hl7-client';
import type { MshHeader } from './header';

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

/** A message control id unique to this process and run: 20 characters (the v2.5 ST limit). */
export function newControlId(prefix = 'HB'): string {
  counter = (counter + 1) % 0x10000;
  const t = Date.now().toString(36).toUpperCase(); // 8-9 chars
  const id = `${prefix}${t}${counter.toString(36).toUpperCase().padStart(4, '0')}${randomBytes(4).toString('hex').toUpperCase()}`;
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

/**
 * Builds an ACK: MSH-9 `ACK^<event>^ACK`, a fresh MSH-10, MSA-2 = the message's MSH-10, one ERR per
 * issue (ERR-1 for v2.3/2.4 receivers, ERR-2/3/4 for v2.5+), built with node-hl7-client.
 */
export function buildAck(opts: AckOptions): string {
  const h = opts.header;
  const version = h?.version && /^2\.\d(\.\d)?$/.test(h.version) ? h.version : '2.5.1';
  const msg = new Message({
    messageHeader: {
      msh_9_1: 'ACK',
      msh_9_2: 'ACK', // placeholder: the builder refuses an empty event; set below
      msh_9_3: 'ACK',
      msh_10: opts.controlId ?? newControlId(),
      msh_11_1: (['P', 'T', 'D'].includes(h?.processingId ?? '') ? h!.processingId : 'P') as 'P',
    } as never,
  });
  msg.set('MSH.3', opts.us.application);
  msg.set('MSH.4', opts.us.facility);
  msg.set('MSH.5', h?.sendingApplication ?? '');
  msg.set('MSH.6', h?.sendingFacility ?? '');
  msg.set('MSH.7', hl7Timestamp());
  msg.set('MSH.9.1', 'ACK');
  msg.set('MSH.9.2', h?.triggerEvent ?? '');
  msg.set('MSH.9.3', 'ACK');
  msg.set('MSH.12', version);
  if (h?.characterSet) msg.set('MSH.18', h.characterSet);
  const msa = msg.addSegment('MSA');
  msa.set('1', opts.code);
  msa.set('2', h?.controlId ?? '');
  const text = opts.text ?? opts.issues?.[0]?.text;
  if (text) msa.set('3', text.slice(0, 80));
  for (const issue of opts.issues ?? []) {
    const err = msg.addSegment('ERR');
    const loc = issue.location;
    const codeText = ERROR_TEXT[issue.code];
    if (loc) {
      // ERR-1 (ELD, v2.3/2.4): segment^sequence^field^code&text&HL70357
      err.set('1.1', loc.segment);
      err.set('1.2', String(loc.sequence ?? 1));
      if (loc.field) err.set('1.3', String(loc.field));
      // ERR-2 (ERL, v2.5+): segment^sequence^field^field repetition^component
      err.set('2.1', loc.segment);
      err.set('2.2', String(loc.sequence ?? 1));
      if (loc.field) err.set('2.3', String(loc.field));
      if (loc.component) {
        err.set('2.4', '1');
        err.set('2.5', String(loc.component));
      }
    }
    err.set('1.4.1', issue.code);
    err.set('1.4.2', codeText);
    err.set('1.4.3', 'HL70357');
    err.set('3.1', issue.code);
    err.set('3.2', codeText);
    err.set('3.3', 'HL70357');
    err.set('4', opts.code === 'AR' || opts.code === 'CR' ? 'F' : 'E');
    err.set('8', issue.text.slice(0, 250));
  }
  return msg.toString();
}

/** Reads MSA-1/MSA-2 (and ERR texts) of an acknowledgement, tolerant of anything. */
export function readAck(
  text: string,
): { code: string; ackedControlId: string; controlId: string; errors: string[] } | null {
  const segs = text.split(/\r\n|\r|\n/);
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
