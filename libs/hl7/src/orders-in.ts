import {
  imageEndProblem,
  imageUrlProblem,
  markImageBytesGood,
  sniffMediaType,
  zipImagesProblem,
  zipImagesProblemYielding,
} from '@hemato/common';
import { Message } from 'node-hl7-client';
import type { PatientIdentity } from '@hemato/privacy';
import { Hl7ErrorCode, type Hl7Issue } from './ack';
import { hl7DateTimeToIso } from './datetime';
import { delimsOf, toDefaultDelimiters, unescapeHl7, type Delims } from './escaping';
import type { MshHeader } from './header';

/**
 * Longest identifier we take (placer number, MSH-10): HL7 v2.5's EI.1 / ST limit of 199. Longer values
 * would also overflow PostgreSQL's index entries, failing every resend the same way.
 */
export const MAX_IDENTIFIER_LENGTH = 199;

/** Message types accepted as orders, with the versions we read. */
export const SUPPORTED_ORDER_TYPES: ReadonlyArray<{ code: string; event: string }> = [
  { code: 'ORM', event: 'O01' },
  { code: 'OML', event: 'O21' },
];
export const SUPPORTED_VERSIONS: readonly string[] = ['2.3', '2.3.1', '2.4', '2.5', '2.5.1'];

/** An image carried by an order (OBX ED bytes or OBX RP pointer). */
export type Hl7ImageSource =
  | { kind: 'inline'; name: string; data: Buffer; mediaType: string | null }
  | { kind: 'url'; name: string; url: string; mediaType: string | null };

/**
 * ORC-1 as we act on it: a new order (NW), or a request about an existing one: cancel (CA, and DC: see
 * `discontinue`), hold (HD), release a hold (RL).
 */
export type Hl7OrderControl = 'NW' | 'CA' | 'HD' | 'RL';

/** One ORC/OBR group: becomes one order (NW), or acts on one (CA/DC, HD, RL). */
export interface Hl7OrderGroup {
  /** 1-based position of the group in the message. */
  index: number;
  control: Hl7OrderControl;
  /** Sent as ORC-1 DC (discontinue): acted on as a cancellation, answered as a discontinuation. */
  discontinue?: boolean;
  placerOrderNumber: string;
  placerAuthority?: PlacerAuthority;
  /**
   * Where the placer number was read (ORC-2, or OBR-2 of a further OBR under one ORC) and where the order
   * control is (ORC-1): what an ERR names for a problem with this group. Group numbers are not segment
   * occurrences (an ORC may hold several OBRs).
   */
  placerAt: { segment: string; sequence: number; field: number };
  controlAt: { segment: string; sequence: number; field: number };
  test: { system: string | null; code: string; display: string | null } | null;
  tasks: string[];
  /** Not patient identity: ordering provider, collection time, specimen, diagnoses, notes. */
  details: Record<string, unknown>;
  images: Hl7ImageSource[];
}

/** EI components 2-4 of a placer order number (`EPL9^EPIC^1.2.840.9^ISO`): whose number it is. */
export interface PlacerAuthority {
  namespaceId?: string;
  universalId?: string;
  universalIdType?: string;
}

/** An order group as far as it could be read, valid or not: what an order response (ORR/ORL) names. */
export interface Hl7OrderRef {
  control: Hl7OrderControl;
  /** Sent as ORC-1 DC. */
  discontinue?: boolean;
  placerOrderNumber: string;
  /** EI.2-4 of the placer number as sent (absent when only EI.1 was): answers give the whole EI back. */
  placerAuthority?: PlacerAuthority;
  test: { system: string | null; code: string; display: string | null } | null;
}

export interface ParsedOrderMessage {
  patient: PatientIdentity | null;
  /** The valid order groups (when `issues` is empty: every group). */
  groups: Hl7OrderGroup[];
  /** Every group with a readable order control and placer number, including those with issues. */
  refs: Hl7OrderRef[];
  /** Problems that make the message an AE (nothing of it is stored as an order). */
  issues: Hl7Issue[];
  /** With `zipCheck: 'deferred'`: the inline zips (OBX ED) still to check, by {@link checkDeferredZips}. */
  zipsToCheck?: DeferredZip[];
}

