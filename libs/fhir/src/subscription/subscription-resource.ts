import type { Subscription } from '@medplum/fhirtypes';
import { fhirCodeSystem } from '../systems';

/** Medplum's extension carrying the HMAC secret for `X-Signature`. */
export const MEDPLUM_SUBSCRIPTION_SECRET_URL = 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret';

/** Tag that marks the Subscription as ours, so we find it again on restart. */
export const OUR_SUBSCRIPTION_TAG = { system: 'urn:hemato-bridge:subscription', code: 'service-request-intake' };

/**
 * The rest-hook Subscription we create on the EHR: new or changed active ServiceRequests, delivered
 * to our hook with the resource as payload, signed when a secret is set, authenticated with a header.
 */
export function buildOurSubscription(opts: {
  endpoint: string;
  criteria?: string;
  secret?: string;
  /** `Authorization: Bearer <key>` for our hook. */
  authorizationHeader?: string;
}): Subscription {
  return {
    resourceType: 'Subscription',
    meta: { tag: [OUR_SUBSCRIPTION_TAG] },
    status: 'requested',
    reason: 'hemato-bridge: peripheral blood smear orders to Hemato.AI',
    criteria: opts.criteria ?? 'ServiceRequest?status=active,on-hold,revoked,entered-in-error',
    channel: {
      type: 'rest-hook',
      endpoint: opts.endpoint,
      payload: 'application/fhir+json',
      ...(opts.authorizationHeader ? { header: [opts.authorizationHeader] } : {}),
    },
    ...(opts.secret ? { extension: [{ url: MEDPLUM_SUBSCRIPTION_SECRET_URL, valueString: opts.secret }] } : {}),
  };
}

/**
 * The ServiceRequests that are ours: `FHIR_SUBSCRIPTION_CRITERIA` when set, else the active and revoked ones whose
 * code is one of HEMATO_ORDER_CODES (a code whose v2 system has no FHIR URI is matched in any system).
 * Without it the EHR would notify, and a catch-up would read, every active order of the hospital.
 */
export function ourServiceRequestCriteria(
  configured: string | undefined,
  codes: Array<{ system: string; code: string }>,
): string {
  if (configured) return configured;
  const tokens = codes.map(({ system, code }) => {
    const uri = fhirCodeSystem(system);
    // A token's system and code are separated by '|' and tokens by ',': escape them in the code (FHIR search escaping).
    const value = code.replace(/[\\,|$]/g, (c) => `\\${c}`);
    return uri ? `${uri}|${value}` : value;
  });
  // Revoked and on-hold too: a query criteria notifies what matches after a change, so with `active` alone a
  // ServiceRequest revoked (or held) in the EHR was never notified and its order went on.
  return tokens.length
    ? `ServiceRequest?status=active,on-hold,revoked,entered-in-error&code=${tokens.join(',')}`
    : 'ServiceRequest?status=active,on-hold,revoked,entered-in-error';
}

/** A search URL's parameters (`ServiceRequest?a=1&b=2`) as the EHR client takes them; a repeated one (AND) as a list. */
export function criteriaParams(criteria: string): Record<string, string | string[]> {
  const params: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(criteria.slice(criteria.indexOf('?') + 1))) {
    const prev = params[k];
    params[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
  }
  return params;
}
