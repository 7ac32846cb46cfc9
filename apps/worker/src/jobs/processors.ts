import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { JobName, QueueName, createLogger, type OrderJobData } from '@hemato/common';
import { DeliveryCompletion, StepFailure } from '@hemato/orders';
import { Backoffs, UnrecoverableError, type Job } from 'bullmq';
import { JobRegistry } from './job-registry';

const log = createLogger('processor');

/** True when BullMQ will not try this job again. */
function isFinal(job: Job, err: unknown): boolean {
  return err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/** The longest wait a server's Retry-After is honoured for; one asking for longer is tried again after this. */
export const MAX_RETRY_AFTER_MS = 60 * 60_000;

/**
 * A failure that says how long to wait before the next try (`retryAfterMs`: a server's Retry-After on a 429
 * or 503) is retried no sooner than that, nor sooner than the job's own backoff. BullMQ computes the delay
 * from the job's backoff when it records this failure, so this run's backoff becomes that fixed delay; the
 * options stored with the job are unchanged, and the try counts against its attempts like any other.
 * Returns the wait before the next try, whichever it is.
 */
export async function honourRetryAfter(job: Job, err: unknown): Promise<number> {
  const usual = await backoffOf(job, err);
  const wait = (err as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  if (typeof wait !== 'number' || !Number.isFinite(wait) || wait <= 0) return usual;
  const delay = Math.max(Math.min(Math.ceil(wait), MAX_RETRY_AFTER_MS), usual);
  job.opts.backoff = { type: 'fixed', delay };
  return delay;
}

/** How long BullMQ waits before the next try of a job whose current try failed with `err`. */
async function backoffOf(job: Job, err: unknown): Promise<number> {
  const backoff = job.opts.backoff === undefined ? undefined : Backoffs.normalize(job.opts.backoff);
  if (!backoff) return 0;
  try {
    return (await Backoffs.calculate(backoff, job.attemptsMade + 1, err as Error, job)) ?? 0;
  } catch {
    return 0; // a custom strategy this worker does not know
  }
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The same dispatch for every queue; each queue gets its own BullMQ worker and concurrency. */
abstract class DispatchingProcessor extends WorkerHost {
  constructor(private readonly registry: JobRegistry) {
    super();
  }

  /**
   * Connection and bookkeeping errors of the BullMQ worker (Redis gone, keys flushed). Without a
   * listener Node would treat them as unhandled; the jobs' state is in PostgreSQL and the reconciler
   * re-drives it, so they are logged and survived.
   */
  @OnWorkerEvent('error')
  onWorkerError(err: Error): void {
    log.warn({ err: err.message }, 'queue worker error');
  }

  /** Runs after every attempt; `err` set when it failed, `final` when no retry follows. */
  protected async after(_job: Job, _err?: unknown, _final?: boolean): Promise<void> {}

  async process(job: Job): Promise<unknown> {
    const started = Date.now();
    let result: unknown;
    try {
      result = await this.registry.dispatch(job);
      log.debug({ jobId: job.id, job: job.name, ms: Date.now() - started }, 'job done');
    } catch (err) {
      const final = isFinal(job, err);
      log.warn(
        { jobId: job.id, job: job.name, attempt: job.attemptsMade + 1, final, err: reasonOf(err) },
        'job failed',
      );
      await this.after(job, err, final).catch((e: unknown) =>
        log.error({ jobId: job.id, err: reasonOf(e) }, 'after-failure hook failed'),
      );
      throw err;
    }
    await this.after(job);
    return result;
  }
}

@Processor(QueueName.Orders, { concurrency: 16 })
export class OrdersProcessor extends DispatchingProcessor {
  constructor(
    registry: JobRegistry,
    private readonly failure: StepFailure,
  ) {
    super(registry);
  }

  /**
   * A step that failed for good fails its order; one to be retried is noted on its timeline. It waits at least
   * as long as Hemato.AI asked (its Retry-After on a 429 or 503): the job's own backoff (2 s doubling) would
   * ask a rate-limited service again at once and use up the attempts, failing the order, within the wait it
   * was asked to keep.
   */
  protected override async after(job: Job<OrderJobData>, err?: unknown, final?: boolean) {
    if (err && !final) {
      const attempt = {
        number: job.attemptsMade + 1,
        of: job.opts.attempts ?? 1,
        nextTryInMs: await honourRetryAfter(job, err),
      };
      return this.failure.retrying(job.data.orderId, job.name as JobName, attempt, reasonOf(err));
    }
    if (err && final) await this.failure.record(job.data.orderId, job.name as JobName, reasonOf(err));
  }
}

@Processor(QueueName.Deliveries, { concurrency: 8 })
export class DeliveriesProcessor extends DispatchingProcessor {
  constructor(
    registry: JobRegistry,
    private readonly completion: DeliveryCompletion,
  ) {
    super(registry);
  }

  /**
   * A settled delivery may complete (or fail) its order. One to be retried waits at least as long as the
   * receiver asked (an EHR's Retry-After).
   */
  protected override async after(job: Job<OrderJobData>, err?: unknown, final?: boolean) {
    if (err && !final) {
      await honourRetryAfter(job, err);
      return;
    }
    if (err && job.data.deliveryId) await this.completion.markExhausted(job.data.deliveryId, reasonOf(err));
    await this.completion.check(job.data.orderId);
  }
}

@Processor(QueueName.Maintenance, { concurrency: 2 })
export class MaintenanceProcessor extends DispatchingProcessor {
  constructor(registry: JobRegistry) {
    super(registry);
  }
}