/** An inline zip read but not yet inflated and checked. */
export interface DeferredZip {
  /** The OBX's occurrence in the message (where its ERR points). */
  obxSeq: number;
  bytes: Buffer;
}

/** The one trigger event an accepted order message type has (`ORM` → `O01`), for an MSH-9 sent without it. */
export function impliedTriggerEvent(messageCode: string): string {
  return SUPPORTED_ORDER_TYPES.find((t) => t.code === messageCode.toUpperCase())?.event ?? '';
}

/** Checks MSH-9 and MSH-12 against what we accept; returns the AR issue or null. */
export function checkOrderHeader(h: MshHeader): Hl7Issue | null {
  const type = SUPPORTED_ORDER_TYPES.find((t) => t.code === h.messageCode.toUpperCase());
  if (!type) {
    return {
      code: Hl7ErrorCode.UnsupportedMessageType,
      location: { segment: 'MSH', field: 9, component: 1 },
      text: `Message type ${h.messageCode || '(empty)'} is not accepted (ORM^O01, OML^O21)`,
    };
  }
  if (h.triggerEvent && h.triggerEvent.toUpperCase() !== type.event) {
    return {
      code: Hl7ErrorCode.UnsupportedEventCode,
      location: { segment: 'MSH', field: 9, component: 2 },
      text: `Event ${h.triggerEvent} is not accepted for ${type.code} (${type.event})`,
    };
  }
  if (!SUPPORTED_VERSIONS.includes(h.version)) {
    return {
      code: Hl7ErrorCode.UnsupportedVersionId,
      location: { segment: 'MSH', field: 12 },
      text: `Version ${h.version || '(empty)'} is not accepted (2.3 to 2.5.1)`,
    };
  }
  if (h.controlId.length > MAX_IDENTIFIER_LENGTH) {
    return {
      code: Hl7ErrorCode.DataTypeError,
      location: { segment: 'MSH', field: 10 },
      text: `Message control id is longer than ${MAX_IDENTIFIER_LENGTH} characters`,
    };
  }
  for (const [field, value] of [
    [3, h.sendingApplication],
    [4, h.sendingFacility],
  ] as const) {
    if (value.length > MAX_IDENTIFIER_LENGTH) {
      return {
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'MSH', field },
        text: `MSH-${field} is longer than ${MAX_IDENTIFIER_LENGTH} characters`,
      };
    }
  }
  if (h.processingId && !['P', 'T', 'D'].includes(h.processingId.toUpperCase())) {
    return {
      code: Hl7ErrorCode.UnsupportedProcessingId,
      location: { segment: 'MSH', field: 11 },
      text: `Processing id ${h.processingId} is not P, T or D`,
    };
  }
  return null;
}

/** Parses HL7 text with node-hl7-client; throws on anything it cannot read as one message. */
export function parseMessage(text: string): Message {
  const msg = new Message({ text });
  // Force the lazy parser through every segment now, so a malformed message fails here and not later.
  for (const seg of msg.toArray()) void seg.name;
  return msg;
}

/**
 * One segment, read field by field from its raw text. node-hl7-client has parsed and accepted the
 * message; reading values through its node tree costs ~0.4 ms a message (every node is an
 * EventEmitter), so values are split here from the same text, with the same delimiters and escapes.
 */
interface SegCtx {
  name: string;
  /** 1-based occurrence of this segment id in the message. */
  seq: number;
  raw: string;
  /** fields[n] = field n, raw (MSH counted as HL7 does: MSH-1 is the field separator). */
  fields: string[];
  d: Delims;
  /** Components of each field's first repetition, split on first use (a field is read many times). */
  comps: Array<string[] | undefined>;
}

function segCtx(raw: string, seq: number, d: Delims): SegCtx {
  const parts = raw.split(d.field);
  const name = (parts[0] ?? '').toUpperCase();
  const fields = name === 'MSH' ? ['MSH', d.field, ...parts.slice(1)] : parts;
  return { name, seq, raw, fields, d, comps: [] };
}

