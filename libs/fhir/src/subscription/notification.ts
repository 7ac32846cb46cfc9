import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Basic, Bundle, Extension, Parameters, ParametersParameter, Resource } from '@medplum/fhirtypes';
import { FhirOperationError, isShapeTypeError, wrongShape } from '../outcome/operation-outcome';
import { assertStorableText } from '../intake/storable-text';

/** Most bytes of a Subscription reference we keep (it is a primary key). */
const MAX_SUBSCRIPTION_BYTES = 1024;

/** A FHIR logical id (R4 `id`: 1-64 of A-Z a-z 0-9 - .). */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** What a rest-hook request told us, whatever shape it came in. */
export type SubscriptionNotification =
  /** No payload: something matched, go and look (`channel.payload` empty). */
  | { shape: 'empty' }
  /** Medplum style: the resource itself POSTed. */
  | { shape: 'resource'; resource: Resource }
  /** HAPI style: `PUT {endpoint}/{type}/{id}` with (or without) the resource. */
  | { shape: 'hapi'; resourceType: string; id: string; resource?: Resource }
  /** R4 Subscriptions Backport notification Bundle. */
  | { shape: 'backport'; status: BackportStatus };

export type BackportNotificationType =
  'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

/** The SubscriptionStatus of a Backport notification, read from Parameters, Basic or SubscriptionStatus. */
export interface BackportStatus {
  type: BackportNotificationType;
  /** The Subscription reference (as sent). */
  subscription: string;
  topic?: string;
  status?: string;
  /** Events since the subscription started, as the sender counts them. */
  eventsSinceStart?: number;
  events: Array<{
    eventNumber: number;
    timestamp?: string;
    /** Reference to the resource the event is about. */
    focus?: string;
    /** The resource itself, when the payload is full-resource and it is in the Bundle. */
    resource?: Resource;
  }>;
}

/**
 * Verifies Medplum's `X-Signature`: hex HMAC-SHA256 of the JSON body with the subscription secret.
 * Medplum signs `JSON.stringify(resource)`, which re-serialising the parsed body reproduces.
 */
export function verifySignature(secret: string, body: string, signature: string | undefined): boolean {
  if (!signature) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  let given: Buffer;
  try {
    given = Buffer.from(signature.trim().replace(/^sha256=/i, ''), 'hex');
  } catch {
    return false;
  }
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Signature Medplum would send for a body (for tests and our own senders). */
export function signBody(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/**
 * An event count or number: a non-negative integer that a JavaScript number holds exactly (our columns
 * are bigint). Anything else present (1e30, 1.5, -3, 20 digits, text) is NaN, for `finish` to refuse.
 */
function int(v: string | number | undefined): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,16}$/.test(v.trim()) ? Number(v) : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : NaN;
}

type Part = { name: string; value: Record<string, unknown> };

function paramValue(p: ParametersParameter | Extension): Record<string, unknown> {
  return p as unknown as Record<string, unknown>;
}

function str(v: Record<string, unknown>): string | undefined {
  for (const k of [
    'valueString',
    'valueCode',
    'valueCanonical',
    'valueUri',
    'valueUnsignedInt',
    'valueInteger64',
    'valueInteger',
    'valueInstant',
    'valueDateTime',
  ]) {
    if (v[k] !== undefined && v[k] !== null) return String(v[k]);
  }
  const ref = v.valueReference as { reference?: string } | undefined;
  return ref?.reference;
}

