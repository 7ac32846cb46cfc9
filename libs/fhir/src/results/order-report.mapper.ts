import { asFhirDateTime, collectionTimeOf } from '@hemato/common';
import type { ReportResults } from '@hemato/hemato-client';
import type { PatientIdentity } from '@hemato/privacy';
import type { Patient, Reference, ServiceRequest } from '@medplum/fhirtypes';
import type { ReportBuildInput } from './diagnostic-report.builder';

/** The order columns the FHIR builders read (a subset of `OrderEntity`). */
export interface OrderLike {
  id: string;
  fillerOrderNumber: string;
  placerOrderNumber: string | null;
  createdAt: Date;
  details: Record<string, any>;
}

/** The report columns the builder reads (a subset of `ReportEntity`). */
export interface ReportLike {
  version: number;
  raw: Record<string, any>;
  fetchedAt: Date;
}

/**
 * The subject in our read API (Task, ServiceRequest, DiagnosticReport): the EHR's Patient reference,
 * else a logical reference by identifier. Never the proxy. Writes to the EHR use resolveEhrSubject.
 */
export function subjectOf(identity: PatientIdentity | null): Reference<Patient> | undefined {
  if (!identity) return undefined;
  if (identity.fhirPatientRef) return { reference: identity.fhirPatientRef };
  return {
    identifier: {
      ...(/^[a-z]+:/i.test(identity.primary.authority) ? { system: identity.primary.authority } : {}),
      value: identity.primary.value,
    },
  };
}

/** The ServiceRequest as the EHR knows it (its reference), else by placer identifier. */
export function ehrBasedOn(order: OrderLike): Reference<ServiceRequest> | null {
  const fhir = (order.details?.fhir ?? {}) as {
    serviceRequest?: string | null;
    identifier?: Array<{ system: string | null; value: string | null }>;
  };
  if (fhir.serviceRequest) return { reference: fhir.serviceRequest };
  const id =
    fhir.identifier?.find((i) => i.value) ??
    (order.placerOrderNumber ? { system: null, value: order.placerOrderNumber } : null);
  if (!id?.value) return null;
  return { identifier: { ...(id.system ? { system: id.system } : {}), value: id.value } };
}

/**
 * Builder input for an order's report; `subject` and `basedOn` chosen by the caller: the EHR write
 * resolves the Patient in the EHR (resolveEhrSubject), our read API uses subjectOf.
 */
export function reportInputOf(
  order: OrderLike,
  report: ReportLike,
  subject: Reference<Patient> | undefined,
  basedOn: Reference<ServiceRequest> | null,
): ReportBuildInput {
  // Either channel's collection time (an HL7 order's too, with RESULT_DELIVERY=both), as FHIR can say it.
  const collected = asFhirDateTime(collectionTimeOf(order.details));
  return {
    orderId: order.id,
    fillerOrderNumber: order.fillerOrderNumber,
    placerOrderNumber: order.placerOrderNumber,
    version: report.version,
    results: report.raw as ReportResults,
    issued: report.fetchedAt,
    effective: collected ?? order.createdAt,
    subject: subject?.reference
      ? { reference: subject.reference }
      : subject?.identifier?.value
        ? { identifier: { system: subject.identifier.system, value: subject.identifier.value } }
        : undefined,
    basedOn,
    specimens: ((order.details?.fhir?.specimen ?? []) as Array<{ reference: string | null }>)
      .map((s) => s.reference)
      .filter((r): r is string => !!r && !!order.details?.fhir?.ehrBaseUrl),
  };
}