/** Paths as numbers, parsed once: `field()` runs ~20 times a message on the intake's hot path. */
const PATHS = new Map<string, [number, number, number]>();

function parsePath(path: string): [number, number, number] {
  let p = PATHS.get(path);
  if (!p) {
    const [f = 0, c = 1, sc = 1] = path.split('.').map(Number);
    p = [f, c, sc];
    PATHS.set(path, p);
  }
  return p;
}

/** A value by HL7 path `field[.component[.subcomponent]]` (first repetition), unescaped and trimmed. */
function field(s: SegCtx, path: string): string {
  const [f, c, sc] = parsePath(path);
  const raw = s.fields[f] ?? '';
  if (s.name === 'MSH' && f <= 2) return raw;
  let comps = s.comps[f];
  if (!comps) {
    comps = (raw.split(s.d.repetition)[0] ?? '').split(s.d.component);
    s.comps[f] = comps;
  }
  const comp = comps[c - 1] ?? '';
  const sub = sc === 1 && !comp.includes(s.d.subcomponent) ? comp : (comp.split(s.d.subcomponent)[sc - 1] ?? '');
  return unescapeHl7(sub, s.d).trim();
}

/** Repetitions of a field as arrays of components (each its first subcomponent, unescaped). */
function reps(s: SegCtx, n: number): string[][] {
  const raw = s.fields[n] ?? '';
  if (!raw) return [];
  return raw
    .split(s.d.repetition)
    .map((r) => r.split(s.d.component).map((c) => unescapeHl7(c.split(s.d.subcomponent)[0] ?? '', s.d).trim()));
}

/**
 * NTE-3 whole: FT repeats (one repetition per line of a longer comment) and has no components, so each
 * repetition is taken entire (a literal component separator kept as text) and the lines joined.
 */
function noteText(s: SegCtx): string {
  return (s.fields[3] ?? '')
    .split(s.d.repetition)
    .map((r) => unescapeHl7(r, s.d).trim())
    .filter(Boolean)
    .join('\n');
}

const MEDIA: Record<string, string> = {
  JPEG: 'image/jpeg',
  JPG: 'image/jpeg',
  PNG: 'image/png',
  ZIP: 'application/zip',
  'X-ZIP-COMPRESSED': 'application/zip',
};
const EXT: Record<string, string> = { 'image/jpeg': 'jpg', 'image/png': 'png', 'application/zip': 'zip' };

function xcn(c: string[] | undefined): Record<string, string> | null {
  if (!c || c.every((x) => !x)) return null;
  const out: Record<string, string> = {};
  if (c[0]) out.id = c[0];
  if (c[1]) out.family = c[1];
  if (c[2]) out.given = c[2];
  if (c[8]) out.authority = c[8];
  return out;
}

function patientFrom(pid: SegCtx, header: MshHeader, issues: Hl7Issue[]): PatientIdentity | null {
  const ids = reps(pid, 3).filter((c) => c[0]);
  if (ids.length === 0) {
    // Some v2.3 senders still put the MRN in PID-2 (external id).
    const ext = reps(pid, 2).filter((c) => c[0]);
    ids.push(...ext);
  }
  if (ids.length === 0) {
    issues.push({
      code: Hl7ErrorCode.RequiredFieldMissing,
      location: { segment: 'PID', sequence: pid.seq, field: 3 },
      text: 'PID-3 patient identifier is required',
    });
    return null;
  }
  const identifiers = ids.map((c) => ({
    value: c[0]!,
    ...(c[3] ? { authority: c[3] } : {}),
    ...(c[4] ? { type: c[4] } : {}),
  }));
  const first = identifiers[0]!;
  const name = reps(pid, 5)[0];
  const identity: PatientIdentity = {
    primary: { authority: first.authority || header.sendingFacility || header.sendingApplication, value: first.value },
    identifiers,
    // Kept to address the result; our ORU uses the default delimiters, so the PID is stored in them, and
    // named `PID` however the sender spelt it (a `pid` segment is read here but not by every receiver).
    hl7Pid: `PID${toDefaultDelimiters(pid.raw, pid.d).slice(3)}`,
  };
  if (name && name.some(Boolean)) {
    identity.name = {
      ...(name[0] ? { family: name[0] } : {}),
      given: [name[1], name[2]].filter((x): x is string => !!x),
    };
  }
  const birth = field(pid, '7');
  if (birth)
    identity.birthDate = /^\d{8}/.test(birth)
      ? `${birth.slice(0, 4)}-${birth.slice(4, 6)}-${birth.slice(6, 8)}`
      : birth;
  const sex = field(pid, '8');
  if (sex) identity.sex = sex;
  return identity;
}

