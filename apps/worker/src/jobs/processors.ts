import { Processor, WorkerHost } from '@nestjs/bullmq';
import { QueueName, createLogger } from '@hemato/common';
import type { Job } from 'bullmq';
import { JobRegistry } from './job-registry';

const log = createLogger('processor');

/** The same dispatch for every queue; each queue gets its own BullMQ worker and concurrency. */
abstract class DispatchingProcessor extends WorkerHost {
  constructor(private readonly registry: JobRegistry) {
    super();
  }

  async process(job: Job): Promise<unknown> {
    const started = Date.now();
    try {
      const result = await this.registry.dispatch(job);
      log.debug({ jobId: job.id, job: job.name, ms: Date.now() - started }, 'job done');
      return result;
    } catch (err) {
      log.warn(
        {
          jobId: job.id,
          job: job.name,
          attempt: job.attemptsMade + 1,
          err: err instanceof Error ? err.message : String(err),
        },
        'job failed',
      );
      throw err;
    }
  }
}

@Processor(QueueName.Orders, { concurrency: 16 })
export class OrdersProcessor extends DispatchingProcessor {
  constructor(registry: JobRegistry) {
    super(registry);
  }
}

@Processor(QueueName.Deliveries, { concurrency: 8 })
export class DeliveriesProcessor extends DispatchingProcessor {
  constructor(registry: JobRegistry) {
    super(registry);
  }
}

@Processor(QueueName.Maintenance, { concurrency: 2 })
export class MaintenanceProcessor extends DispatchingProcessor {
  constructor(registry: JobRegistry) {
    super(registry);
  }
}
