import { Injectable } from '@nestjs/common';
import { JobName, OrderStatus, createLogger } from '@hemato/common';
import { ImageFileEntity } from '@hemato/persistence';
import { IsNull } from 'typeorm';
import { orderCallbackUrl, usableCallbackUrl } from '../../hemato/signed-urls';
import { StepContext } from './step-context';

const log = createLogger('step:request-tasks');

/** `uploading → tasks_requested`: closes the study and asks for the tasks with a signed callback URL. */
@Injectable()
export class RequestTasksStep {
  constructor(private readonly ctx: StepContext) {}

  async execute(orderId: string): Promise<void> {
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
    const client = this.ctx.hemato.get();
    const callbackUrl = usableCallbackUrl(
      client.endpoint.baseUrl,
      orderCallbackUrl(this.ctx.publicBaseUrl(), this.ctx.config.security.CALLBACK_SIGNING_SECRET, {
        studyId: order.hematoStudyId,
      }),
    );
    if (!callbackUrl) {
      log.warn({ orderId }, 'PUBLIC_BASE_URL is not https: Hemato.AI cannot call back, the order is polled');
    }
    await this.ctx.guard.forOrder(order, () => client.requestTasks(order.hematoStudyId!, order.tasks, callbackUrl));
    const moved = await this.ctx.transitions.move(orderId, OrderStatus.TasksRequested, {
      actor: 'worker',
      expectFrom: [OrderStatus.Uploading],
      detail: {
        tasks: order.tasks,
        callback: callbackUrl ? 'signed URL' : 'none (PUBLIC_BASE_URL is not https): polled',
      },
      deadlineMs: this.ctx.config.orders.POLL_DEADLINE_MS,
    });
    log.info({ orderId, studyId: order.hematoStudyId }, 'tasks requested');
    // The callback usually comes first; polling is the safety net.
    await this.ctx.queue.step(JobName.OrderCheckStatus, moved, { delayMs: 1000, poll: 1, tag: 'p1' });
  }
}