/**
 * A date/time field of an order group (OBR-7, SPM-17, SPM-18) as ISO, or undefined when empty. One that
 * is not a real HL7 date/time is refused (AE 102) rather than kept as received: it would be dropped from
 * the study and the result anyway, and the sender can fix it now. The ERR names the field, not the value.
 */
function dateTimeOf(s: SegCtx, f: number, name: string, issues: Hl7Issue[]): string | undefined {
  // Component 1 (TS.1 / DR.1); in v2.5 DR.1 is itself a TS, whose first subcomponent is the time.
  const value = field(s, `${f}.1.1`);
  if (!value) return undefined;
  const iso = hl7DateTimeToIso(value);
  if (iso !== null) return iso;
  issues.push({
    code: Hl7ErrorCode.DataTypeError,
    location: { segment: s.name, sequence: s.seq, field: f, component: 1 },
    text: `${s.name}-${f} ${name} is not an HL7 date/time (YYYYMMDD[HHMM[SS[.SSSS]]][+/-ZZZZ])`,
  });
  return undefined;
}

interface GroupDraft {
  orc: SegCtx | null;
  /** The ORC belongs to an earlier group too (a further OBR under one ORC). */
  sharedOrc: boolean;
  obr: SegCtx | null;
  notes: string[];
  dg1: SegCtx[];
  obx: SegCtx[];
  spm: SegCtx[];
}

export interface ReadOrderOptions {
  /** The most an inline zip may unpack to (`IMAGE_ZIP_MAX_UNPACKED_BYTES`). */
  zipMaxUnpackedBytes?: number;
  /** The largest image the store takes (`IMAGE_MAX_BYTES`): a larger OBX ED is refused here, not at the store. */
  maxImageBytes?: number;
  /**
   * Hosts image URLs may be fetched from (`IMAGE_URL_ALLOWED_HOSTS`): an OBX RP naming another is refused
   * here (AE 102), not accepted and failed later when the worker fetches it. Undefined: not checked.
   */
  allowedImageHosts?: string[];
  /**
   * `deferred`: an inline zip is not inflated here but listed in `zipsToCheck`, for {@link checkDeferredZips},
   * which lets other work run while it inflates (a bomb takes seconds to reach the limit). Default: checked here.
   */
  zipCheck?: 'here' | 'deferred';
}

/**
 * Reads ORM^O01 / OML^O21 (v2.3–2.5.1) into order groups. Each ORC (or a further OBR under one ORC)
 * starts a group; NTE, DG1, OBX and SPM belong to the group they follow. `tasksFor` maps OBR-4.
 * Validation problems are collected as issues (101 required field, 102 data type, 103 unmapped code).
 */
