import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import {
  APP_CONFIG,
  JobName,
  OrderStatus,
  QueueName,
  createLogger,
  type AppConfig,
  type OrderJobData,
} from '@hemato/common';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { PatientProxyService } from '@hemato/privacy';
import type { Queue } from 'bullmq';
import type { EntityManager } from 'typeorm';
import { FILE_STORE } from '../images/file-store.provider';
import { sniffMediaType, type FileStore } from '../images/file-store';
import type { NewOrderInput } from './new-order';

const log = createLogger('order-intake');

/**
 * Stores new orders for any channel. `create` runs inside the channel's own transaction (so the
 * inbound message, its orders and the ACK commit together); `afterCommit` then starts the lifecycle.
 */
@Injectable()
export class OrderIntakeService {
  constructor(
    private readonly proxies: PatientProxyService,
    @Inject(FILE_STORE) private readonly files: FileStore,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
    @InjectQueue(QueueName.Orders) private readonly queue: Queue<OrderJobData>,
  ) {}

  /**
   * Stores one order (status `received`), its patient proxy and its inline images. Image bytes are
   * written to the content-addressed store first: if the transaction rolls back they are orphans, never
   * missing.
   */
  async create(manager: EntityManager, input: NewOrderInput): Promise<OrderEntity> {
    const proxy = await this.proxies.resolve(manager, input.patient);
    const images = input.images ?? [];
    // One round trip for the order, its filler number and its first timeline line: intake runs once per
    // inbound order group, on the ACK's critical path.
    const rows: Array<{ id: string }> = await manager.query(
      `WITH o AS (
         INSERT INTO orders (status, source_channel, placer_order_number, filler_order_number, external_key,
                             patient_proxy_id, inbound_message_id, test_system, test_code, test_display, tasks,
                             details, expected_image_count, images_complete, state_deadline_at)
         VALUES ($1, $2, $3, 'HB' || to_char(now(), 'YYMMDD') || lpad(nextval('filler_number_seq')::text, 6, '0'),
                 $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         RETURNING id, filler_order_number, created_at),
       e AS (
         INSERT INTO order_events (order_id, type, from_status, to_status, actor, detail)
         SELECT id, 'status_changed', NULL, $1, $15,
                jsonb_build_object('channel', $2::text, 'tasks', $10::text[], 'images', $16::int, 'fillerOrderNumber', filler_order_number)
           FROM o)
       SELECT * FROM o`,
      [
        OrderStatus.Received,
        input.sourceChannel,
        input.placerOrderNumber,
        input.externalKey ?? null,
        proxy.id,
        input.inboundMessageId ?? null,
        input.test.system,
        input.test.code,
        input.test.display ?? null,
        input.tasks,
        JSON.stringify(input.details ?? {}),
        input.expectedImageCount ?? null,
        // Images carried by the order are all there is: the order need not wait for more.
        images.length > 0,
        new Date(Date.now() + this.config.orders.STALE_AFTER_MS),
        input.actor,
        images.length,
      ],
    );
    // Read back through the entity so callers get every column (defaults included) typed.
    const saved = await manager.findOneOrFail(OrderEntity, { where: { id: rows[0]!.id } });
    for (const image of images) {
      if (image.kind === 'inline') {
        const stored = await this.files.put(image.data, this.config.orders.IMAGE_MAX_BYTES);
        await manager.insert(ImageFileEntity, {
          orderId: saved.id,
          name: image.name,
          source: 'inline',
          status: 'stored',
          contentHash: stored.sha224,
          sizeBytes: String(stored.size),
          mediaType: sniffMediaType(image.data.subarray(0, 16)) ?? image.mediaType ?? null,
          storageKey: stored.key,
        });
      } else {
        await manager.insert(ImageFileEntity, {
          orderId: saved.id,
          name: image.name,
          source: 'url',
          sourceUrl: image.url,
          status: 'pending',
          mediaType: image.mediaType ?? null,
        });
      }
    }
    log.info({ orderId: saved.id, channel: input.sourceChannel }, 'order received');
    return saved;
  }

  /**
   * Starts the lifecycle of committed orders: one job each, with an id derived from the order, so
   * enqueuing twice is a no-op. If Redis is down now, the reconciler starts them later.
   */
  async afterCommit(orderIds: string[]): Promise<void> {
    if (orderIds.length === 0) return;
    await this.queue.addBulk(
      orderIds.map((orderId) => ({
        name: JobName.OrderStart,
        data: { orderId },
        opts: { jobId: `${JobName.OrderStart}~${orderId}~v1` },
      })),
    );
  }
}
