import { isDeepStrictEqual } from 'node:util';
import { Injectable } from '@nestjs/common';
import {
  DeliveryStatus,
  DeliveryTarget,
  DomainError,
  DomainErrorCode,
  JobName,
  OrderStatus,
  SourceChannel,
  createLogger,
} from '@hemato/common';
import { DeliveryEntity, ReportEntity, type OrderEntity } from '@hemato/persistence';
import { Not } from 'typeorm';
import { isLateReport } from '../order-state-machine';
import { StepContext } from './step-context';

const log = createLogger('step:fetch-report');

const FETCHABLE: readonly OrderStatus[] = [
  OrderStatus.TasksRequested,
  OrderStatus.Processing,
  OrderStatus.ReportReady,
  OrderStatus.Delivering,
  OrderStatus.Completed,
];

/**
 * Fetches the report and stores it by version (a version already stored is not stored again; a new
 * one on a completed order is a revision, delivered as a correction), then starts one delivery per
 * target. Deliveries are rows unique per (report, target): a re-run never delivers twice. An order
 * failed on the poll deadline takes up a report Hemato.AI finished after all (see `isLateReport`).
 */
@Injectable()
export class FetchReportStep {
  constructor(private readonly ctx: StepContext) {}

  async execute(orderId: string): Promise<void> {
    let order = await this.ctx.order(orderId);
    if (!order || !order.hematoStudyId || !(FETCHABLE.includes(order.status) || isLateReport(order))) return;
    const client = this.ctx.hemato.get();
    const report = await this.ctx.guard.forOrder(order, () => client.getReport(order!.hematoStudyId!));
    if (!report.usable) {
      await this.unusable(order, report.leftOut);
      return;
    }
    // What Hemato.AI sent malformed and was left out (the rest is delivered): named in the timeline.
    const leftOut = report.leftOut.length ? { leftOut: report.leftOut } : {};

    const latest = await this.ctx.ds.manager.findOne(ReportEntity, { where: { orderId }, order: { version: 'DESC' } });
    const version =
      report.version ??
      (latest && isDeepStrictEqual(latest.raw, report.raw) ? latest.version : (latest?.version ?? 0) + 1);
    await this.ctx.ds.manager
      .createQueryBuilder()
      .insert()
      .into(ReportEntity)
      .values({
        orderId,
        version,
        hematoStudyId: order.hematoStudyId,
        raw: report.raw as unknown as Record<string, any>,
      })
      .orIgnore()
      .execute();
    const stored = await this.ctx.ds.manager.findOneOrFail(ReportEntity, { where: { orderId, version } });
    const isNew = !latest || version > latest.version;

    if (order.status === OrderStatus.Completed) {
      if (!isNew) return;
      order = await this.ctx.transitions.move(orderId, OrderStatus.ReportReady, {
        actor: 'hemato',
        detail: { version, revision: true, ...leftOut },
        deadlineMs: this.ctx.staleMs(),
      });
      log.info({ orderId, version }, 'report revision stored');
    } else if (order.status === OrderStatus.Failed) {
      const taken = await this.takeUpLate(order, version);
      if (!taken) return;
      order = taken;
    } else if (order.status === OrderStatus.TasksRequested || order.status === OrderStatus.Processing) {
      order = await this.ctx.transitions.move(orderId, OrderStatus.ReportReady, {
        actor: 'hemato',
        expectFrom: [OrderStatus.TasksRequested, OrderStatus.Processing],
        patch: { hematoProgress: 1, hematoReportStatus: 'ready' },
        detail: {
          version,
          findings: Object.keys(report.morphologicalFindings),
          diagnoses: report.differentialDiagnosis.map((d) => d.icd10Code),
          ...leftOut,
        },
        deadlineMs: this.ctx.staleMs(),
      });
    }
    await this.startDeliveries(order, stored);
  }