export function readOrderMessage(
  msg: Message,
  header: MshHeader,
  tasksFor: (system: string | null, code: string) => string[] | null,
  opts: ReadOrderOptions = {},
): ParsedOrderMessage {
  const issues: Hl7Issue[] = [];
  const zipsToCheck: DeferredZip[] = [];
  const counts = new Map<string, number>();
  const d = delimsOf(header);
  const segs: SegCtx[] = msg
    .toString()
    .split(/\r\n|\r|\n/)
    .filter((raw) => raw.trim() !== '')
    .map((raw) => {
      const name = raw.slice(0, 3).toUpperCase();
      const seq = (counts.get(name) ?? 0) + 1;
      counts.set(name, seq);
      return segCtx(raw, seq, d);
    });

  let pid: SegCtx | null = null;
  const groups: GroupDraft[] = [];
  let current = null as GroupDraft | null;
  const newGroup = (orc: SegCtx | null, sharedOrc = false): GroupDraft => {
    const g: GroupDraft = { orc, sharedOrc, obr: null, notes: [], dg1: [], obx: [], spm: [] };
    groups.push(g);
    return g;
  };
  for (const s of segs) {
    switch (s.name) {
      case 'PID':
        // ORM^O01 and OML^O21 carry one patient. Orders after a second PID would be filed under the
        // first patient (a wrong-patient result), so such a message is refused, not guessed at.
        if (pid) {
          issues.push({
            code: Hl7ErrorCode.SegmentSequence,
            location: { segment: 'PID', sequence: s.seq },
            text: "A second PID: one patient per message (send each patient's orders in their own message)",
          });
        }
        pid ??= s;
        break;
      case 'ORC':
        current = newGroup(s);
        break;
      case 'OBR':
        if (!current || current.obr) current = newGroup(current?.orc ?? null, !!current?.orc);
        current.obr = s;
        break;
      case 'NTE':
        current?.notes.push(noteText(s));
        break;
      case 'DG1':
        current?.dg1.push(s);
        break;
      case 'OBX':
        current?.obx.push(s);
        break;
      case 'SPM':
        current?.spm.push(s);
        break;
      default:
        break;
    }
  }

  if (groups.length === 0) {
    issues.push({
      code: Hl7ErrorCode.SegmentSequence,
      location: { segment: 'ORC' },
      text: 'The message has no ORC/OBR order group',
    });
    return { patient: null, groups: [], refs: [], issues };
  }

  const out: Hl7OrderGroup[] = [];
  const refs: Hl7OrderRef[] = [];
  let needsPatient = false;
  groups.forEach((g, i) => {
    const index = i + 1;
    const sent = (g.orc ? field(g.orc, '1') : 'NW').toUpperCase();
    // DC (discontinue) asks of a one-off analysis what CA asks: stop it. Acted on as CA, answered DR/UD.
    const discontinue = sent === 'DC';
    const control = discontinue ? 'CA' : sent;
    if (!control && g.orc) {
      issues.push({
        code: Hl7ErrorCode.RequiredFieldMissing,
        location: { segment: 'ORC', sequence: g.orc.seq, field: 1 },
        text: 'ORC-1 order control is required',
      });
      return;
    }
    if (control !== 'NW' && control !== 'CA' && control !== 'HD' && control !== 'RL') {
      issues.push({
        code: Hl7ErrorCode.TableValueNotFound,
        location: { segment: 'ORC', sequence: g.orc?.seq ?? 1, field: 1 },
        text: `Order control ${control} is not supported (NW, CA, DC, HD, RL)`,
      });
      return;
    }
    // A further OBR under one ORC is its own order: its OBR-2 names it, ORC-2 only when OBR-2 is empty.
    const fromOrc = g.orc ? field(g.orc, '2.1') : '';
    const fromObr = g.obr ? field(g.obr, '2.1') : '';
    const placer = g.sharedOrc ? fromObr || fromOrc : fromOrc || fromObr;
    const obrAt = { segment: 'OBR', sequence: g.obr?.seq ?? 1, field: 2 };
    const orcAt = g.orc ? { segment: 'ORC', sequence: g.orc.seq, field: 2 } : obrAt;
    const placerAt = (g.sharedOrc ? fromObr : !fromOrc) && g.obr ? obrAt : orcAt;
    const controlAt = g.orc ? { segment: 'ORC', sequence: g.orc.seq, field: 1 } : obrAt; // no ORC: always NW
    const placerSeg = placerAt.segment === 'OBR' ? g.obr : g.orc;
    const authority: PlacerAuthority = {};
    for (const [c, key] of [
      [2, 'namespaceId'],
      [3, 'universalId'],
      [4, 'universalIdType'],
    ] as const) {
      const v = placerSeg ? field(placerSeg, `2.${c}`) : '';
      if (v) authority[key] = v;
    }
    const at = {
      placerAt,
      controlAt,
      ...(Object.keys(authority).length ? { placerAuthority: authority } : {}),
      ...(discontinue ? { discontinue } : {}),
    };
    if (!placer) {
      issues.push({
        code: Hl7ErrorCode.RequiredFieldMissing,
        location: g.orc
          ? { segment: 'ORC', sequence: g.orc.seq, field: 2 }
          : { segment: 'OBR', sequence: g.obr?.seq ?? 1, field: 2 },
        text: 'Placer order number (ORC-2 or OBR-2) is required',
      });
      return;
    }
    if (placer.length > MAX_IDENTIFIER_LENGTH) {
      issues.push({
        code: Hl7ErrorCode.DataTypeError,
        location: g.orc
          ? { segment: 'ORC', sequence: g.orc.seq, field: 2 }
          : { segment: 'OBR', sequence: g.obr?.seq ?? 1, field: 2 },
        text: `Placer order number is longer than ${MAX_IDENTIFIER_LENGTH} characters`,
      });
      return;
    }
    const code = g.obr ? field(g.obr, '4.1') : '';
    refs.push({
      control,
      placerOrderNumber: placer,
      ...(at.placerAuthority ? { placerAuthority: at.placerAuthority } : {}),
      ...(discontinue ? { discontinue } : {}),
      test:
        control === 'NW' && g.obr && code
          ? { code, display: field(g.obr, '4.2') || null, system: field(g.obr, '4.3') || null }
          : null,
    });
    if (control !== 'NW') {
      // About an order we have: its placer number names it, nothing else of the group is read.
      out.push({ index, control, placerOrderNumber: placer, ...at, test: null, tasks: [], details: {}, images: [] });
      return;
    }
    needsPatient = true;
    if (!g.obr || !field(g.obr, '4.1')) {
      issues.push({
        code: Hl7ErrorCode.RequiredFieldMissing,
        // A group without an OBR is named by its ORC (not by another group's OBR).
        location: g.obr
          ? { segment: 'OBR', sequence: g.obr.seq, field: 4 }
          : { segment: 'ORC', sequence: g.orc?.seq ?? 1 },
        text: g.obr
          ? 'OBR-4 universal service identifier is required'
          : 'A new order (ORC-1 NW) needs an OBR with OBR-4 universal service identifier',
      });
      return;
    }
    const obr = g.obr;
    const test = { code: field(obr, '4.1'), display: field(obr, '4.2') || null, system: field(obr, '4.3') || null };
    // CE/CWE 4-6: the alternate coding. EHRs often order by their local code and give LOINC here; the
    // order keeps the code it was placed with (as ordered, echoed in the result), the tasks come from
    // whichever coding is mapped.
    const alternate = field(obr, '4.4')
      ? { code: field(obr, '4.4'), display: field(obr, '4.5') || null, system: field(obr, '4.6') || null }
      : null;
    const mapped = (t: { system: string | null; code: string } | null) => {
      const found = t ? tasksFor(t.system, t.code) : null;
      return found && found.length > 0 ? found : null;
    };
    const tasks = mapped(test) ?? mapped(alternate);
    if (!tasks) {
      const alt = alternate ? ` (alternate ${alternate.system ?? ''}|${alternate.code})` : '';
      issues.push({
        code: Hl7ErrorCode.TableValueNotFound,
        location: { segment: 'OBR', sequence: obr.seq, field: 4 },
        text: `Test code ${test.system ?? ''}|${test.code}${alt} is not mapped to a Hemato.AI task`,
      });
      return;
    }
    const images: Hl7ImageSource[] = [];
    for (const obx of g.obx) {
      const img = imageFrom(obx, issues, opts, zipsToCheck);
      if (img) images.push({ ...img, name: `obx${obx.seq}.${EXT[img.mediaType ?? ''] ?? 'bin'}` });
    }
    const details: Record<string, unknown> = {
      orderControl: control,
      messageType: `${header.messageCode}^${header.triggerEvent}`,
      version: header.version,
    };
    // MSH-11: a training or debugging order's result must go back marked as one, never as production.
    details.processingId = header.processingId.toUpperCase() || 'P';
    if (alternate) details.alternateTest = alternate;
    // Kept for the result: ORC-2/OBR-2 of the ORU give the placer its whole EI back.
    if (at.placerAuthority) details.placerAuthority = at.placerAuthority;
    const provider = xcn(reps(g.orc ?? obr, 12)[0]) ?? xcn(reps(obr, 16)[0]);
    if (provider) details.orderingProvider = provider;
    const bad = issues.length;
    const observed = dateTimeOf(obr, 7, 'observation date/time', issues);
    const specimens = g.spm.map((s) => ({
      id: field(s, '2.1') || null,
      type: { code: field(s, '4.1'), display: field(s, '4.2') || null, system: field(s, '4.3') || null },
      collectedAt: dateTimeOf(s, 17, 'collection date/time', issues) ?? null,
      receivedAt: dateTimeOf(s, 18, 'received date/time', issues) ?? null,
    }));
    if (issues.length > bad) return;
    const collected = observed ?? specimens[0]?.collectedAt;
    if (collected) details.collectionTime = collected;
    const priority = field(obr, '27.6') || field(obr, '5');
    if (priority) details.priority = priority;
    if (specimens.length) {
      details.specimens = specimens;
    } else if (field(obr, '15.1')) {
      details.specimens = [{ id: null, type: { code: field(obr, '15.1'), display: null, system: null } }];
    }
    const diagnoses = g.dg1
      .map((s) => ({
        code: field(s, '3.1'),
        display: field(s, '3.2') || field(s, '4') || null,
        system: field(s, '3.3') || null,
        type: field(s, '6') || null,
      }))
      .filter((d) => d.code);
    if (diagnoses.length) details.diagnoses = diagnoses;
    const notes = g.notes.filter(Boolean);
    if (notes.length) details.notes = notes;
    out.push({ index, control, placerOrderNumber: placer, ...at, test, tasks, details, images });
  });

  // A PID is read whenever there is one (a cancellation's too: the ORL^O22 names the patient, PID-3 being
  // required there); only new orders need it, so only they are refused without a usable one.
  const patient = pid
    ? patientFrom(pid, header, needsPatient ? issues : [])
    : needsPatient
      ? (issues.push({
          code: Hl7ErrorCode.RequiredFieldMissing,
          location: { segment: 'PID' },
          text: 'A PID segment is required for new orders',
        }),
        null)
      : null;
  return { patient, groups: out, refs, issues, ...(opts.zipCheck === 'deferred' ? { zipsToCheck } : {}) };
}

