import { Injectable } from '@nestjs/common';
import { JobName, OrderStatus, createLogger } from '@hemato/common';
import { isHematoApiError, type HematoStudyStatus } from '@hemato/hemato-client';
import { ImageFileEntity, type OrderEntity } from '@hemato/persistence';
import { IsNull } from 'typeorm';
import { orderCallbackUrl, usableCallbackUrl } from '../../hemato/signed-urls';
import { answerLost, askAlone, markSent, sentBefore } from './hemato-sent';
import { StepContext } from './step-context';

const log = createLogger('step:request-tasks');

/**
 * `uploading → tasks_requested`: closes the study and asks for the tasks with a signed callback URL.
 * Asking twice runs the tasks twice (report version 2, sent to the hospital as a correction), so the tasks
 * are asked for once: after an attempt whose answer was lost, Hemato.AI's status says whether it got
 * through, and a study already under way (or done) is taken as asked.
 */
@Injectable()
export class RequestTasksStep {
  constructor(private readonly ctx: StepContext) {}

  async execute(orderId: string): Promise<void> {
    const order = await this.ctx.order(orderId);
    if (!order || order.status !== OrderStatus.Uploading) return;
    // One execution at a time checks and asks (a reconciler run and a retry, a re-run of a stalled job): the
    // one holding the claim reads the order again, so it sees what an execution before it recorded.
    const alone = await askAlone(this.ctx.ds.manager, orderId, 'request_tasks', () => this.checkAndAsk(orderId));
    if (!alone) log.info({ orderId }, 'another run of request-tasks is asking Hemato.AI for this order: left to it');
  }

  private async checkAndAsk(orderId: string): Promise<void> {
    const order = await this.ctx.order(orderId);
    if (!order || order.status !== OrderStatus.Uploading || !order.hematoStudyId) return;
    const missing = await this.ctx.ds.manager.count(ImageFileEntity, {
      where: { orderId, status: 'stored', hematoFileId: IsNull() },
    });
    if (missing > 0) {
      // Not every image is confirmed: upload first (a re-run of the upload step sends only those).
      await this.ctx.queue.step(JobName.OrderUploadImages, order, { tag: 'again' });
      return;
    }
    const studyId = order.hematoStudyId;
    const client = this.ctx.hemato.get();
    const callbackUrl = usableCallbackUrl(
      client.endpoint.baseUrl,
      orderCallbackUrl(this.ctx.publicBaseUrl(), this.ctx.config.security.CALLBACK_SIGNING_SECRET, { studyId }),
    );
    if (!callbackUrl) {
      log.warn({ orderId }, 'PUBLIC_BASE_URL is not https: Hemato.AI cannot call back, the order is polled');
    }

    if (sentBefore(order, 'request_tasks', studyId)) {
      const status = await this.ctx.guard.forOrder(order, () => client.getStatus(studyId));
      if (underWay(status)) {
        return this.requested(order, callbackUrl, {
          answer: `the answer to an earlier request was lost; Hemato.AI's status showed the run ${status.reportStatus}: not asked again`,
        });
      }
    }
    await markSent(this.ctx.ds.manager, orderId, 'request_tasks', { studyId });
    try {
      await this.ctx.guard.forOrder(order, () => client.requestTasks(studyId, order.tasks, callbackUrl));
    } catch (err) {
      if (isHematoApiError(err, 'http') && err.status === 409) {
        // Only a run under way makes /tasks answer 409: an earlier request of ours got through.
        return this.requested(order, callbackUrl, {
          answer:
            'the answer to an earlier request was lost; Hemato.AI answered 409 (the tasks are running): not asked again',
        });
      }
      if (!answerLost(err)) throw err;
      const status = await this.ctx.guard.forOrder(order, () => client.getStatus(studyId));
      if (!underWay(status)) throw err; // not (yet) seen there: the next attempt looks again before asking
      return this.requested(order, callbackUrl, {
        answer: `lost (${err.kind}); Hemato.AI's status showed the run ${status.reportStatus}: not asked again`,
      });
    }
    await this.requested(order, callbackUrl);
  }

  private async requested(order: OrderEntity, callbackUrl: string | undefined, extra: { answer?: string } = {}) {
    const moved = await this.ctx.transitions.move(order.id, OrderStatus.TasksRequested, {
      actor: 'worker',
      expectFrom: [OrderStatus.Uploading],
      detail: {
        tasks: order.tasks,
        callback: callbackUrl ? 'signed URL' : 'none (PUBLIC_BASE_URL is not https): polled',
        ...extra,
      },
      deadlineMs: this.ctx.config.orders.POLL_DEADLINE_MS,
    });
    log.info({ orderId: order.id, studyId: order.hematoStudyId, answerLost: !!extra.answer }, 'tasks requested');
    // The callback usually comes first; polling is the safety net.
    await this.ctx.queue.step(JobName.OrderCheckStatus, moved, { delayMs: 1000, poll: 1, tag: 'p1' });
  }
}

/**
 * Hemato.AI has the tasks: a run is going or has ended. `pending` is a study waiting for them (or one
 * queued a moment ago: then asking again gets a 409, which says so).
 */
function underWay(status: HematoStudyStatus): boolean {
  return status.reportStatus !== 'pending';
}
