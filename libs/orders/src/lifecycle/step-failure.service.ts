import { Injectable } from '@nestjs/common';
import { JobName, OrderStatus, TERMINAL_STATUSES, createLogger } from '@hemato/common';
import { OrderEntity } from '@hemato/persistence';
import { DataSource } from 'typeorm';
import { canTransition } from './order-state-machine';
import { OrderTransitions } from './order-transitions.service';

const log = createLogger('step-failure');

/** Which status an order returns to when an admin retries the step that failed. */
export const RETRY_FROM: Partial<Record<JobName, OrderStatus>> = {
  [JobName.OrderStart]: OrderStatus.Received,
  [JobName.OrderCreateStudy]: OrderStatus.Ready,
  [JobName.OrderUploadImages]: OrderStatus.Uploading,
  [JobName.OrderRequestTasks]: OrderStatus.Uploading,
  [JobName.OrderCheckStatus]: OrderStatus.Processing,
  [JobName.OrderFetchReport]: OrderStatus.Processing,
  [JobName.DeliverHl7]: OrderStatus.Delivering,
  [JobName.DeliverFhir]: OrderStatus.Delivering,
};

/**
 * A step gave up for good (its retries spent, or an error no retry can fix): the order shows it. A try that
 * failed and will be retried is noted on the timeline, so an order waiting out Hemato.AI's trouble says why
 * it does not move rather than showing nothing for minutes.
 */
@Injectable()
export class StepFailure {
  constructor(
    private readonly ds: DataSource,
    private readonly transitions: OrderTransitions,
  ) {}

  async record(orderId: string, step: JobName, reason: string): Promise<void> {
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order || TERMINAL_STATUSES.includes(order.status) || !canTransition(order.status, OrderStatus.Failed)) return;
    await this.transitions.move(orderId, OrderStatus.Failed, {
      actor: 'worker',
      patch: { failureReason: reason, failedStep: step },
      detail: { step, reason },
    });
    log.warn({ orderId, step }, 'order failed');
  }

  /** One failed try of `step` that is retried in `nextTryInMs`: a `step_retry` line on the timeline. */
  async retrying(
    orderId: string,
    step: JobName,
    attempt: { number: number; of: number; nextTryInMs: number },
    reason: string,
  ): Promise<void> {
    const order = await this.ds.manager.findOne(OrderEntity, {
      where: { id: orderId },
      select: { id: true, status: true },
    });
    if (!order || TERMINAL_STATUSES.includes(order.status)) return;
    await this.transitions.note(orderId, 'step_retry', 'worker', {
      step,
      attempt: attempt.number,
      attempts: attempt.of,
      reason,
      nextTryInMs: attempt.nextTryInMs,
    });
  }
}
