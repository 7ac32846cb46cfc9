import type { Subscription } from '@medplum/fhirtypes';

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
    criteria: opts.criteria ?? 'ServiceRequest?status=active',
    channel: {
      type: 'rest-hook',
      endpoint: opts.endpoint,
      payload: 'application/fhir+json',
      ...(opts.authorizationHeader ? { header: [opts.authorizationHeader] } : {}),
    },
    ...(opts.secret ? { extension: [{ url: MEDPLUM_SUBSCRIPTION_SECRET_URL, valueString: opts.secret }] } : {}),
  };
}
