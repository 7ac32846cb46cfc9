import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, DeliveryStatus, createLogger, type AppConfig } from '@hemato/common';
import {
  EhrClient,
  EhrHttpError,
  EhrSubjectError,
  FhirSystems,
  buildReportResources,
  buildReportTransaction,
  checkTransactionResponse,
  ehrBasedOn,
  ehrOutcomeText,
  reportInputOf,
  resolveEhrSubject,
  summariseTransactionResponse,
  type EhrAnswer,
} from '@hemato/fhir';
import { currentDelivery } from '@hemato/orders';
import { DeliveryEntity, OrderEntity, ReportEntity } from '@hemato/persistence';
import { PatientIdentityReader } from '@hemato/privacy';
import type { ReportResults } from '@hemato/hemato-client';
import type { Bundle, DiagnosticReport, Task } from '@medplum/fhirtypes';
import { DataSource, LessThan } from 'typeorm';

const log = createLogger('deliver-fhir');

/** The outcome of one delivery attempt. */
export type DeliverFhirResult = 'acknowledged' | 'failed' | 'skipped';

/**
 * A failure worth retrying (network, 408/429/5xx): the job throws it so BullMQ backs off and retries, not
 * sooner than `retryAfterMs` when the EHR said when to come back (Retry-After).
 */
export class TransientDeliveryError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'TransientDeliveryError';
  }
}

/**
 * Writes a report to the EHR as one transaction Bundle (conditional create/update by identifier,
 * so a retry never duplicates), records the EHR's answer on the delivery row, then completes the
 * EHR's Task for the ServiceRequest when there is one.
 */
@Injectable()
export class DeliverFhirService {
  private ehr?: Promise<EhrClient | null>;

  constructor(
    private readonly ds: DataSource,
    private readonly identities: PatientIdentityReader,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'fhir'>,
  ) {}

  private client(): Promise<EhrClient | null> {
    this.ehr ??= EhrClient.fromConfig(this.config.fhir);
    return this.ehr;
  }