/** Parameters.parameter or Basic.extension, as name → value parts. */
function partsOf(list: Array<ParametersParameter | Extension> | undefined): Part[] {
  return (list ?? []).map((p) => {
    const name = 'name' in p && p.name ? p.name : (((p as Extension).url ?? '').split(/[/#]/).pop() ?? '');
    return { name, value: paramValue(p) };
  });
}

function childParts(p: Part): Part[] {
  const v = p.value as { part?: ParametersParameter[]; extension?: Extension[] };
  return partsOf(v.part ?? v.extension);
}

function readStatus(first: Resource, bundle: Bundle): BackportStatus {
  let parts: Part[];
  if (first.resourceType === 'Parameters') parts = partsOf((first as Parameters).parameter);
  else if (first.resourceType === 'Basic') parts = partsOf((first as Basic).extension);
  else {
    // R4B SubscriptionStatus read as a plain object (not an R4 resource type).
    const s = first as unknown as {
      type?: string;
      status?: string;
      subscription?: { reference?: string };
      topic?: string;
      eventsSinceSubscriptionStart?: string | number;
      notificationEvent?: Array<{ eventNumber?: string | number; timestamp?: string; focus?: { reference?: string } }>;
    };
    return finish(
      {
        type: s.type as BackportNotificationType,
        subscription: s.subscription?.reference ?? '',
        topic: s.topic,
        status: s.status,
        eventsSinceStart: int(s.eventsSinceSubscriptionStart),
        events: (s.notificationEvent ?? []).map((e) => ({
          eventNumber: int(e.eventNumber) ?? NaN,
          timestamp: e.timestamp,
          focus: e.focus?.reference,
        })),
      },
      bundle,
    );
  }
  const get = (name: string) => parts.find((p) => p.name === name);
  const type = str(get('type')?.value ?? {}) as BackportNotificationType | undefined;
  const events = parts
    .filter((p) => p.name === 'notification-event')
    .map((p) => {
      const c = childParts(p);
      const g = (n: string) => {
        const hit = c.find((x) => x.name === n);
        return hit ? str(hit.value) : undefined;
      };
      return { eventNumber: int(g('event-number')) ?? NaN, timestamp: g('timestamp'), focus: g('focus') };
    });
  return finish(
    {
      type: type as BackportNotificationType,
      subscription: str(get('subscription')?.value ?? {}) ?? '',
      topic: str(get('topic')?.value ?? {}),
      status: str(get('status')?.value ?? {}),
      eventsSinceStart: int(str(get('events-since-subscription-start')?.value ?? {})),
      events,
    },
    bundle,
  );
}

const TYPES: readonly BackportNotificationType[] = [
  'handshake',
  'heartbeat',
  'event-notification',
  'query-status',
  'query-event',
];

function finish(s: BackportStatus, bundle: Bundle): BackportStatus {
  if (!TYPES.includes(s.type)) {
    throw FhirOperationError.invalid(
      `Unknown notification type "${String(s.type)}"`,
      'Bundle.entry[0].resource',
      'value',
    );
  }
  if (!s.subscription)
    throw FhirOperationError.required('Bundle.entry[0].resource', 'The notification names no subscription');
  // Kept as a primary key (btree entries hold 2704 bytes at most): a longer one failed the insert (500).
  if (Buffer.byteLength(s.subscription) > MAX_SUBSCRIPTION_BYTES) {
    throw FhirOperationError.invalid(
      `The subscription reference is too long (at most ${MAX_SUBSCRIPTION_BYTES} bytes)`,
      'Bundle.entry[0].resource',
      'value',
    );
  }
  if (s.events.some((e) => !Number.isFinite(e.eventNumber))) {
    throw FhirOperationError.invalid(
      'notification-event without an event-number that is a non-negative integer',
      'Bundle.entry[0].resource',
      'value',
    );
  }
  if (s.eventsSinceStart !== undefined && !Number.isFinite(s.eventsSinceStart)) {
    throw FhirOperationError.invalid(
      'events-since-subscription-start is not a non-negative integer',
      'Bundle.entry[0].resource',
      'value',
    );
  }
  // With full-resource payload the focus resources are the other entries of the Bundle.
  const rest = (bundle.entry ?? []).slice(1);
  for (const e of s.events) {
    if (!e.focus) continue;
    const hit = rest.find(
      (en) =>
        en.fullUrl === e.focus ||
        (en.resource?.id && e.focus!.endsWith(`${en.resource.resourceType}/${en.resource.id}`)),
    );
    if (hit?.resource) e.resource = hit.resource;
  }
  return s;
}

/**
 * Recognises the rest-hook shapes EHRs send: empty POST, a resource (Medplum), `PUT .../{type}/{id}`
 * (HAPI), R4 Backport notification Bundles (`type=history`, first entry Parameters or Basic) and R4B ones
 * (`type=subscription-notification`, first entry SubscriptionStatus).
 */
export function parseNotification(
  body: unknown,
  path?: { resourceType?: string; id?: string },
): SubscriptionNotification {
  const empty =
    body === undefined || body === null || body === '' || (typeof body === 'object' && Object.keys(body).length === 0);
  if (path?.resourceType && path.id) {
    if (!/^[A-Z][A-Za-z]+$/.test(path.resourceType) || !FHIR_ID.test(path.id)) {
      throw FhirOperationError.invalid('Bad resource type or id in the notification URL');
    }
    return {
      shape: 'hapi',
      resourceType: path.resourceType,
      id: path.id,
      resource: empty ? undefined : (body as Resource),
    };
  }
  if (empty) return { shape: 'empty' };
  // Text PostgreSQL cannot keep (U+0000, a lone surrogate) is refused, not failed on at the insert (500).
  assertStorableText(body, (body as Resource)?.resourceType === 'Bundle' ? 'Bundle' : 'Resource');
  const r = body as Resource;
  if (typeof r !== 'object' || typeof r.resourceType !== 'string') {
    throw FhirOperationError.invalid('Notification body is not a FHIR resource', undefined, 'structure');
  }
  if (r.resourceType === 'Bundle') {
    const b = r as Bundle;
    const first = b.entry?.[0]?.resource;
    // R4 Backport: type history, Parameters (or Basic) first; R4B: type subscription-notification, SubscriptionStatus first.
    const notificationType = (b.type as string) === 'history' || (b.type as string) === 'subscription-notification';
    if (notificationType && first && ['Parameters', 'Basic', 'SubscriptionStatus'].includes(first.resourceType)) {
      try {
        return { shape: 'backport', status: readStatus(first, b) };
      } catch (err) {
        // A Parameters.parameter or part of the wrong JSON type (a string, null): malformed, 400 (it was 500).
        if (isShapeTypeError(err)) throw wrongShape('Bundle.entry[0].resource');
        throw err;
      }
    }
    throw FhirOperationError.invalid(
      'A notification Bundle must be type=history (R4 Backport) or subscription-notification (R4B) with a ' +
        'SubscriptionStatus (Parameters, Basic or SubscriptionStatus) first',
      'Bundle.type',
    );
  }
  // Its id names what we read from the EHR: one that is no FHIR id could never be read, and answering 503
  // (not found) would have the EHR resend it for ever.
  if (r.id !== undefined && (typeof r.id !== 'string' || !FHIR_ID.test(r.id))) {
    throw FhirOperationError.invalid('The notified resource has no valid FHIR id', `${r.resourceType}.id`, 'value');
  }
  return { shape: 'resource', resource: r };
}
