import { createHash } from 'node:crypto';
import { imageUrlProblem, type DeclaredContent } from '@hemato/common';
import type { PatientIdentity } from '@hemato/privacy';
import type {
  Attachment,
  Binary,
  DocumentReference,
  Identifier,
  Media,
  Patient,
  Reference,
  Resource,
  ServiceRequest,
  Specimen,
} from '@medplum/fhirtypes';
import { FhirOperationError, isShapeTypeError, wrongShape } from '../outcome/operation-outcome';
import type { ResourceResolver } from './resource-resolver';
import { MAX_IDENTIFIER_BYTES, assertStorableText } from './storable-text';

/** Maps an order code to Hemato.AI tasks (implemented by `OrderCodeTable` in `@hemato/orders`). */
export interface CodeMapper {
  tasksFor(system: string | null | undefined, code: string): string[] | null;
}

/**
 * An image found on the order: bytes carried in the resource, or a URL to fetch (with what its Attachment
 * declared the bytes to be, checked once fetched).
 */
export type FhirImage =
  | { kind: 'inline'; name: string; data: Buffer; mediaType?: string | null }
  | { kind: 'url'; name: string; url: string; mediaType?: string | null; declared?: DeclaredContent };

/** A ServiceRequest understood as an order, ready for `OrderIntakeService.create`. */
export interface ParsedServiceRequest {
  /** `fhir:<system>|<value>` from the placer identifier (or If-None-Exist), or the EHR reference; null when none. */
  externalKey: string | null;
  /**
   * Set when If-None-Exist named an identifier value without a system (`identifier=value`): as in FHIR
   * token search, an order with that value under any system is this order.
   */
  identifierValueAnySystem?: string;
  placerOrderNumber: string | null;
  status: ServiceRequest['status'];
  test: { system: string | null; code: string; display: string | null };
  tasks: string[];
  patient: PatientIdentity;
  images: FhirImage[];
  /** No patient identity here: FHIR references, requester, specimen, priority, notes. */
  details: Record<string, unknown>;
}

export interface ParseOptions {
  /** Mapping of `code.coding` to Hemato.AI tasks. */
  codes: CodeMapper;
  resolver: ResourceResolver;
  /** FHIRPath prefix for error expressions (e.g. `Bundle.entry[2].resource`); default `ServiceRequest`. */
  path?: string;
  /** `If-None-Exist` header value (`identifier=system|value`). */
  ifNoneExist?: string;
  /** Where the ServiceRequest lives (EHR base URL), for subscription intake; undefined for REST. */
  ehrBaseUrl?: string;
  /**
   * Who sent it (e.g. the authenticated client): the assigning authority for a patient known only by a
   * bare reference like `Patient/1`, so two senders' `Patient/1` stay two patients.
   */
  sourceAuthority?: string;
  /**
   * Hosts image URLs may be fetched from (`IMAGE_URL_ALLOWED_HOSTS`): an image attachment whose http(s) url
   * is malformed or names another host is refused (422), not accepted and failed later when the worker
   * fetches it. Undefined: not checked.
   */
  allowedImageHosts?: string[];
}

/**
 * Statuses that stop an order: `revoked` (cancelled in the EHR) and `entered-in-error` (FHIR: void, it should
 * not have existed; not to be acted on). Either cancels ours; neither creates one.
 */
export const CANCELLING_STATUSES: ReadonlyArray<ServiceRequest['status']> = ['revoked', 'entered-in-error'];

/** Whether a ServiceRequest status cancels the order (`revoked`, `entered-in-error`). */
export function cancels(status: string | undefined): boolean {
  return status !== undefined && (CANCELLING_STATUSES as ReadonlyArray<string>).includes(status);
}

