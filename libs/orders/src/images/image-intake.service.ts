import { Readable } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import {
  APP_CONFIG,
  DomainError,
  DomainErrorCode,
  JobName,
  OrderStatus,
  createLogger,
  type AppConfig,
} from '@hemato/common';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { DataSource } from 'typeorm';
import { LifecycleQueue } from '../lifecycle/lifecycle-queue';
import { OrderTransitions, appendEvent } from '../lifecycle/order-transitions.service';
import { FILE_STORE } from './file-store.provider';
import { gateImageType, sniffMediaType, type FileStore } from './file-store';

const log = createLogger('image-intake');

/** States in which an order still takes images. */
const OPEN_FOR_IMAGES: readonly OrderStatus[] = [OrderStatus.Received, OrderStatus.AwaitingImages];

/**
 * Images that arrive after the order (upload API, drop folder), and the rule for when an order's
 * images are complete: on request, after a quiet period, or when the expected count is reached.
 */
@Injectable()
export class ImageIntakeService {
  constructor(
    private readonly ds: DataSource,
    private readonly transitions: OrderTransitions,
    private readonly queue: LifecycleQueue,
    @Inject(FILE_STORE) private readonly files: FileStore,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
  ) {}

  /**
   * Streams one image into the store and records it on the order. The same name with the same bytes
   * is accepted again (idempotent); another image under a taken name is a conflict.
   */
  async add(orderId: string, name: string, source: Readable | Buffer, via: 'upload' | 'watch', actor: string) {
    if (!/^[\w.() -]{1,200}$/.test(name))
      throw new DomainError(DomainErrorCode.Invalid, 'Image name may hold letters, digits, space, . _ - ( ) only');
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order) throw new DomainError(DomainErrorCode.NotFound, `Order ${orderId} not found`);
    if (!OPEN_FOR_IMAGES.includes(order.status)) {
      throw new DomainError(DomainErrorCode.Conflict, `Order is ${order.status}: it takes no more images`);
    }
    // The type is checked on the first bytes, before the store keeps anything (a refused file leaves no bytes).
    const stored = await this.files.put(
      gateImageType(
        Buffer.isBuffer(source) ? Readable.from([source]) : source,
        'Only JPEG, PNG or a zip of them are accepted',
        'drain',
      ),
      this.config.orders.IMAGE_MAX_BYTES,
    );
    const mediaType = sniffMediaType(stored.head);
    if (!mediaType) throw new DomainError(DomainErrorCode.Unsupported, 'Only JPEG, PNG or a zip of them are accepted');
    const existing = await this.ds.manager.findOne(ImageFileEntity, { where: { orderId, name } });
    if (existing) {
      if (existing.contentHash === stored.sha224)
        return { image: existing, created: false, complete: order.imagesComplete };
      throw new DomainError(DomainErrorCode.Conflict, `Order already has an image named ${name}`);
    }
    const image = await this.ds.manager.save(
      this.ds.manager.create(ImageFileEntity, {
        orderId,
        name,
        source: via,
        status: 'stored',
        contentHash: stored.sha224,
        sizeBytes: String(stored.size),
        mediaType,
        storageKey: stored.key,
      }),
    );
    await appendEvent(this.ds.manager, {
      orderId,
      type: 'image_added',
      actor,
      detail: { image: name, bytes: stored.size, via },
    });
    log.info({ orderId, image: image.id, via }, 'image added');
    const count = await this.ds.manager.count(ImageFileEntity, { where: { orderId, status: 'stored' } });
    let complete = false;
    if (order.expectedImageCount && count >= order.expectedImageCount) {
      await this.complete(orderId, actor, `expected count of ${order.expectedImageCount} reached`);
      complete = true;
    }
    return { image, created: true, complete };
  }

  /** Marks the images complete; an order waiting for them moves to `ready`. */
  async complete(orderId: string, actor: string, reason: string): Promise<OrderStatus> {
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order) throw new DomainError(DomainErrorCode.NotFound, `Order ${orderId} not found`);
    if (!OPEN_FOR_IMAGES.includes(order.status)) return order.status;
    const count = await this.ds.manager.count(ImageFileEntity, { where: { orderId, status: 'stored' } });
    if (count === 0) throw new DomainError(DomainErrorCode.Conflict, 'The order has no image yet');
    await this.ds.manager.update(OrderEntity, { id: orderId }, { imagesComplete: true });
    if (order.status === OrderStatus.AwaitingImages) {
      const moved = await this.transitions.move(orderId, OrderStatus.Ready, {
        actor,
        expectFrom: [OrderStatus.AwaitingImages],
        detail: { images: count, reason },
        deadlineMs: 5 * 60_000,
      });
      await this.queue.step(JobName.OrderCreateStudy, moved);
      return OrderStatus.Ready;
    }
    // Still `received`: the start step moves it on now that the images are complete.
    return order.status;
  }
}