  /**
   * A report with nothing to deliver (every statistic, finding and diagnosis malformed, no pathology text):
   * an order waiting for it fails, naming what was wrong, rather than sending the hospital an empty result.
   * A revision like it (on an order that has its report) is not taken: the report delivered stands.
   */
  private async unusable(order: OrderEntity, leftOut: string[]): Promise<void> {
    const what = leftOut.length ? `: ${leftOut.slice(0, 5).join('; ')}${leftOut.length > 5 ? '; …' : ''}` : '';
    const reason = `Hemato.AI's report has no usable results${what}`;
    if (order.status !== OrderStatus.TasksRequested && order.status !== OrderStatus.Processing) {
      await this.ctx.transitions.note(order.id, 'report_unusable', 'hemato', { reason, leftOut });
      log.warn({ orderId: order.id, status: order.status }, 'Hemato.AI report with no usable results not taken');
      return;
    }
    await this.ctx.transitions.move(order.id, OrderStatus.Failed, {
      actor: 'hemato',
      expectFrom: [OrderStatus.TasksRequested, OrderStatus.Processing],
      patch: { failureReason: reason, failedStep: JobName.OrderFetchReport },
      detail: { step: 'fetch_report', reason, leftOut },
    });
    log.warn({ orderId: order.id }, 'Hemato.AI report with no usable results: order failed');
  }

  /**
   * `failed → report_ready` for an order failed on the poll deadline; null when it has moved meanwhile
   * (cancelled by staff, or taken up by another run).
   */
  private async takeUpLate(order: OrderEntity, version: number): Promise<OrderEntity | null> {
    try {
      const moved = await this.ctx.transitions.move(order.id, OrderStatus.ReportReady, {
        actor: 'hemato',
        expectFrom: [OrderStatus.Failed],
        patch: { hematoProgress: 1, hematoReportStatus: 'ready', failureReason: null, failedStep: null },
        detail: {
          version,
          afterDeadline: true,
          note: `Hemato.AI's report arrived after the poll deadline (${order.failureReason ?? 'failed'}): delivered as usual`,
        },
        deadlineMs: this.ctx.staleMs(),
      });
      log.info({ orderId: order.id, version }, 'report taken up after the poll deadline');
      return moved;
    } catch (err) {
      if (err instanceof DomainError && err.code === DomainErrorCode.Conflict) return null;
      throw err;
    }
  }

  /** Delivery targets for an order: back the way it came, or both channels where configured. */
  targets(order: OrderEntity): DeliveryTarget[] {
    const cfg = this.ctx.config;
    if (cfg.orders.RESULT_DELIVERY === 'both') {
      const out: DeliveryTarget[] = [];
      // A FHIR/API order's ORU goes where HL7_RESULT_RECEIVING_APP/FACILITY is routed, when anywhere is set up.
      const hl7Out = cfg.hl7.HL7_RESULT_HOST || cfg.hl7.HL7_RESULT_ROUTES.length > 0;
      if (order.sourceChannel === SourceChannel.Hl7 || hl7Out) out.push(DeliveryTarget.Hl7);
      if (cfg.fhir.FHIR_EHR_BASE_URL) out.push(DeliveryTarget.Fhir);
      return out;
    }
    switch (order.sourceChannel) {
      case SourceChannel.Hl7:
        return [DeliveryTarget.Hl7];
      case SourceChannel.Fhir:
        // Without an EHR to write to, the EHR pulls the result through the FHIR read API: nothing to push.
        return cfg.fhir.FHIR_EHR_BASE_URL ? [DeliveryTarget.Fhir] : [];
      case SourceChannel.Api:
        return [];
    }
  }

  private async startDeliveries(order: OrderEntity, report: ReportEntity): Promise<void> {
    const targets = this.targets(order);
    for (const target of targets) {
      await this.ctx.ds.manager
        .createQueryBuilder()
        .insert()
        .into(DeliveryEntity)
        .values({ orderId: order.id, reportId: report.id, target, status: DeliveryStatus.Pending })
        .orIgnore()
        .execute();
    }
    if (order.status === OrderStatus.ReportReady) {
      order = await this.ctx.transitions.move(order.id, OrderStatus.Delivering, {
        actor: 'worker',
        expectFrom: [OrderStatus.ReportReady],
        detail: { version: report.version, targets },
        deadlineMs: this.ctx.staleMs(),
      });
    }
    if (targets.length === 0 && order.status === OrderStatus.Delivering) {
      // Nothing to send (orders from the upload API are read through the API): done.
      await this.ctx.transitions.move(order.id, OrderStatus.Completed, {
        actor: 'worker',
        expectFrom: [OrderStatus.Delivering],
        detail: { version: report.version },
      });
      return;
    }
    const open = await this.ctx.ds.manager.find(DeliveryEntity, {
      where: { reportId: report.id, status: Not(DeliveryStatus.Acknowledged) },
    });
    for (const d of open) {
      await this.ctx.queue.delivery(
        d.target === DeliveryTarget.Hl7 ? JobName.DeliverHl7 : JobName.DeliverFhir,
        order.id,
        d.id,
      );
    }
  }
}
