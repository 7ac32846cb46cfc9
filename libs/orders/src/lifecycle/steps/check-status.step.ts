import { Injectable } from '@nestjs/common';
import { DomainError, DomainErrorCode, JobName, OrderFailureCode, OrderStatus, createLogger } from '@hemato/common';
import { OrderEntity } from '@hemato/persistence';
import { isLateReport } from '../order-state-machine';
import { StepContext } from './step-context';

const log = createLogger('step:check-status');

const WAITING: readonly OrderStatus[] = [OrderStatus.StudyCreated, OrderStatus.TasksRequested, OrderStatus.Processing];

/**
 * States with a report already in hand: a callback now can only mean a revision. Delivering counts too:
 * a revision called back while the previous version is still being sent must be fetched then (the delivery
 * sends the newest version from its next attempt on); once the order is completed nothing asks again.
 */
const HAS_REPORT: readonly OrderStatus[] = [OrderStatus.ReportReady, OrderStatus.Delivering, OrderStatus.Completed];

/**
 * Re-reads the study status from Hemato.AI (a callback is only a hint). Ready: fetch the report.
 * Failed: the order fails with Hemato.AI's `user_message`. Still working: record the progress and,
 * for a poll, schedule the next one (1 s doubling to POLL_MAX_INTERVAL_MS) until POLL_DEADLINE_MS.
 * On an order that has its report (a callback after a revision: completed, or still delivering the
 * previous version) it looks for a newer report. On an order failed on the deadline, a report ready
 * after all is fetched and delivered as usual.
 */
@Injectable()
export class CheckStatusStep {
  constructor(private readonly ctx: StepContext) {}

  async execute(orderId: string, poll?: number): Promise<void> {
    const order = await this.ctx.order(orderId);
    if (!order || !order.hematoStudyId) return;
    const revisionCheck = HAS_REPORT.includes(order.status) && poll === undefined;
    const lateCheck = isLateReport(order);
    if (!WAITING.includes(order.status) && !revisionCheck && !lateCheck) return;

    const client = this.ctx.hemato.get();
    const status = await this.ctx.guard.forOrder(order, () => client.getStatus(order.hematoStudyId!));
    if (lateCheck) {
      // The order row is left as it is (an update would bump its version): every check of the failed order,
      // however many callbacks ask, names the same fetch job, so the report is fetched once; a fetch that
      // failed for good is run again by the next callback rather than holding the id forever.
      if (status.reportStatus === 'ready') await this.ctx.queue.stepAgainIfFailed(JobName.OrderFetchReport, order);
      return;
    }
    await this.ctx.ds.manager.update(
      OrderEntity,
      { id: orderId },
      {
        hematoReportStatus: status.reportStatus,
        hematoProgress: status.progress,
        hematoUserMessage: status.userMessage ?? null,
      },
    );

    if (revisionCheck) {
      if (status.reportStatus === 'ready')
        await this.ctx.queue.step(JobName.OrderFetchReport, order, { tag: `rev${Date.now()}` });
      return;
    }

    // The deadline was set when the tasks were requested; moving to processing keeps it.
    const deadline = order.stateDeadlineAt?.getTime() ?? Date.now() + this.ctx.config.orders.POLL_DEADLINE_MS;
    switch (status.reportStatus) {
      case 'ready': {
        // Workflow 2 has no upload or task steps of ours: a study can go from created to ready between two
        // looks (no "processing" seen). The order passes through processing so the report can be fetched.
        const current =
          order.status === OrderStatus.StudyCreated ? await this.toProcessing(order, status, deadline) : order;
        if (current) await this.ctx.queue.step(JobName.OrderFetchReport, current);
        return;
      }
      case 'failed': {
        const reason = status.userMessage ?? status.progressMessage ?? 'Hemato.AI reported the study as failed';
        await this.ctx.transitions.move(orderId, OrderStatus.Failed, {
          actor: 'hemato',
          patch: {
            failureReason: reason,
            failedStep: JobName.OrderCheckStatus,
            hematoUserMessage: status.userMessage ?? null,
          },
          detail: { step: 'hemato_processing', reason },
        });
        log.warn({ orderId, studyId: order.hematoStudyId }, 'Hemato.AI processing failed');
        return;
      }
      case 'pending':
      case 'processing':
      default: {
        let current: OrderEntity | null = order;
        if (order.status !== OrderStatus.Processing && (status.reportStatus === 'processing' || status.progress > 0)) {
          current = await this.toProcessing(order, status, deadline);
          if (!current) return;
        }
        if (poll === undefined) return;
        if (Date.now() > deadline) {
          await this.failOnDeadline(orderId);
          return;
        }
        const delay = Math.min(1000 * 2 ** Math.min(poll, 20), this.ctx.config.orders.POLL_MAX_INTERVAL_MS);
        await this.ctx.queue.step(JobName.OrderCheckStatus, current, {
          delayMs: delay,
          poll: poll + 1,
          tag: `p${poll + 1}`,
        });
      }
    }
  }

  /**
   * Moves a waiting order to processing; null when a concurrent check (callback and poll at once) has
   * moved it out of waiting first, else the order as it now is.
   */
  private async toProcessing(
    order: OrderEntity,
    status: { progress: number; progressMessage?: string | null },
    deadline: number,
  ): Promise<OrderEntity | null> {
    try {
      return await this.ctx.transitions.move(order.id, OrderStatus.Processing, {
        actor: 'hemato',
        expectFrom: [OrderStatus.StudyCreated, OrderStatus.TasksRequested],
        detail: { progress: status.progress, message: status.progressMessage },
        deadlineMs: Math.max(0, deadline - Date.now()),
      });
    } catch (err) {
      if (!(err instanceof DomainError) || err.code !== DomainErrorCode.Conflict) throw err;
      const now = await this.ctx.order(order.id);
      return now && WAITING.includes(now.status) ? now : null;
    }
  }

  private async failOnDeadline(orderId: string) {
    const reason = `No report from Hemato.AI within ${Math.round(this.ctx.config.orders.POLL_DEADLINE_MS / 1000)} s`;
    await this.ctx.transitions.move(orderId, OrderStatus.Failed, {
      actor: 'worker',
      patch: {
        failureReason: reason,
        failedStep: JobName.OrderCheckStatus,
        failureCode: OrderFailureCode.PollDeadline,
      },
      detail: { step: 'wait_for_report', reason },
    });
  }
}
