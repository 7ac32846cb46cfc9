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
import { DataSource, type EntityManager } from 'typeorm';
import { LifecycleQueue } from '../lifecycle/lifecycle-queue';
import { OrderTransitions, appendEvent } from '../lifecycle/order-transitions.service';
import { FILE_STORE } from './file-store.provider';
import { gateImageType, sniffMediaType, type FileStore } from './file-store';

const log = createLogger('image-intake');

/**
 * States in which an order still takes images (unless its set is complete). A held order too: it is held before
 * anything went to Hemato.AI, and the images keep coming in while the ward sorts out why.
 */
export const OPEN_FOR_IMAGES: readonly OrderStatus[] = [
  OrderStatus.Received,
  OrderStatus.AwaitingImages,
  OrderStatus.OnHold,
];

/** Refuses (409) an order that takes no more images: past collecting them, or its set marked complete. */
function assertTakesImages(order: OrderEntity): void {
  if (!OPEN_FOR_IMAGES.includes(order.status))
    throw new DomainError(DomainErrorCode.Conflict, `Order is ${order.status}: it takes no more images`);
  if (order.imagesComplete)
    throw new DomainError(DomainErrorCode.Conflict, 'Order images are complete: it takes no more images');
}

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
   *
   * The order is checked twice: before the bytes are read (a closed order refuses at once), and again
   * with its row locked when the image is recorded. An upload may stream for minutes, and the set may
   * be closed meanwhile (POST complete, the quiet period, the expected count, a cancel): an image
   * recorded after that would never be sent, so it is refused then (409) instead.
   */
  async add(orderId: string, name: string, source: Readable | Buffer, via: 'upload' | 'watch', actor: string) {
    if (!/^[\w.() -]{1,200}$/.test(name))
      throw new DomainError(DomainErrorCode.Invalid, 'Image name may hold letters, digits, space, . _ - ( ) only');
    const before = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!before) throw new DomainError(DomainErrorCode.NotFound, `Order ${orderId} not found`);
    assertTakesImages(before);
    // The type is checked on the first bytes, before the store keeps anything (a refused file leaves no bytes).
    const stored = await this.files.put(
      gateImageType(
        Buffer.isBuffer(source) ? Readable.from([source]) : source,
        'Only JPEG, PNG or a zip of them are accepted',
        'drain',
        {
          maxBytes: this.config.orders.IMAGE_MAX_BYTES,
          maxUnpackedBytes: this.config.orders.IMAGE_ZIP_MAX_UNPACKED_BYTES,
        },
      ),
      this.config.orders.IMAGE_MAX_BYTES,
    );
    const mediaType = sniffMediaType(stored.head);
    if (!mediaType) throw new DomainError(DomainErrorCode.Unsupported, 'Only JPEG, PNG or a zip of them are accepted');

    // Recorded with the order row locked: one image per name, and never on an order whose set is closed.
    const outcome = await this.ds.transaction(async (m) => {
      const order = await m.findOne(OrderEntity, { where: { id: orderId }, lock: { mode: 'pessimistic_write' } });
      if (!order) throw new DomainError(DomainErrorCode.NotFound, `Order ${orderId} not found`);
      assertTakesImages(order);
      const existing = await m.findOne(ImageFileEntity, { where: { orderId, name } });
      if (existing) {
        if (existing.contentHash === stored.sha224)
          return { image: existing, created: false, complete: order.imagesComplete, moved: null };
        throw new DomainError(DomainErrorCode.Conflict, `Order already has an image named ${name}`);
      }
      const image = await m.save(
        m.create(ImageFileEntity, {
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
      await appendEvent(m, { orderId, type: 'image_added', actor, detail: { image: name, bytes: stored.size, via } });
      const count = await m.count(ImageFileEntity, { where: { orderId, status: 'stored' } });
      if (order.expectedImageCount && count >= order.expectedImageCount) {
        const { moved } = await this.completeLocked(
          m,
          order,
          actor,
          `expected count of ${order.expectedImageCount} reached`,
        );
        return { image, created: true, complete: true, moved };
      }
      return { image, created: true, complete: false, moved: null };
    });
    if (outcome.created) log.info({ orderId, image: outcome.image.id, via }, 'image added');
    if (outcome.moved) await this.queue.step(JobName.OrderCreateStudy, outcome.moved);
    return { image: outcome.image, created: outcome.created, complete: outcome.complete };
  }

  /** Marks the images complete; an order waiting for them moves to `ready`. */
  async complete(orderId: string, actor: string, reason: string): Promise<OrderStatus> {
    const { status, moved } = await this.ds.transaction(async (m) => {
      const order = await m.findOne(OrderEntity, { where: { id: orderId }, lock: { mode: 'pessimistic_write' } });
      if (!order) throw new DomainError(DomainErrorCode.NotFound, `Order ${orderId} not found`);
      return this.completeLocked(m, order, actor, reason);
    });
    if (moved) await this.queue.step(JobName.OrderCreateStudy, moved);
    return status;
  }

  /** `complete` inside the caller's transaction, the order row already locked (`order` read under the lock). */
  private async completeLocked(
    m: EntityManager,
    order: OrderEntity,
    actor: string,
    reason: string,
  ): Promise<{ status: OrderStatus; moved: OrderEntity | null }> {
    if (!OPEN_FOR_IMAGES.includes(order.status)) return { status: order.status, moved: null };
    const count = await m.count(ImageFileEntity, { where: { orderId: order.id, status: 'stored' } });
    if (count === 0) throw new DomainError(DomainErrorCode.Conflict, 'The order has no image yet');
    await m.update(OrderEntity, { id: order.id }, { imagesComplete: true });
    if (order.status === OrderStatus.AwaitingImages) {
      const moved = await this.transitions.move(order.id, OrderStatus.Ready, {
        actor,
        expectFrom: [OrderStatus.AwaitingImages],
        detail: { images: count, reason },
        deadlineMs: 5 * 60_000,
        manager: m,
      });
      return { status: OrderStatus.Ready, moved };
    }
    // Still `received`: the start step moves it on now that the images are complete. Held: the start step does,
    // once it is released.
    return { status: order.status, moved: null };
  }
}
