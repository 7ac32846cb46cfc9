import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG, JobName, QueueName, createLogger, type AppConfig } from '@hemato/common';
import type { Queue } from 'bullmq';

const log = createLogger('reconcile-scheduler');

/**
 * Keeps the repeatable reconcile job scheduled. The schedule lives in Redis: if Redis is flushed it is
 * gone, so the worker re-asserts it on a timer of its own (upserting a scheduler is idempotent).
 */
@Injectable()
export class ReconcileScheduler implements OnApplicationBootstrap, OnModuleDestroy {
  private timer?: NodeJS.Timeout;

  constructor(
    @InjectQueue(QueueName.Maintenance) private readonly queue: Queue,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.ensure();
    this.timer = setInterval(() => void this.ensure(), this.config.orders.RECONCILE_INTERVAL_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async ensure(): Promise<void> {
    try {
      await this.queue.upsertJobScheduler(
        'reconcile',
        { every: this.config.orders.RECONCILE_INTERVAL_MS },
        { name: JobName.Reconcile, data: {}, opts: { attempts: 1, removeOnComplete: 100, removeOnFail: 100 } },
      );
    } catch (err) {
      log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'could not schedule the reconciler (Redis down?)',
      );
    }
  }
}
