import type { CapabilityStatement } from '@medplum/fhirtypes';

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
          description: 'Bearer token: an API key (FHIR_API_KEYS) or a JWT signed by a key in FHIR_JWKS_URL.',
        },
        resource: [
          {
            type: 'ServiceRequest',
            interaction: [{ code: 'create' }, { code: 'read' }],
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
        ],
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}
