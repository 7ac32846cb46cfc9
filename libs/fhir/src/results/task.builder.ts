import type { Patient, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import { FhirSystems } from '../systems';

/** The order fields a Task is derived from. */
export interface TaskSource {
  id: string;
  /** `orders.status` (OrderStatus values). */
  status: string;
  fillerOrderNumber: string;
  placerOrderNumber?: string | null;
  createdAt: Date;
  statusChangedAt: Date;
  failureReason?: string | null;
  /** Our ServiceRequest (`ServiceRequest/<orderId>`) or the EHR's. */
  focus: string;
  subject?: Reference<Patient>;
  /** Set when a report exists. */
  diagnosticReport?: string | null;
  /** A FHIR delivery was acknowledged by the EHR: the Task is done even before the order closes. */
  delivered?: boolean;
}

const TASK_STATUS: Record<string, Task['status']> = {
  received: 'received',
  awaiting_images: 'accepted',
  ready: 'in-progress',
  study_created: 'in-progress',
  uploading: 'in-progress',
  tasks_requested: 'in-progress',
  processing: 'in-progress',
  report_ready: 'in-progress',
  delivering: 'in-progress',
  completed: 'completed',
  rejected: 'rejected',
  cancelled: 'cancelled',
  failed: 'failed',
  on_hold: 'on-hold',
};

/** FHIR Task status for an order status. */
export function taskStatusOf(orderStatus: string, delivered = false): Task['status'] {
  if (delivered && orderStatus !== 'cancelled' && orderStatus !== 'rejected') return 'completed';
  return TASK_STATUS[orderStatus] ?? 'in-progress';
}

/**
 * The Task that tracks an order's fulfilment: status from the order, businessStatus = our order
 * status, output → the DiagnosticReport once there is one.
 */
export function buildTask(src: TaskSource): Task {
  const status = taskStatusOf(src.status, src.delivered);
  const task: Task = {
    resourceType: 'Task',
    id: src.id,
    meta: { lastUpdated: src.statusChangedAt.toISOString() },
    identifier: [{ system: FhirSystems.fillerOrder, value: src.fillerOrderNumber }],
    basedOn: [{ reference: src.focus }],
    status,
    businessStatus: { coding: [{ system: FhirSystems.orderStatus, code: src.status }], text: src.status },
    intent: 'order',
    code: {
      coding: [
        { system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill', display: 'Fulfill the focal request' },
      ],
    },
    focus: { reference: src.focus },
    authoredOn: src.createdAt.toISOString(),
    lastModified: src.statusChangedAt.toISOString(),
    owner: { display: 'hemato-bridge' },
  };
  if (src.subject) task.for = src.subject;
  if (src.placerOrderNumber) task.groupIdentifier = { value: src.placerOrderNumber };
  if ((status === 'failed' || status === 'rejected') && src.failureReason)
    task.statusReason = { text: src.failureReason };
  if (src.diagnosticReport) {
    task.output = [
      {
        type: { coding: [{ system: 'http://loinc.org', code: '34994-4' }], text: 'DiagnosticReport' },
        valueReference: { reference: src.diagnosticReport },
      },
    ];
  }
  return task;
}

/** The ServiceRequest.status our view shows for an order status. */
export function serviceRequestStatusOf(orderStatus: string): ServiceRequest['status'] {
  if (orderStatus === 'cancelled' || orderStatus === 'rejected') return 'revoked';
  if (orderStatus === 'on_hold') return 'on-hold';
  return orderStatus === 'completed' ? 'completed' : 'active';
}

/** One version of our ServiceRequest view: version n is `versions[n - 1]`. */
export interface ServiceRequestVersion {
  status: ServiceRequest['status'];
  at: Date;
}

/**
 * The versions of our ServiceRequest view of an order. Only its status changes over time, so each change
 * of the status it shows (from the order's status history, oldest first) is a new version; version 1 is
 * the order as taken in, the one the create's `Location` names (`…/_history/1`). The current status is
 * the last version even if the history lacks its change.
 */
export function serviceRequestVersions(
  history: Array<{ status: string; at: Date }>,
  current: { status: string; statusChangedAt: Date; createdAt: Date },
): ServiceRequestVersion[] {
  const versions: ServiceRequestVersion[] = [];
  for (const h of history) {
    const status = serviceRequestStatusOf(h.status);
    if (versions.at(-1)?.status !== status) versions.push({ status, at: h.at });
  }
  const now = serviceRequestStatusOf(current.status);
  if (versions.length === 0) versions.push({ status: now, at: current.createdAt });
  else if (versions.at(-1)!.status !== now) versions.push({ status: now, at: current.statusChangedAt });
  return versions;
}

/** Our view of an order as a ServiceRequest (GET /fhir/ServiceRequest/{id}, and its vread): one version of it. */
export function buildServiceRequest(src: {
  id: string;
  /** Which version (1-based) and what it shows. */
  version: { id: number } & ServiceRequestVersion;
  placerIdentifier?: { system?: string | null; value?: string | null } | null;
  test: { system: string | null; code: string | null; display: string | null };
  subject: Reference<Patient>;
  createdAt: Date;
}): ServiceRequest {
  const system = src.test.system === 'LN' ? 'http://loinc.org' : (src.test.system ?? undefined);
  return {
    resourceType: 'ServiceRequest',
    id: src.id,
    meta: { versionId: String(src.version.id), lastUpdated: src.version.at.toISOString() },
    ...(src.placerIdentifier?.value
      ? {
          identifier: [
            {
              ...(src.placerIdentifier.system ? { system: src.placerIdentifier.system } : {}),
              value: src.placerIdentifier.value,
            },
          ],
        }
      : {}),
    status: src.version.status,
    intent: 'order',
    code: {
      coding: [
        {
          ...(system && /^[a-z]+:/i.test(system) ? { system } : {}),
          code: src.test.code ?? 'unknown',
          ...(src.test.display ? { display: src.test.display } : {}),
        },
      ],
    },
    subject: src.subject,
    authoredOn: src.createdAt.toISOString(),
  };
}
