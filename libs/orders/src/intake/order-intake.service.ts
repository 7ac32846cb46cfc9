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
import { appendEvent } from '../lifecycle/order-transitions.service';
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

  /** A new filler order number: ours, unique, readable on the phone (`HB` + date + counter). */
  async nextFillerNumber(manager: EntityManager): Promise<string> {
    const rows: Array<{ n: string }> = await manager.query(`SELECT nextval('filler_number_seq')::text AS n`);
    const day = new Date().toISOString().slice(2, 10).replace(/-/g, '');
    return `HB${day}${rows[0]!.n.padStart(6, '0')}`;
  }

  /**
   * Stores one order (status `received`), its patient proxy and its inline images. Image bytes are
   * written to the content-addressed store first: if the transaction rolls back they are orphans, never
   * missing.
   */
  async create(manager: EntityManager, input: NewOrderInput): Promise<OrderEntity> {
    const proxy = await this.proxies.resolve(manager, input.patient);
    const fillerOrderNumber = await this.nextFillerNumber(manager);
    const images = input.images ?? [];
    const order = manager.create(OrderEntity, {
      status: OrderStatus.Received,
      sourceChannel: input.sourceChannel,
      placerOrderNumber: input.placerOrderNumber,
      fillerOrderNumber,
      externalKey: input.externalKey ?? null,
      patientProxyId: proxy.id,
      inboundMessageId: input.inboundMessageId ?? null,
      testSystem: input.test.system,
      testCode: input.test.code,
      testDisplay: input.test.display ?? null,
      tasks: input.tasks,
      details: input.details ?? {},
      expectedImageCount: input.expectedImageCount ?? null,
      // Images carried by the order are all there is: the order need not wait for more.
      imagesComplete: images.length > 0,
      stateDeadlineAt: new Date(Date.now() + this.config.orders.STALE_AFTER_MS),
    });
    const saved = await manager.save(order);
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
    await appendEvent(manager, {
      orderId: saved.id,
      type: 'status_changed',
      fromStatus: null,
      toStatus: OrderStatus.Received,
      actor: input.actor,
      detail: { channel: input.sourceChannel, tasks: input.tasks, images: images.length, fillerOrderNumber },
    });
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
