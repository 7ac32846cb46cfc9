import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG, JobName, QueueName, createLogger, type AppConfig } from '@hemato/common';
import type { Queue } from 'bullmq';

const log = createLogger('maintenance-scheduler');

/**
 * Keeps the repeatable maintenance jobs scheduled: the reconciler, and retention when RETENTION_DAYS is set
 * (its schedule is removed when it is not, so turning retention off stops it). Schedules live in Redis: if
 * Redis is flushed they are gone, so the worker re-asserts them on a timer of its own (upserting a scheduler
 * is idempotent).
 */
@Injectable()
export class MaintenanceScheduler implements OnApplicationBootstrap, OnModuleDestroy {
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
    const o = this.config.orders;
    try {
      await this.queue.upsertJobScheduler(
        'reconcile',
        { every: o.RECONCILE_INTERVAL_MS },
        { name: JobName.Reconcile, data: {}, opts: { attempts: 1, removeOnComplete: 100, removeOnFail: 100 } },
      );
      if (o.RETENTION_DAYS > 0) {
        await this.queue.upsertJobScheduler(
          'retention',
          { every: o.RETENTION_INTERVAL_MS },
          { name: JobName.Retention, data: {}, opts: { attempts: 1, removeOnComplete: 100, removeOnFail: 100 } },
        );
      } else {
        await this.queue.removeJobScheduler('retention');
      }
    } catch (err) {
      log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'could not schedule the maintenance jobs (Redis down?)',
      );
    }
  }
}
