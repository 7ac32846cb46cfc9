import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { JobName, OrderStatus, QueueName, queueOf, type OrderJobData } from '@hemato/common';
import type { Queue } from 'bullmq';

export interface StepJobData extends OrderJobData {
  /** Status polls: which poll this is (drives the backoff); absent for a callback-driven check. */
  poll?: number;
}

/** The job that moves an order on from a status, or null where the order waits for something outside. */
export function stepForStatus(status: OrderStatus, workflow: '1' | '2' = '1'): JobName | null {
  switch (status) {
    case OrderStatus.Received:
      return JobName.OrderStart;
    case OrderStatus.Ready:
      return JobName.OrderCreateStudy;
    case OrderStatus.StudyCreated:
      return workflow === '2' ? JobName.OrderCheckStatus : JobName.OrderUploadImages;
    case OrderStatus.Uploading:
      return JobName.OrderUploadImages;
    case OrderStatus.TasksRequested:
    case OrderStatus.Processing:
      return JobName.OrderCheckStatus;
    case OrderStatus.ReportReady:
    case OrderStatus.Delivering:
      return JobName.OrderFetchReport;
    case OrderStatus.AwaitingImages:
    case OrderStatus.OnHold:
    case OrderStatus.Completed:
    case OrderStatus.Rejected:
    case OrderStatus.Cancelled:
    case OrderStatus.Failed:
      return null;
  }
}

/** The id of a step's job: one per order version (and `tag`, for a deliberate re-run). */
export function stepJobId(job: JobName, order: { id: string; version: number }, tag?: string): string {
  return [job, order.id, `v${order.version}`, tag].filter(Boolean).join('~');
}

/**
 * Enqueues lifecycle jobs. Job ids are deterministic per order version, so the same step for the
 * same state is queued once however many times it is asked for; `tag` makes a deliberate re-run
 * (reconciler, admin retry, poll number) distinct.
 */
@Injectable()
export class LifecycleQueue {
  constructor(
    @InjectQueue(QueueName.Orders) private readonly orders: Queue<StepJobData>,
    @InjectQueue(QueueName.Deliveries) private readonly deliveries: Queue<OrderJobData>,
  ) {}

  async step(
    job: JobName,
    order: { id: string; version: number },
    opts: { delayMs?: number; tag?: string; poll?: number } = {},
  ): Promise<void> {
    const jobId = stepJobId(job, order, opts.tag);
    await this.queueFor(job).add(
      job,
      { orderId: order.id, ...(opts.poll !== undefined ? { poll: opts.poll } : {}) },
      { jobId, delay: opts.delayMs },
    );
  }

  private queueFor(job: JobName): Queue<StepJobData> | Queue<OrderJobData> {
    return queueOf(job) === QueueName.Deliveries ? this.deliveries : this.orders;
  }

  /**
   * `step`, but a job of that id that failed for good (failures are kept) is replaced rather than
   * blocking the id: for a step asked again by an outside event on an order row that does not change
   * meanwhile (a late report called back on an order failed on the deadline). A job still waiting,
   * delayed or running keeps the id, so duplicate events still run the step once.
   */
  async stepAgainIfFailed(job: JobName, order: { id: string; version: number }): Promise<void> {
    const previous = await this.queueFor(job).getJob(stepJobId(job, order));
    if (previous && (await previous.isFailed())) await previous.remove();
    await this.step(job, order);
  }

  /**
   * Starts the job that sends an order's result to one target, unless one is already at it.
   *
   * One job per (order, target) at a time, through BullMQ's deduplication key (held from the job's
   * creation until it completes or fails for good, backoff waits included):
   * - a receiver slow or down for longer than STALE_AFTER_MS has the reconciler re-run fetch-report,
   *   which asks for the delivery again: that is a no-op, so no second sender interleaves copies and
   *   no run that gives up marks failed a delivery another run had acknowledged;
   * - a report revised while the previous version still retries: the job running sends the newest
   *   version from its next attempt on (see currentDelivery), so an older result never lands after
   *   its correction. Asked while a job is active, the request is kept (`keepLastIfActive`) and run
   *   when that job ends, so a revision stored during the last send is not left behind.
   * Job ids are BullMQ's own: uniqueness is the deduplication key's business.
   */
  async delivery(job: JobName.DeliverHl7 | JobName.DeliverFhir, orderId: string, deliveryId: string): Promise<void> {
    await this.deliveries.add(
      job,
      { orderId, deliveryId },
      { deduplication: { id: `${job}~${orderId}`, keepLastIfActive: true } },
    );
  }
}
