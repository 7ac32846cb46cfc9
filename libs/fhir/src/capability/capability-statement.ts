import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';

/** The resource types we serve and their interactions: the CapabilityStatement, and the 405 check below. */
const SERVED_RESOURCES: CapabilityStatementRestResource[] = [
  {
    type: 'ServiceRequest',
    interaction: [{ code: 'create' }, { code: 'read' }, { code: 'vread' }],
    conditionalCreate: true,
    searchParam: [],
  },
  {
    type: 'Task',
    interaction: [{ code: 'read' }, { code: 'search-type' }],
    searchParam: [
      { name: 'focus', type: 'reference' },
      { name: '_id', type: 'token' },
    ],
  },
  {
    type: 'DiagnosticReport',
    interaction: [{ code: 'read' }, { code: 'search-type' }],
    searchParam: [
      { name: 'based-on', type: 'reference' },
      { name: '_id', type: 'token' },
    ],
  },
];

const METHOD_OF: Record<string, { level: 'type' | 'instance'; method: string }> = {
  create: { level: 'type', method: 'POST' },
  'search-type': { level: 'type', method: 'GET' },
  read: { level: 'instance', method: 'GET' },
};

/**
 * HTTP methods served on `[base]/{type}` (`type`) or `[base]/{type}/{id}` (`instance`), from the
 * interactions we advertise; undefined when we do not serve the type at all (404, not 405).
 */
export function servedMethods(type: string, level: 'type' | 'instance'): string[] | undefined {
  const r = SERVED_RESOURCES.find((x) => x.type === type);
  if (!r) return undefined;
  return (r.interaction ?? [])
    .map((i) => METHOD_OF[i.code])
    .filter((m) => m?.level === level)
    .map((m) => m!.method);
}

/** The search parameters we advertise (and apply) for a type; none for a type we do not search. */
export function searchParamsOf(type: string): string[] {
  return (SERVED_RESOURCES.find((x) => x.type === type)?.searchParam ?? []).map((p) => p.name);
}

/** What our FHIR endpoint serves (GET /fhir/metadata). */
export function buildCapabilityStatement(opts: {
  baseUrl: string;
  software: { name: string; version: string };
  /** Bearer JWTs are accepted (JWKS configured): advertise SMART. */
  smart: boolean;
}): CapabilityStatement {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    publisher: 'hemato-bridge',
    kind: 'instance',
    software: opts.software,
    implementation: { description: 'hemato-bridge FHIR R4 order intake and results', url: opts.baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [
      {
        mode: 'server',
        documentation:
          'Orders in: POST ServiceRequest or a transaction/batch Bundle; Subscription rest-hook at /fhir/subscription-hook. ' +
          'Authorization: Bearer <API key or JWT>.',
        security: {
          cors: false,
          ...(opts.smart
            ? {
                service: [
                  {
                    coding: [
                      {
                        system: 'http://terminology.hl7.org/CodeSystem/restful-security-service',
                        code: 'SMART-on-FHIR',
                      },
                    ],
                  },
                ],
              }
            : {}),
          description:
            'Bearer token: an API key (FHIR_API_KEYS) or a JWT signed by a key in FHIR_JWKS_URL with SMART system/ scopes ' +
            '(patient/ and user/ scopes are refused). A client sees and changes only the orders it placed.',
        },
        resource: SERVED_RESOURCES,
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}
