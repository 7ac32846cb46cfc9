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
    const q = queueOf(job) === QueueName.Deliveries ? this.deliveries : this.orders;
    const jobId = stepJobId(job, order, opts.tag);
    await q.add(
      job,
      { orderId: order.id, ...(opts.poll !== undefined ? { poll: opts.poll } : {}) },
      { jobId, delay: opts.delayMs },
    );
  }

  /**
   * Starts the job that sends one delivery, unless one is already at it. A delivery whose receiver
   * is slow or down retries for longer than STALE_AFTER_MS; the reconciler then re-runs fetch-report,
   * which asks for the delivery again. The deduplication key (held by BullMQ from the job's creation
   * until it completes or fails for good, backoff waits included) makes that a no-op, so one job at a
   * time sends a given result: no second sender interleaving copies, and no run that gives up marking
   * failed a delivery another run had acknowledged. `tag` keeps job ids unique across deliberate re-runs.
   */
  async delivery(
    job: JobName.DeliverHl7 | JobName.DeliverFhir,
    orderId: string,
    deliveryId: string,
    tag?: string,
  ): Promise<void> {
    const jobId = [job, deliveryId, tag].filter(Boolean).join('~');
    await this.deliveries.add(job, { orderId, deliveryId }, { jobId, deduplication: { id: `${job}~${deliveryId}` } });
  }
}