/**
 * Checks the inline zips `readOrderMessage` left (`zipCheck: 'deferred'`), letting other work run while each
 * inflates; a zip that is not what Hemato.AI takes adds its issue (AE 102 at its OBX-5.5), as when checked there.
 * A good one is marked so (markImageBytesGood): OrderIntakeService.createMany, inside the group commit's
 * transaction, does not inflate it again.
 */
export async function checkDeferredZips(parsed: ParsedOrderMessage, opts: ReadOrderOptions = {}): Promise<void> {
  const zips = parsed.zipsToCheck ?? [];
  delete parsed.zipsToCheck;
  for (const zip of zips) {
    const problem = await zipImagesProblemYielding(zip.bytes, { maxUnpackedBytes: opts.zipMaxUnpackedBytes });
    if (problem) parsed.issues.push(edContentIssue(zip.obxSeq, problem));
    else markImageBytesGood(zip.bytes, opts.zipMaxUnpackedBytes);
  }
}

/** The issue of an OBX ED whose bytes are not a whole JPEG or PNG, or a zip of them. */
function edContentIssue(obxSeq: number, problem: string): Hl7Issue {
  return {
    code: Hl7ErrorCode.DataTypeError,
    location: { segment: 'OBX', sequence: obxSeq, field: 5, component: 5 },
    text: `OBX-5 ED data: ${problem}`,
  };
}

