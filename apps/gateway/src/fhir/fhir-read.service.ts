import { Injectable } from '@nestjs/common';
import {
  FhirOperationError,
  assertStorableText,
  buildContainedDiagnosticReport,
  buildReportResources,
  buildServiceRequest,
  buildTask,
  reportInputOf,
  serviceRequestVersions,
  subjectOf,
  type SearchCursor,
} from '@hemato/fhir';
import type { OrderEntity } from '@hemato/persistence';
import { PatientIdentityReader } from '@hemato/privacy';
import type { Bundle, DiagnosticReport, Resource, ServiceRequest, Task } from '@medplum/fhirtypes';
import { mayAccess, type OrderCaller } from './fhir-auth.guard';
import { FhirOrdersRepository, type SearchPage } from './fhir-orders.repository';

/** Builds our Task, ServiceRequest and DiagnosticReport views of orders from the database. */
/** The subject of an order whose patient identity retention erased. */
const ERASED_SUBJECT = {
  display: 'Patient identity erased under the retention policy',
  extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }],
};

@Injectable()
export class FhirReadService {
  constructor(
    private readonly repo: FhirOrdersRepository,
    private readonly identities: PatientIdentityReader,
  ) {}

  private focusOf(order: OrderEntity): string {
    return (order.details?.fhir?.serviceRequestAbsolute as string | undefined) ?? `ServiceRequest/${order.id}`;
  }

  private async subject(order: OrderEntity) {
    if (!order.patientProxyId) return undefined;
    const identity = await this.identities.read(this.repo.manager, order.patientProxyId);
    // Erased under RETENTION_DAYS: said so, with the data-absent reason for privacy (`masked`), rather than
    // left out (ServiceRequest.subject is required) or called unknown.
    if (!identity && order.purgedAt) return ERASED_SUBJECT;
    return subjectOf(identity);
  }

  async task(order: OrderEntity): Promise<Task> {
    const report = await this.repo.latestReport(order.id);
    return buildTask({
      id: order.id,
      status: order.status,
      fillerOrderNumber: order.fillerOrderNumber,
      placerOrderNumber: order.placerOrderNumber,
      createdAt: order.createdAt,
      statusChangedAt: order.statusChangedAt,
      failureReason: order.failureReason,
      focus: this.focusOf(order),
      subject: await this.subject(order),
      diagnosticReport: report ? `DiagnosticReport/${order.id}` : null,
      delivered: report ? await this.repo.fhirDelivered(order.id, report.id) : false,
    });
  }

  /** The order if the caller may see it; another client's order is answered as absent (404), so ids do not leak. */
  private async visible(id: string, caller: OrderCaller): Promise<OrderEntity | null> {
    const order = await this.repo.findById(id);
    return order && mayAccess(caller, order) ? order : null;
  }

  async taskById(id: string, caller: OrderCaller): Promise<Task> {
    const order = await this.visible(id, caller);
    if (!order || order.sourceChannel !== 'fhir') throw FhirOperationError.notFound(`Task/${id} not found`);
    return this.task(order);
  }

  /**
   * Our ServiceRequest for an order: its current version, or `versionId` (vread). Its versions are the
   * changes of the status it shows (see serviceRequestVersions); a version it never had is not found.
   */
  async serviceRequestById(id: string, caller: OrderCaller, versionId?: string): Promise<ServiceRequest> {
    const order = await this.visible(id, caller);
    if (!order || order.sourceChannel !== 'fhir') throw FhirOperationError.notFound(`ServiceRequest/${id} not found`);
    const versions = serviceRequestVersions(await this.repo.statusHistory(order.id), order);
    const n = versionId === undefined ? versions.length : /^[1-9]\d{0,8}$/.test(versionId) ? Number(versionId) : 0;
    const version = versions[n - 1];
    if (!version) {
      throw FhirOperationError.notFound(`ServiceRequest/${id}/_history/${String(versionId).slice(0, 64)} not found`);
    }
    const placer = (
      order.details?.fhir?.identifier as Array<{ system: string | null; value: string | null }> | undefined
    )?.[0];
    return buildServiceRequest({
      id: order.id,
      version: { id: n, ...version },
      placerIdentifier: placer ?? (order.placerOrderNumber ? { value: order.placerOrderNumber } : null),
      test: { system: order.testSystem, code: order.testCode, display: order.testDisplay },
      subject: (await this.subject(order)) ?? { display: 'unknown' },
      createdAt: order.createdAt,
    });
  }

  /** The current version (meta.versionId) of our ServiceRequest for an order: what Location names. */
  async serviceRequestVersion(order: OrderEntity): Promise<number> {
    return serviceRequestVersions(await this.repo.statusHistory(order.id), order).length;
  }

  /** The latest report of an order as a DiagnosticReport (Observations contained); null when none yet. */
  async diagnosticReport(order: OrderEntity): Promise<DiagnosticReport | null> {
    const report = await this.repo.latestReport(order.id);
    if (!report) return null;
    const resources = buildReportResources(
      reportInputOf(order, report, await this.subject(order), { reference: `ServiceRequest/${order.id}` }),
    );
    return buildContainedDiagnosticReport(resources, order.id, String(report.version));
  }

  async diagnosticReportById(id: string, caller: OrderCaller): Promise<DiagnosticReport> {
    const order = await this.visible(id, caller);
    const dr = order ? await this.diagnosticReport(order) : null;
    if (!dr) throw FhirOperationError.notFound(`DiagnosticReport/${id} not found`);
    return dr;
  }

  /**
   * A Task or DiagnosticReport search (`_id`, and `focus` / `based-on`: our ServiceRequest or the EHR's),
   * among the orders the caller may see. Without any criterion it is refused: we do not list all orders.
   */
  async search(
    type: 'Task' | 'DiagnosticReport',
    criteria: Map<string, string[][]>,
    caller: OrderCaller,
    page: { limit: number; offset?: number; cursor?: SearchCursor },
  ): Promise<{ bundle: Bundle; page: SearchPage }> {
    const refParam = type === 'Task' ? 'focus' : 'based-on';
    const refs = criteria.get(refParam) ?? [];
    const ids = criteria.get('_id') ?? [];
    if (refs.length === 0 && ids.length === 0) {
      throw FhirOperationError.invalid(
        `Search ${type} by ${refParam} or _id`,
        type === 'Task' ? 'Task.focus' : 'DiagnosticReport.basedOn',
        'required',
      );
    }
    assertStorableText(refs, type === 'Task' ? 'Task.focus' : 'DiagnosticReport.basedOn');
    assertStorableText(ids, `${type}.id`);
    const found = await this.repo.searchOrders(
      { ids, refs, fhirOnly: type === 'Task', withReport: type === 'DiagnosticReport' },
      caller,
      page,
    );
    const resources: Resource[] = [];
    for (const o of found.orders) {
      const r = type === 'Task' ? await this.task(o) : await this.diagnosticReport(o);
      if (r) resources.push(r);
    }
    return { bundle: { ...searchset(resources), total: found.total }, page: found };
  }
}

function searchset(resources: Resource[]): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    total: resources.length,
    entry: resources.map((r) => ({ fullUrl: `${r.resourceType}/${r.id}`, resource: r, search: { mode: 'match' } })),
  };
}
