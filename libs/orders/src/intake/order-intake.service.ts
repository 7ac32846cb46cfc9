import { randomUUID } from 'node:crypto';
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
import { stepJobId } from '../lifecycle/lifecycle-queue';
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
    return (await this.createMany(manager, [input]))[0]!;
  }

  /**
   * `create` for many orders at once (a group commit of HL7 messages): one statement for the patient
   * proxies and one for the orders, their filler numbers and first timeline lines, whatever the count.
   * Intake sits on the ACK's critical path, so round trips count. Results in the same order.
   */
  async createMany(manager: EntityManager, inputs: NewOrderInput[]): Promise<OrderEntity[]> {
    if (inputs.length === 0) return [];
    const proxies = await this.proxies.resolveMany(
      manager,
      inputs.map((i) => i.patient),
    );
    const deadline = new Date(Date.now() + this.config.orders.STALE_AFTER_MS);
    // Ids made here, so the rows coming back are matched to their inputs by id.
    const ids = inputs.map(() => randomUUID());
    const params: unknown[] = [];
    const tuples = inputs.map((input, k) => {
      const b = params.length;
      const images = input.images ?? [];
      params.push(
        ids[k],
        input.sourceChannel,
        input.placerOrderNumber,
        input.externalKey ?? null,
        proxies[k]!.id,
        input.inboundMessageId ?? null,
        input.test.system,
        input.test.code,
        input.test.display ?? null,
        input.tasks,
        JSON.stringify(input.details ?? {}),
        input.expectedImageCount ?? null,
        // Images carried by the order are all there is: the order need not wait for more.
        images.length > 0,
        input.actor,
        images.length,
      );
      const p = (n: number) => `$${b + n}`;
      return `(${p(1)}::uuid, ${p(2)}::text, ${p(3)}::text, ${p(4)}::text, ${p(5)}::uuid, ${p(6)}::uuid, ${p(7)}::text, ${p(8)}::text, ${p(9)}::text, ${p(10)}::text[], ${p(11)}::jsonb, ${p(12)}::int, ${p(13)}::boolean, ${p(14)}::text, ${p(15)}::int)`;
    });
    params.push(OrderStatus.Received, deadline);
    const status = `$${params.length - 1}`;
    const due = `$${params.length}`;
    const rows: Array<Record<string, unknown>> = await manager.query(
      `WITH v (id, channel, placer, ext, proxy, inbound, tsys, tcode, tdisplay, tasks, details, expected, complete, actor, nimages) AS (
         VALUES ${tuples.join(', ')}),
       o AS (
         INSERT INTO orders (id, status, source_channel, placer_order_number, filler_order_number, external_key,
                             patient_proxy_id, inbound_message_id, test_system, test_code, test_display, tasks,
                             details, expected_image_count, images_complete, state_deadline_at)
         SELECT id, ${status}, channel, placer, 'HB' || to_char(now(), 'YYMMDD') || lpad(nextval('filler_number_seq')::text, 6, '0'),
                ext, proxy, inbound, tsys, tcode, tdisplay, tasks, details, expected, complete, ${due}
           FROM v
         RETURNING *),
       e AS (
         INSERT INTO order_events (order_id, type, from_status, to_status, actor, detail)
         SELECT o.id, 'status_changed', NULL, ${status}, v.actor,
                jsonb_build_object('channel', v.channel, 'tasks', v.tasks, 'images', v.nimages, 'fillerOrderNumber', o.filler_order_number)
           FROM o JOIN v USING (id))
       SELECT * FROM o`,
      params,
    );
    const meta = manager.connection.getMetadata(OrderEntity);
    const orders = rows.map((row) => {
      // The returned row (defaults included) mapped onto the entity by its column metadata: no read-back.
      const order = manager.create(OrderEntity);
      for (const col of meta.columns)
        (order as unknown as Record<string, unknown>)[col.propertyName] = row[col.databaseName];
      return order;
    });
    for (const [k, input] of inputs.entries()) {
      const order = orders[k]!;
      const images = input.images ?? [];
      for (const image of images) {
        if (image.kind === 'inline') {
          const stored = await this.files.put(image.data, this.config.orders.IMAGE_MAX_BYTES);
          await manager.insert(ImageFileEntity, {
            orderId: order.id,
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
            orderId: order.id,
            name: image.name,
            source: 'url',
            sourceUrl: image.url,
            status: 'pending',
            mediaType: image.mediaType ?? null,
          });
        }
      }
      log.info({ orderId: order.id, channel: input.sourceChannel }, 'order received');
    }
    return orders;
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
        opts: { jobId: stepJobId(JobName.OrderStart, { id: orderId, version: 1 }) },
      })),
    );
  }
}