/** What an order may say: go ahead, or one of the cancelling statuses. */
/** `on-hold`: the order is taken in (or kept) but held; `active` again releases it. */
const ACCEPTED_STATUSES: ReadonlyArray<ServiceRequest['status']> = ['active', 'on-hold', ...CANCELLING_STATUSES];
const ORDER_INTENTS: ReadonlyArray<ServiceRequest['intent']> = [
  'order',
  'original-order',
  'reflex-order',
  'filler-order',
  'instance-order',
];
const VALID_STATUSES = ['draft', 'active', 'on-hold', 'revoked', 'completed', 'entered-in-error', 'unknown'];
const VALID_INTENTS = [
  'proposal',
  'plan',
  'directive',
  'order',
  'original-order',
  'reflex-order',
  'filler-order',
  'instance-order',
  'option',
];
const PLACER_TYPE = 'PLAC';
/** ServiceRequest.priority's required value set (request-priority). */
const PRIORITIES = ['routine', 'urgent', 'asap', 'stat'];
/**
 * FHIR R4 dateTime: a year, year-month, date, or a date and time with seconds and a time zone. The value
 * goes on as the report's `effectiveDateTime` and Hemato.AI's sample time: a malformed one would make the
 * EHR refuse our DiagnosticReport long after the order was taken, so it is refused at intake.
 */
const FHIR_DATE_TIME =
  /^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$/;

function assertDateTime(value: unknown, path: string): void {
  if (value === undefined || value === null) return;
  if (typeof value !== 'string') throw wrongShape(path);
  if (!FHIR_DATE_TIME.test(value)) {
    throw FhirOperationError.invalid(
      `"${value.slice(0, 40)}" is not a FHIR dateTime (e.g. 2026-11-27T08:00:00+01:00)`,
      path,
      'value',
    );
  }
}

/** `fhir:<system>|<value>`: the idempotency key of an order identified by a FHIR identifier. */
export function identifierKey(id: { system?: string; value?: string }): string {
  return `fhir:${id.system ?? ''}|${id.value ?? ''}`;
}

/**
 * Parses an `If-None-Exist` header; only `identifier=[system|]value` is supported. As in FHIR token search,
 * `value` alone leaves `system` undefined (any system) and `|value` gives `system: ''` (no system).
 */
export function parseIfNoneExist(header: string, path = 'ServiceRequest'): { system?: string; value: string } {
  const query = header.trim().replace(/^.*\?/, '');
  const params = new URLSearchParams(query);
  const keys = [...params.keys()];
  const ident = params.get('identifier');
  if (keys.length !== 1 || !ident) {
    throw FhirOperationError.invalid(
      'If-None-Exist supports only identifier=[system|]value',
      `${path}.identifier`,
      'not-supported',
    );
  }
  assertStorableText(ident, `${path}.identifier`);
  const bar = ident.indexOf('|');
  const parsed = bar < 0 ? { value: ident } : { system: ident.slice(0, bar), value: ident.slice(bar + 1) };
  if (!parsed.value) {
    throw FhirOperationError.invalid('If-None-Exist names no identifier value', `${path}.identifier`, 'value');
  }
  return parsed;
}

/**
 * An Identifier's system and value must be strings: they become the order's key and the patient's hash.
 * Any other JSON type once went through as `[object Object]` (two different orders taken as one) or
 * failed later (500). `ids` is one Identifier or an array of them.
 */
function assertIdentifierStrings(ids: unknown, path: string): void {
  const list = Array.isArray(ids) ? ids : ids === undefined || ids === null ? [] : [ids];
  list.forEach((id: unknown, i) => {
    if (!id || typeof id !== 'object') return;
    for (const k of ['system', 'value'] as const) {
      const v = (id as Record<string, unknown>)[k];
      if (v !== undefined && v !== null && typeof v !== 'string')
        throw wrongShape(`${Array.isArray(ids) ? `${path}[${i}]` : path}.${k}`);
    }
  });
}

/**
 * FHIR R4 modifiers we do not understand: a `modifierExtension` (on the resource or any of its elements)
 * or `implicitRules` changes what the resource means, and a system that does
 * not know them SHALL NOT process it as if they were absent (extensibility.html#modifierExtension,
 * resource.html#implicitRules). We know none, so any refuses the order (422 `not-supported` at the element).
 */
