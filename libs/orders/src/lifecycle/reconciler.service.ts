import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, OrderStatus, createLogger, type AppConfig } from '@hemato/common';
import { DataSource } from 'typeorm';
import { ImageIntakeService } from '../images/image-intake.service';
import { DeliveryCompletion } from './delivery-completion.service';
import { LifecycleQueue, stepForStatus } from './lifecycle-queue';
import { appendEvent } from './order-transitions.service';

const log = createLogger('reconciler');

/** States that should move on by themselves (a job is due); waiting for images is handled apart. */
const MOVING: readonly OrderStatus[] = [
  OrderStatus.Received,
  OrderStatus.Ready,
  OrderStatus.StudyCreated,
  OrderStatus.Uploading,
  OrderStatus.TasksRequested,
  OrderStatus.Processing,
  OrderStatus.ReportReady,
  OrderStatus.Delivering,
];

/**
 * Postgres is the truth, Redis the engine: this finds orders whose row has not changed within
 * STALE_AFTER_MS while in a moving state, and enqueues the job their state calls for. It is what makes
 * a lost Redis (or a killed worker) lose no order. Also closes image collection after the quiet period.
 */
@Injectable()
export class Reconciler {
  constructor(
    private readonly ds: DataSource,
    private readonly queue: LifecycleQueue,
    private readonly completion: DeliveryCompletion,
    private readonly images: ImageIntakeService,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders' | 'hemato'>,
  ) {}

  async run(now = Date.now()): Promise<{ requeued: number; imagesCompleted: number }> {
    const staleBefore = new Date(now - this.config.orders.STALE_AFTER_MS);
    // Claim the rows (touching updated_at) so two workers reconciling at once do not both re-drive them.
    const stale: Array<{ id: string; status: OrderStatus; version: number; workflow: string | null }> =
      await this.ds.query(
        // (A CTE, because TypeORM answers a bare UPDATE ... RETURNING with [rows, count], not rows.)
        `WITH claimed AS (
         UPDATE orders SET updated_at = now()
          WHERE id IN (SELECT id FROM orders WHERE status = ANY($1) AND updated_at < $2
                        ORDER BY updated_at LIMIT 500 FOR UPDATE SKIP LOCKED)
          RETURNING id, status, version, details->>'workflow' AS workflow)
       SELECT * FROM claimed`,
        [MOVING, staleBefore],
      );
    let requeued = 0;
    const tag = `rc${now}`;
    for (const o of stale) {
      if (o.status === OrderStatus.Delivering) {
        const settled = await this.completion.check(o.id);
        if (settled !== OrderStatus.Delivering) continue;
      }
      const job = stepForStatus(o.status, o.workflow === '2' ? '2' : '1');
      if (!job) continue;
      await this.queue.step(job, o, { tag, poll: 1 });
      await appendEvent(this.ds.manager, {
        orderId: o.id,
        type: 'reconciled',
        actor: 'reconciler',
        detail: { status: o.status, job },
      });
      requeued++;
    }

    let imagesCompleted = 0;
    const quiet = this.config.orders.IMAGE_QUIET_PERIOD_MS;
    if (quiet > 0) {
      const waiting: Array<{ id: string }> = await this.ds.query(
        `SELECT o.id FROM orders o
          WHERE o.status = 'awaiting_images'
            AND EXISTS (SELECT 1 FROM image_files i WHERE i.order_id = o.id AND i.status = 'stored')
            AND NOT EXISTS (SELECT 1 FROM image_files i WHERE i.order_id = o.id AND i.created_at > $1)
          LIMIT 500`,
        [new Date(now - quiet)],
      );
      for (const w of waiting) {
        await this.images.complete(w.id, 'reconciler', `no new image for ${Math.round(quiet / 1000)} s`);
        imagesCompleted++;
      }
    }
    if (requeued || imagesCompleted) log.info({ requeued, imagesCompleted }, 'reconciled');
    return { requeued, imagesCompleted };
  }
}
