import type { JobsOptions } from 'bullmq';

/**
 * Every queue and job name in one place. Names are part of the data in Redis: never rename one
 * without draining the queue first.
 */
export enum QueueName {
  Orders = 'orders',
  Deliveries = 'deliveries',
  Maintenance = 'maintenance',
}

export enum JobName {
  /** Diagnostics: echoes its payload back; proves the worker is consuming. */
  Echo = 'maintenance.echo',
  /** First step of every new order: fetch URL images, then wait for images or move to ready. */
  OrderStart = 'orders.start',
  /** Workflow 1: create the study (tags: proxy ids only). Workflow 2: submit the signed list URL. */
  OrderCreateStudy = 'orders.create-study',
  /** Uploads every image not yet confirmed by Hemato.AI. */
  OrderUploadImages = 'orders.upload-images',
  /** Requests the diagnostic tasks with a signed per-study callback URL. */
  OrderRequestTasks = 'orders.request-tasks',
  /** Re-reads the study status (after a callback, or as a poll with backoff until the deadline). */
  OrderCheckStatus = 'orders.check-status',
  /** Fetches and stores the report (a new version is a revision), then starts the deliveries. */
  OrderFetchReport = 'orders.fetch-report',
  /** Re-drives orders whose state has not moved within its deadline. */
  Reconcile = 'maintenance.reconcile',
  /** Erases patient data older than RETENTION_DAYS (scheduled only when it is set). */
  Retention = 'maintenance.retention',
  /** Sends a report as ORU^R01 over MLLP and records the ACK (data: orderId + deliveryId). */
  DeliverHl7 = 'deliveries.hl7',
  /** Writes a report to the EHR as a FHIR transaction and records the outcome (data: orderId + deliveryId). */
  DeliverFhir = 'deliveries.fhir',
}

/** Which queue each job runs on. Exhaustive by type: a new JobName must be placed here. */
export const JOB_QUEUE: Record<JobName, QueueName> = {
  [JobName.Echo]: QueueName.Maintenance,
  [JobName.OrderStart]: QueueName.Orders,
  [JobName.OrderCreateStudy]: QueueName.Orders,
  [JobName.OrderUploadImages]: QueueName.Orders,
  [JobName.OrderRequestTasks]: QueueName.Orders,
  [JobName.OrderCheckStatus]: QueueName.Orders,
  [JobName.OrderFetchReport]: QueueName.Orders,
  [JobName.Reconcile]: QueueName.Maintenance,
  [JobName.Retention]: QueueName.Maintenance,
  [JobName.DeliverHl7]: QueueName.Deliveries,
  [JobName.DeliverFhir]: QueueName.Deliveries,
};

/** Default options for every job: retried with exponential backoff, failures kept for replay. */
export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: false,
};

/** Payload shape of every lifecycle job: ids only, never patient data. */
export interface OrderJobData {
  orderId: string;
  /** Set by deliveries: which delivery row the job drives. */
  deliveryId?: string;
}

export function queueOf(job: JobName): QueueName {
  return JOB_QUEUE[job];
}