export function assertNoUnknownModifiers(value: unknown, path: string): void {
  const walk = (v: unknown, at: string, isResource: boolean): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${at}[${i}]`, isResource));
      return;
    }
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (isResource && o.implicitRules !== undefined && o.implicitRules !== null) {
      throw FhirOperationError.unprocessable(
        `implicitRules ${String(o.implicitRules).slice(0, 200)} are not understood here`,
        `${at}.implicitRules`,
        'not-supported',
      );
    }
    const mods = o.modifierExtension;
    if (Array.isArray(mods) && mods.length > 0) {
      const url = (mods[0] as { url?: unknown } | null)?.url;
      throw FhirOperationError.unprocessable(
        `The modifier extension ${typeof url === 'string' ? url.slice(0, 200) : '(no url)'} is not understood here`,
        `${at}.modifierExtension[0]`,
        'not-supported',
      );
    }
    for (const [k, x] of Object.entries(o)) {
      // Contained resources are checked where they are used (the Patient, a Specimen, an image), as the
      // resources of a Bundle are: one we never read (a requester's Practitioner) changes nothing we do.
      if (k === 'modifierExtension' || k === 'contained' || !x || typeof x !== 'object') continue;
      walk(x, `${at}.${k}`, false);
    }
  };
  walk(value, path, true);
}

function placerIdentifier(sr: ServiceRequest): Identifier | undefined {
  const ids = (sr.identifier ?? []).filter((i) => i.value);
  return ids.find((i) => i.type?.coding?.some((c) => c.code === PLACER_TYPE)) ?? ids[0];
}

function refOf(ref: Reference | undefined): string | undefined {
  return ref?.reference?.trim() || undefined;
}

/** A FHIR reference made absolute against the EHR base, so two EHRs' `ServiceRequest/1` differ. */
function absolute(reference: string, base?: string): string {
  if (!base || /^[a-z]+:/i.test(reference)) return reference;
  return `${base.replace(/\/$/, '')}/${reference}`;
}

/** What names the order a ServiceRequest is for: its key (`orders.external_key`) and placer number. */
export interface ServiceRequestKey {
  externalKey: string | null;
  /** `If-None-Exist: identifier=value` without a system: the value, matched under any system. */
  identifierValueAnySystem?: string;
  placerOrderNumber: string | null;
}

/**
 * The order key of a ServiceRequest: the If-None-Exist identifier, else its placer identifier, else (read from
 * the EHR) its absolute reference. Needs nothing else of the resource, so a cancellation or a hold can find its
 * order before the rest is checked (see `parseServiceRequest`). Throws 400 for an identifier over the indexable
 * length.
 */
export function serviceRequestKey(
  sr: ServiceRequest,
  opts: Pick<ParseOptions, 'ifNoneExist' | 'ehrBaseUrl' | 'path'>,
): ServiceRequestKey {
  const p = opts.path ?? 'ServiceRequest';
  const placer = placerIdentifier(sr);
  let externalKey: string | null = null;
  let identifierValueAnySystem: string | undefined;
  if (opts.ifNoneExist) {
    const wanted = parseIfNoneExist(opts.ifNoneExist, p);
    if (wanted.system === undefined) {
      // The order is then kept under its own identifier with that value (placer first), so a later
      // `identifier=system|value` finds it too.
      identifierValueAnySystem = wanted.value;
      const own = [placer, ...(sr.identifier ?? [])].find((i) => i?.value === wanted.value);
      externalKey = identifierKey(own ?? wanted);
    } else externalKey = identifierKey(wanted);
  } else if (placer) externalKey = identifierKey(placer);
  else if (opts.ehrBaseUrl && sr.id) externalKey = `fhir:${absolute(`ServiceRequest/${sr.id}`, opts.ehrBaseUrl)}`;
  // The key and the placer number are indexed (btree entries hold 2704 bytes at most): a longer one failed
  // the insert (500). Identifiers are short in practice; this is far above any real one.
  const placerOrderNumber = placer?.value ?? sr.requisition?.value ?? null;
  if (
    (externalKey !== null && Buffer.byteLength(externalKey) - 'fhir:'.length > MAX_IDENTIFIER_BYTES) ||
    (placerOrderNumber !== null && Buffer.byteLength(String(placerOrderNumber)) > MAX_IDENTIFIER_BYTES)
  ) {
    throw FhirOperationError.invalid(
      `The identifier is too long: system and value at most ${MAX_IDENTIFIER_BYTES} bytes together`,
      `${p}.${placer?.value || externalKey ? 'identifier' : 'requisition'}`,
      'value',
    );
  }
  return {
    externalKey,
    ...(identifierValueAnySystem !== undefined ? { identifierValueAnySystem } : {}),
    placerOrderNumber,
  };
}

/**
 * Turns a ServiceRequest (and what it references) into an order. Throws `FhirOperationError`
 * with the right status and `expression` for each problem: 400 for a malformed resource, 422 for
 * a business rule (order code not mapped, not an order, patient not found).
 */
export async function parseServiceRequest(sr: ServiceRequest, opts: ParseOptions): Promise<ParsedServiceRequest> {
  try {
    return await readServiceRequest(sr, opts);
  } catch (err) {
    // An element of the wrong JSON type (a string where R4 has an array, a number for a string) trips the
    // reader: that is a malformed resource (400), not our failure. A failed fetch (undici's TypeError
    // carries a cause) is not the client's fault and goes on as it is.
    if (isShapeTypeError(err)) throw wrongShape(opts.path ?? 'ServiceRequest');
    throw err;
  }
}

async function readServiceRequest(sr: ServiceRequest, opts: ParseOptions): Promise<ParsedServiceRequest> {
  const p = opts.path ?? 'ServiceRequest';
  if (!sr || typeof sr !== 'object' || sr.resourceType !== 'ServiceRequest') {
    throw FhirOperationError.invalid('Expected a ServiceRequest resource', `${p}.resourceType`, 'structure');
  }
  // Text PostgreSQL cannot keep (U+0000, a lone surrogate) is refused here, not failed on at the insert (500).
  assertStorableText(sr, p);
  assertNoUnknownModifiers(sr, p);
  assertIdentifierStrings(sr.identifier, `${p}.identifier`);
  assertIdentifierStrings(sr.requisition, `${p}.requisition`);
  assertIdentifierStrings(sr.subject?.identifier, `${p}.subject.identifier`);
  if (!sr.status) throw FhirOperationError.required(`${p}.status`);
  if (!VALID_STATUSES.includes(sr.status)) {
    throw FhirOperationError.invalid(`Unknown ServiceRequest.status "${String(sr.status)}"`, `${p}.status`, 'value');
  }
  if (!sr.intent) throw FhirOperationError.required(`${p}.intent`);
  if (!VALID_INTENTS.includes(sr.intent)) {
    throw FhirOperationError.invalid(`Unknown ServiceRequest.intent "${String(sr.intent)}"`, `${p}.intent`, 'value');
  }
  // A versioned reference (Patient/1/_history/2) names the same Patient: the order is for the patient, not a version.
  const subjectRef = refOf(sr.subject)?.replace(/\/_history\/[^/]*$/, '');
  if (!sr.subject || (!subjectRef && !sr.subject.identifier?.value)) throw FhirOperationError.required(`${p}.subject`);
  const codings = (sr.code?.coding ?? []).filter((c) => c.code);
  if (!sr.code || codings.length === 0) throw FhirOperationError.required(`${p}.code`, `${p}.code.coding is required`);

  if (!ACCEPTED_STATUSES.includes(sr.status)) {
    throw FhirOperationError.unprocessable(
      `Only active and on-hold ServiceRequests are accepted (revoked or entered-in-error cancels); got "${sr.status}"`,
      `${p}.status`,
    );
  }
  if (!ORDER_INTENTS.includes(sr.intent)) {
    throw FhirOperationError.unprocessable(`ServiceRequest.intent "${sr.intent}" is not an order`, `${p}.intent`);
  }
  if (sr.priority !== undefined && !PRIORITIES.includes(sr.priority as string)) {
    throw FhirOperationError.invalid(
      `Unknown ServiceRequest.priority "${String(sr.priority)}" (routine, urgent, asap or stat)`,
      `${p}.priority`,
      'value',
    );
  }
  assertDateTime(sr.authoredOn, `${p}.authoredOn`);
  // Reference.type names what the reference or identifier points at (a type name, or the core profile's URL):
  // anything but a Patient is no patient.
  const subjectType = (sr.subject as { type?: unknown }).type;
  if (
    (subjectType !== undefined &&
      subjectType !== null &&
      subjectType !== 'Patient' &&
      subjectType !== 'http://hl7.org/fhir/StructureDefinition/Patient') ||
    (subjectRef && !/(^|\/)Patient\/[^/]+$|^urn:uuid:|^#/.test(subjectRef))
  ) {
    throw FhirOperationError.unprocessable('ServiceRequest.subject must be a Patient', `${p}.subject`);
  }

  let mapped: { system: string | null; code: string; display: string | null; tasks: string[] } | null = null;
  for (const c of codings) {
    const tasks = opts.codes.tasksFor(c.system ?? null, c.code!);
    if (tasks && tasks.length > 0) {
      mapped = { system: c.system ?? null, code: c.code!, display: c.display ?? sr.code.text ?? null, tasks };
      break;
    }
  }
  if (!mapped) {
    const list = codings.map((c) => `${c.system ?? ''}|${c.code}`).join(', ');
    throw FhirOperationError.unprocessable(
      `No Hemato.AI task is configured for code ${list}`,
      `${p}.code`,
      'code-invalid',
    );
  }

  const patient = await resolvePatient(sr, subjectRef, opts, p);
  const { externalKey, identifierValueAnySystem, placerOrderNumber } = serviceRequestKey(sr, opts);

  const specimens: Specimen[] = [];
  for (const [i, ref] of (sr.specimen ?? []).entries()) {
    const s = await resolveAs<Specimen>(ref, 'Specimen', sr, opts.resolver);
    // A urn:uuid or #id means "in this request": one that is not there is an error (as for the subject), not
    // a specimen to drop, with its collection time. One read from the EHR that it does not find stays optional.
    const local = refOf(ref);
    if (!s && local && (local.startsWith('urn:') || local.startsWith('#'))) {
      throw FhirOperationError.unprocessable(
        `${local.slice(0, 100)} is not a Specimen in the request`,
        `${p}.specimen[${i}]`,
        'not-found',
      );
    }
    if (!s) continue;
    assertNoUnknownModifiers(s, `${p}.specimen[${i}].resolve()`);
    const at = `${p}.specimen[${i}].resolve().collection`;
    assertDateTime(s.collection?.collectedDateTime, `${at}.collectedDateTime`);
    assertDateTime(s.collection?.collectedPeriod?.start, `${at}.collectedPeriod.start`);
    specimens.push(s);
  }
  // Specimens read from the Bundle or the EHR go into the order's details (jsonb).
  assertStorableText(specimens, `${p}.specimen`);
  const images = await collectImages(sr, opts, p);

  const srRef = sr.id ? `ServiceRequest/${sr.id}` : null;
  const details: Record<string, unknown> = {
    fhir: {
      serviceRequest: srRef,
      serviceRequestAbsolute: srRef && opts.ehrBaseUrl ? absolute(srRef, opts.ehrBaseUrl) : null,
      ehrBaseUrl: opts.ehrBaseUrl ?? null,
      identifier: (sr.identifier ?? []).map((i) => ({ system: i.system ?? null, value: i.value ?? null })),
      requisition: sr.requisition?.value ?? null,
      priority: sr.priority ?? null,
      authoredOn: sr.authoredOn ?? null,
      requester: sr.requester
        ? { reference: sr.requester.reference ?? null, display: sr.requester.display ?? null }
        : null,
      reasonCode: (sr.reasonCode ?? []).flatMap((c) => c.coding ?? []).map((c) => ({ system: c.system, code: c.code })),
      note: (sr.note ?? []).map((n) => n.text).filter(Boolean),
      specimen: specimens.map((s) => ({
        reference: s.id ? `Specimen/${s.id}` : null,
        accession: s.accessionIdentifier?.value ?? null,
        type: s.type?.coding?.[0]?.code ?? s.type?.text ?? null,
        collected: s.collection?.collectedDateTime ?? s.collection?.collectedPeriod?.start ?? null,
      })),
    },
    collectedAt: specimens.map((s) => s.collection?.collectedDateTime).find(Boolean) ?? null,
  };

  return {
    externalKey,
    ...(identifierValueAnySystem !== undefined ? { identifierValueAnySystem } : {}),
    placerOrderNumber,
    status: sr.status,
    test: { system: mapped.system, code: mapped.code, display: mapped.display },
    tasks: mapped.tasks,
    patient,
    images,
    details,
  };
}

async function resolvePatient(
  sr: ServiceRequest,
  subjectRef: string | undefined,
  opts: ParseOptions,
  p: string,
): Promise<PatientIdentity> {
  const resolved = subjectRef ? await opts.resolver.resolve(subjectRef, sr) : undefined;
  if (resolved && resolved.resourceType !== 'Patient') {
    throw FhirOperationError.unprocessable('ServiceRequest.subject must be a Patient', `${p}.subject`);
  }
  const patient = resolved as Patient | undefined;
  if (patient) assertNoUnknownModifiers(patient, `${p}.subject.resolve()`);
  assertIdentifierStrings(patient?.identifier, `${p}.subject.resolve().identifier`);
  // A reference the EHR can resolve later (never a urn:uuid or contained id, which mean nothing outside the request).
  let fhirPatientRef: string | undefined;
  if (patient?.id && subjectRef && !subjectRef.startsWith('urn:') && !subjectRef.startsWith('#')) {
    fhirPatientRef = subjectRef;
  } else if (!patient && subjectRef && /(^|\/)Patient\/[^/]+$/.test(subjectRef)) {
    fhirPatientRef = subjectRef;
  }
  if (subjectRef && !patient && (subjectRef.startsWith('urn:') || subjectRef.startsWith('#'))) {
    throw FhirOperationError.unprocessable(`Patient ${subjectRef} is not in the request`, `${p}.subject`, 'not-found');
  }

  const identifiers = (patient?.identifier ?? []).filter((i) => i.value);
  const mrn = identifiers.find((i) => i.type?.coding?.some((c) => c.code === 'MR')) ?? identifiers[0];
  const logical = sr.subject?.identifier?.value ? sr.subject.identifier : undefined;
  let primary: PatientIdentity['primary'];
  if (mrn) primary = { authority: mrn.system ?? 'FHIR', value: mrn.value! };
  else if (logical) primary = { authority: logical.system ?? 'FHIR', value: logical.value! };
  else if (fhirPatientRef)
    primary = { authority: opts.ehrBaseUrl ?? `fhir:${opts.sourceAuthority ?? 'unknown'}`, value: fhirPatientRef };
  else throw FhirOperationError.unprocessable('The Patient has no identifier', `${p}.subject`);

  const name = patient?.name?.find((n) => n.use === 'official') ?? patient?.name?.[0];
  const identity: PatientIdentity = {
    primary,
    identifiers: (identifiers.length > 0 ? identifiers : logical ? [logical] : []).map((i) => ({
      authority: i.system,
      value: i.value!,
      type: i.type?.coding?.[0]?.code,
    })),
  };
  if (name) identity.name = { family: name.family, given: name.given, text: name.text };
  if (patient?.birthDate) identity.birthDate = patient.birthDate;
  if (patient?.gender) identity.sex = patient.gender;
  const address = patient?.address?.map(
    (a) => a.text ?? [...(a.line ?? []), a.city, a.postalCode].filter(Boolean).join(', '),
  );
  if (address?.length) identity.address = address;
  const phone = patient?.telecom?.filter((t) => t.system === 'phone' && t.value).map((t) => t.value!);
  if (phone?.length) identity.phone = phone;
  if (fhirPatientRef) identity.fhirPatientRef = fhirPatientRef;
  return identity;
}

/** The resource a reference names, when it is of the type wanted (others are not ours to read here). */
async function resolveAs<T extends Resource>(
  r: Reference,
  type: T['resourceType'],
  from: Resource,
  resolver: ResourceResolver,
): Promise<T | undefined> {
  const ref = refOf(r);
  if (!ref) return undefined;
  const res = await resolver.resolve(ref, from);
  return res?.resourceType === type ? (res as T) : undefined;
}

/**
 * A document its sender declares as something other than an image (a requisition PDF, a text note): other
 * supporting information, left out like an Observation. Bytes declared as an image, zip or DICOM, or
 * undeclared, are taken as images (and refused at intake when they are none).
 */
export function declaredNotImage(contentType: unknown): boolean {
  if (typeof contentType !== 'string' || contentType.trim() === '') return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return !(
    type.startsWith('image/') ||
    ['application/zip', 'application/x-zip-compressed', 'application/octet-stream', 'application/dicom'].includes(type)
  );
}

/** A Media, DocumentReference or Binary none of whose attachments is declared an image (see declaredNotImage). */
export function holdsNoImage(r: Resource): boolean {
  const types =
    r.resourceType === 'Binary'
      ? [(r as Binary).contentType]
      : r.resourceType === 'Media'
        ? [(r as Media).content?.contentType]
        : r.resourceType === 'DocumentReference'
          ? ((r as DocumentReference).content ?? []).map((c) => c?.attachment?.contentType)
          : [];
  return types.length > 0 && types.every(declaredNotImage);
}

/**
 * An Attachment's `size` and `hash` (R4: the base64 SHA-1 of the data), read and checked for form; undefined
 * where absent. A malformed one is refused (400): it could never match.
 */
function declaredContent(a: Attachment, where: string): DeclaredContent | undefined {
  const declared: DeclaredContent = {};
  const size: unknown = a.size;
  if (size !== undefined && size !== null) {
    // R4 has an unsignedInt; R5 an integer64, sent as a string of digits.
    const n = typeof size === 'string' && /^\d{1,15}$/.test(size) ? Number(size) : size;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw FhirOperationError.invalid('Attachment.size must be a whole number of bytes', `${where}.size`, 'value');
    }
    declared.size = n;
  }
  const hash: unknown = a.hash;
  if (hash !== undefined && hash !== null) {
    const bytes = typeof hash === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(hash) ? Buffer.from(hash, 'base64') : null;
    if (!bytes || bytes.length !== 20) {
      throw FhirOperationError.invalid(
        'Attachment.hash must be the base64 SHA-1 of the data (20 bytes)',
        `${where}.hash`,
        'value',
      );
    }
    declared.sha1 = bytes.toString('hex');
  }
  return declared.size === undefined && declared.sha1 === undefined ? undefined : declared;
}

/**
 * Checks bytes carried in the request against what their Attachment declares: a mismatch (a transfer or an
 * interface engine that damaged them, or the wrong file) refuses the order (422) rather than send Hemato.AI
 * other bytes than the EHR meant.
 */
function assertDeclaredContent(data: Buffer, declared: DeclaredContent | undefined, where: string): void {
  if (declared?.size !== undefined && declared.size !== data.length) {
    throw FhirOperationError.unprocessable(
      `Attachment.size is ${declared.size} but its data is ${data.length} bytes`,
      `${where}.size`,
      'value',
    );
  }
  if (declared?.sha1 !== undefined && createHash('sha1').update(data).digest('hex') !== declared.sha1) {
    throw FhirOperationError.unprocessable(
      'Attachment.hash does not match its data (R4: the base64 SHA-1 of the bytes)',
      `${where}.hash`,
      'value',
    );
  }
}

/**
 * Images come from `supportingInfo` (Media, DocumentReference, Binary), the same in the request
 * Bundle; an attachment's `data` is stored inline, its `url` is fetched later by the worker
 * (a relative `Binary/..` url is read now through the resolver).
 */
async function collectImages(sr: ServiceRequest, opts: ParseOptions, p: string): Promise<FhirImage[]> {
  const images: FhirImage[] = [];
  const names = new Set<string>();
  const unique = (base: string) => {
    let name = base;
    for (let i = 2; names.has(name); i++) name = `${base}-${i}`;
    names.add(name);
    return name;
  };
  const fromAttachment = async (a: Attachment | undefined, fallbackName: string, where: string) => {
    if (!a || declaredNotImage(a.contentType)) return;
    const name = unique((a.title || fallbackName).replace(/[^\w.-]+/g, '_'));
    const declared = declaredContent(a, where);
    if (a.data) {
      const data = Buffer.from(a.data, 'base64');
      assertDeclaredContent(data, declared, where);
      images.push({ kind: 'inline', name, data, mediaType: a.contentType ?? null });
    } else if (a.url) {
      if (/^https?:/i.test(a.url)) {
        const problem = opts.allowedImageHosts ? imageUrlProblem(a.url, opts.allowedImageHosts) : null;
        if (problem) {
          // Names the host, never the URL (its path or credentials).
          throw FhirOperationError.unprocessable(
            problem.reason,
            `${where}.url`,
            problem.kind === 'host' ? 'business-rule' : 'value',
          );
        }
        images.push({
          kind: 'url',
          name,
          url: a.url,
          mediaType: a.contentType ?? null,
          ...(declared ? { declared } : {}),
        });
      } else {
        const bin = await opts.resolver.resolve(a.url, sr);
        if (bin?.resourceType !== 'Binary' || !(bin as Binary).data) {
          throw FhirOperationError.unprocessable(`Attachment ${a.url} could not be read`, where, 'not-found');
        }
        const b = bin as Binary;
        if (declaredNotImage(b.contentType)) return;
        const data = Buffer.from(b.data!, 'base64');
        assertDeclaredContent(data, declared, where);
        images.push({ kind: 'inline', name, data, mediaType: b.contentType ?? null });
      }
    } else {
      throw FhirOperationError.invalid('Attachment has neither data nor url', where, 'required');
    }
  };
  for (const [i, info] of (sr.supportingInfo ?? []).entries()) {
    const ref = refOf(info);
    if (!ref) continue;
    const where = `${p}.supportingInfo[${i}]`;
    const res = await opts.resolver.resolve(ref, sr);
    if (!res) throw FhirOperationError.unprocessable(`${ref} could not be found`, where, 'not-found');
    // Only what we read as an image: other supporting information is left out, its modifiers with it.
    if (['Media', 'DocumentReference', 'Binary'].includes(res.resourceType))
      assertNoUnknownModifiers(res, `${where}.resolve()`);
    if (res.resourceType === 'Media') {
      const m = res as Media;
      await fromAttachment(m.content, `media-${m.id ?? i}`, `${where}.content`);
    } else if (res.resourceType === 'DocumentReference') {
      const d = res as DocumentReference;
      for (const [j, c] of (d.content ?? []).entries())
        await fromAttachment(c.attachment, `document-${d.id ?? i}-${j}`, `${where}.content[${j}]`);
    } else if (res.resourceType === 'Binary') {
      const b = res as Binary;
      if (b.data && !declaredNotImage(b.contentType))
        images.push({
          kind: 'inline',
          name: unique(`binary-${b.id ?? i}`),
          data: Buffer.from(b.data, 'base64'),
          mediaType: b.contentType ?? null,
        });
    }
    // Other supporting information (Observations, Conditions, ...) is not an image: left out.
  }
  return images;
}