/** The image in an OBX, if it carries one: ED (base64 bytes) or RP (a URL). */
type Unnamed<T> = T extends unknown ? Omit<T, 'name'> : never;

function imageFrom(
  obx: SegCtx,
  issues: Hl7Issue[],
  opts: ReadOrderOptions,
  zipsToCheck: DeferredZip[],
): Unnamed<Hl7ImageSource> | null {
  const type = field(obx, '2').toUpperCase();
  if (type === 'ED') {
    // ED: source application ^ type of data ^ data subtype ^ encoding ^ data
    // OBX-5.3 (the sender's subtype label) is not trusted: the bytes say what they are (below).
    const encoding = field(obx, '5.4').toUpperCase();
    const data = field(obx, '5.5').replace(/\s+/g, '');
    if (!data) {
      issues.push({
        code: Hl7ErrorCode.RequiredFieldMissing,
        location: { segment: 'OBX', sequence: obx.seq, field: 5, component: 5 },
        text: 'OBX-5 ED has no data',
      });
      return null;
    }
    if (encoding !== 'BASE64' || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
      issues.push({
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'OBX', sequence: obx.seq, field: 5, component: 4 },
        text: 'OBX-5 ED data must be Base64',
      });
      return null;
    }
    const bytes = Buffer.from(data, 'base64');
    if (opts.maxImageBytes !== undefined && bytes.length > opts.maxImageBytes) {
      issues.push({
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'OBX', sequence: obx.seq, field: 5, component: 5 },
        text: `OBX-5 ED image is ${bytes.length} bytes, over the limit of ${opts.maxImageBytes} (IMAGE_MAX_BYTES)`,
      });
      return null;
    }
    // Refused here, at the order, rather than failing later at Hemato.AI: the sender can fix it now.
    const sniffed = sniffMediaType(bytes.subarray(0, 16));
    if (!sniffed) {
      issues.push({
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'OBX', sequence: obx.seq, field: 5, component: 5 },
        text: 'OBX-5 ED data is not a JPEG, PNG or zip image',
      });
      return null;
    }
    if (sniffed === 'application/zip' && opts.zipCheck === 'deferred') {
      zipsToCheck.push({ obxSeq: obx.seq, bytes });
      return { kind: 'inline', data: bytes, mediaType: sniffed };
    }
    const contentProblem =
      sniffed === 'application/zip'
        ? zipImagesProblem(bytes, { maxUnpackedBytes: opts.zipMaxUnpackedBytes })
        : imageEndProblem(bytes, sniffed);
    if (contentProblem) {
      issues.push(edContentIssue(obx.seq, contentProblem));
      return null;
    }
    // Not checked again where the order is stored (OrderIntakeService.createMany).
    markImageBytesGood(bytes, opts.zipMaxUnpackedBytes);
    return { kind: 'inline', data: bytes, mediaType: sniffed };
  }
  if (type === 'RP') {
    // RP: pointer ^ application id ^ type of data ^ subtype. A URL may hold '&' (the subcomponent
    // separator) literally or escaped as \T\: read the raw component and unescape it ourselves.
    const text = (obx.fields[5] ?? '').split(obx.d.repetition)[0] ?? '';
    const first = text.split(obx.d.component)[0] ?? '';
    const url = unescapeHl7(first, obx.d).trim();
    if (!isHttpUrl(url)) {
      issues.push({
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'OBX', sequence: obx.seq, field: 5, component: 1 },
        text: 'OBX-5 RP pointer must be an http(s) URL',
      });
      return null;
    }
    const problem = opts.allowedImageHosts ? imageUrlProblem(url, opts.allowedImageHosts) : null;
    if (problem) {
      // The sender can fix the URL (or the operator the allow-list) now; the reason names the host, not the URL.
      issues.push({
        code: Hl7ErrorCode.DataTypeError,
        location: { segment: 'OBX', sequence: obx.seq, field: 5, component: 1 },
        text: `OBX-5 RP pointer: ${problem.reason}`,
      });
      return null;
    }
    const subtype = (text.split(obx.d.component)[3] ?? '').toUpperCase();
    return { kind: 'url', url, mediaType: MEDIA[subtype] ?? null };
  }
  return null;
}

/**
 * An http(s) URL the image fetcher can request: it parses as a URL, with a host. `http://`, a space in the
 * host or an unclosed IPv6 bracket would be taken (AA) and only fail when the worker fetches it.
 */
function isHttpUrl(value: string): boolean {
  if (!/^https?:\/\//i.test(value)) return false;
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}