  /**
   * `finalAttempt` (the job's last): a failure that would be retried fails the delivery instead, its reason
   * kept as the attempt recorded it; otherwise it throws for BullMQ to retry.
   */
  async deliver(
    orderId: string,
    deliveryId: string,
    opts: { finalAttempt?: boolean } = {},
  ): Promise<DeliverFhirResult> {
    const final = opts.finalAttempt ?? false;
    const m = this.ds.manager;
    const asked = await m.findOne(DeliveryEntity, { where: { id: deliveryId } });
    if (!asked || asked.orderId !== orderId) {
      log.info({ orderId, deliveryId }, 'delivery row gone: nothing to do');
      return 'skipped';
    }
    // A revision stored since the job was asked for is what goes out: the older version would
    // overwrite the corrected DiagnosticReport (conditional update by identifier).
    const delivery = await currentDelivery(m, asked);
    if (!delivery) return 'skipped';
    if (delivery.id !== asked.id) {
      log.info({ orderId, deliveryId, newer: delivery.id }, 'older report version superseded');
      deliveryId = delivery.id;
    }
    if (delivery.status === DeliveryStatus.Acknowledged || delivery.status === DeliveryStatus.Superseded)
      return 'skipped';
    const [order, report] = await Promise.all([
      m.findOne(OrderEntity, { where: { id: orderId } }),
      m.findOne(ReportEntity, { where: { id: delivery.reportId } }),
    ]);
    if (!order || !report) {
      await this.finish(deliveryId, { status: DeliveryStatus.Failed, error: 'order or report missing' });
      return 'failed';
    }
    const ehr = await this.client();
    if (!ehr) {
      await this.finish(deliveryId, { status: DeliveryStatus.Failed, error: 'No EHR configured (FHIR_EHR_BASE_URL)' });
      return 'failed';
    }

    const identity = order.patientProxyId ? await this.identities.read(m, order.patientProxyId) : null;
    const basedOn = ehrBasedOn(order);
    const controlId = `${order.id}/v${report.version}`;
    await m.update(
      DeliveryEntity,
      { id: deliveryId },
      { status: DeliveryStatus.Sending, attempts: () => 'attempts + 1', lastAttemptAt: new Date(), controlId },
    );

    let bundle: Bundle;
    let answer: EhrAnswer;
    try {
      const subject = await resolveEhrSubject(ehr, identity, this.config.fhir.FHIR_PATIENT_IDENTIFIER_SYSTEMS);
      // Earlier versions: a result one of them sent and this one no longer has is retracted in the EHR.
      const earlier = await m.find(ReportEntity, {
        where: { orderId, version: LessThan(report.version) },
        order: { version: 'DESC' },
      });
      bundle = buildReportTransaction(
        buildReportResources({
          ...reportInputOf(order, report, subject, basedOn),
          earlierResults: earlier.map((r) => r.raw as unknown as ReportResults),
        }),
      );
      answer = await ehr.transaction(bundle);
    } catch (err) {
      if (err instanceof EhrSubjectError) {
        return this.failed(orderId, deliveryId, final, {
          transient: false,
          outcome: null,
          response: null,
          error: err.message,
        });
      }
      const e = err instanceof EhrHttpError ? err : new EhrHttpError(String(err), null, undefined);
      // The row (and the order's failure reason) say why, in the EHR's words when it gave an OperationOutcome;
      // the job's error, which is logged, only says how the request ended.
      const said = ehrOutcomeText(e);
      return this.failed(orderId, deliveryId, final, {
        transient: e.transient,
        outcome: e.status === null ? null : String(e.status),
        response: e.body === undefined ? null : JSON.stringify(clip(e.body)),
        error: said ? `${e.message}: ${said}` : e.message,
        logged: e.message,
        tag: e.status ?? (e.timedOut ? 'timeout' : 'network'),
        retryAfterMs: e.retryAfterMs,
      });
    }

    // A 2xx is not yet an acknowledgement: only a transaction-response with every entry written is.
    const problem = checkTransactionResponse(bundle, answer.status, answer.body);
    const body = answer.body as Bundle;
    const response = JSON.stringify(
      body?.resourceType === 'Bundle' ? summariseTransactionResponse(body) : clip(answer.body),
    );
    if (problem) {
      return this.failed(orderId, deliveryId, final, {
        transient: problem.transient,
        outcome: String(answer.status),
        response,
        error: problem.error,
        logged: problem.logged,
        tag: answer.status,
      });
    }

    // The EHR's Task is closed before the delivery is recorded: "acknowledged" then means all of it is done
    // (a crash in between retries the delivery, whose writes are conditional, and finds the Task closed).
    if (basedOn?.reference) {
      await this.completeEhrTask(ehr, basedOn.reference, () => reportReference(ehr, bundle, body, orderId), orderId);
    }
    await this.finish(deliveryId, {
      status: DeliveryStatus.Acknowledged,
      outcome: String(answer.status),
      response,
      error: null,
    });
    log.info({ orderId, deliveryId, version: report.version }, 'report written to the EHR');
    return 'acknowledged';
  }

  /**
   * Records a failed attempt. A transient one stays pending and throws, so BullMQ retries and the lifecycle
   * does not fail the order while a retry is due; on the job's last attempt it fails the delivery (`gave up:`).
   */
  private async failed(
    orderId: string,
    deliveryId: string,
    final: boolean,
    f: {
      transient: boolean;
      outcome: string | null;
      response: string | null;
      error: string;
      /** What the job's error (logged) says instead of `error`, when that holds the EHR's own words. */
      logged?: string;
      tag?: string | number;
      retryAfterMs?: number;
    },
  ): Promise<DeliverFhirResult> {
    // On the job's last attempt a transient failure ends the delivery here, with its reason as recorded (the
    // EHR's words included): the job's error, which is logged, carries none of them.
    const retry = f.transient && !final;
    await this.finish(deliveryId, {
      status: retry ? DeliveryStatus.Pending : DeliveryStatus.Failed,
      outcome: f.outcome,
      response: f.response,
      error: f.transient && final ? `gave up: ${f.error}` : f.error,
    });
    log.warn({ orderId, deliveryId, status: f.outcome, transient: f.transient, final }, 'FHIR delivery failed');
    if (retry) {
      const wait =
        f.retryAfterMs !== undefined ? ` (the EHR asked to retry in ${Math.ceil(f.retryAfterMs / 1000)} s)` : '';
      throw new TransientDeliveryError(
        `EHR write failed (${f.tag ?? 'network'}): ${f.logged ?? f.error}${wait}`,
        f.retryAfterMs,
      );
    }
    return 'failed';
  }

  private async finish(
    id: string,
    patch: { status: DeliveryStatus; outcome?: string | null; response?: string | null; error?: string | null },
  ): Promise<void> {
    await this.ds.manager.update(DeliveryEntity, { id }, patch);
  }

  /** The EHR's own Task for the ServiceRequest, if it keeps one: completed, output → the report. */
  private async completeEhrTask(
    ehr: EhrClient,
    serviceRequest: string,
    reportRef: () => Promise<string | null>,
    orderId: string,
  ): Promise<void> {
    try {
      const found = await ehr.search<Task>('Task', { 'based-on': serviceRequest });
      // Found once, and only when a Task is open (an EHR without Tasks is not searched for the report).
      let drRef: string | null | undefined;
      for (const first of (found.entry ?? []).map((e) => e.resource!).filter(Boolean)) {
        let t: Task = first;
        for (let attempt = 1; ; attempt++) {
          if (t.status === 'completed' || t.status === 'cancelled' || !t.id) break;
          if (drRef === undefined) drRef = await reportRef();
          if (drRef === null) {
            log.warn({ orderId, task: `Task/${t.id}` }, 'EHR Task left open: the EHR does not say where the report is');
            return;
          }
          try {
            // If-Match the version read: a change made in the EHR meanwhile is not overwritten.
            await ehr.update(
              {
                ...t,
                id: t.id,
                status: 'completed',
                output: [
                  ...(t.output ?? []),
                  { type: { text: 'DiagnosticReport' }, valueReference: { reference: drRef } },
                ],
              },
              { ifMatch: t.meta?.versionId },
            );
            log.info({ orderId, task: `Task/${t.id}` }, 'EHR Task completed');
            break;
          } catch (err) {
            // 412: the Task changed since it was read; complete the current version, keeping that change.
            if (!(err instanceof EhrHttpError && err.status === 412) || attempt >= 3) throw err;
            t = await ehr.read<Task>('Task', t.id);
          }
        }
      }
    } catch (err) {
      // The report is in; a Task we could not close is noted, not a failed delivery.
      log.warn({ orderId, err: (err as Error).message }, 'could not complete the EHR Task');
    }
  }
}

/**
 * The DiagnosticReport as the EHR knows it (`DiagnosticReport/<id>`). From its entry of the transaction-response
 * (entries answer in the order sent): the location, else the resource returned. An answer may carry statuses only
 * (an update that changed nothing needs no location; `Prefer: return=minimal`), so then it is searched for by
 * our identifier, which the transaction wrote. Null when the EHR does not know one report by it.
 */
async function reportReference(ehr: EhrClient, sent: Bundle, answer: Bundle, orderId: string): Promise<string | null> {
  const at = (sent.entry ?? []).findIndex((e) => e.resource?.resourceType === 'DiagnosticReport');
  const entry = at >= 0 ? answer.entry?.[at] : undefined;
  const fromLocation = /(?:^|\/)(DiagnosticReport\/[A-Za-z0-9\-.]{1,64})(?:\/|$)/.exec(entry?.response?.location ?? '');
  if (fromLocation) return fromLocation[1]!;
  const returned = entry?.resource;
  if (returned?.resourceType === 'DiagnosticReport' && returned.id) return `DiagnosticReport/${returned.id}`;
  const found = await ehr.search<DiagnosticReport>('DiagnosticReport', {
    identifier: `${FhirSystems.diagnosticReport}|${orderId}`,
    _count: '2',
  });
  const reports = (found.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === 'DiagnosticReport');
  return reports.length === 1 && reports[0]!.id ? `DiagnosticReport/${reports[0]!.id}` : null;
}

/** A body kept on the delivery row: an unreadable one (an HTML page, ...) only in part. */
function clip(body: unknown): unknown {
  return typeof body === 'string' && body.length > 2000 ? `${body.slice(0, 2000)}…` : body;
}
