import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, JobName, OrderStatus, createLogger, type AppConfig } from '@hemato/common';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { DataSource } from 'typeorm';
import { FILE_STORE } from '../images/file-store.provider';
import type { FileStore } from '../images/file-store';
import { fetchImage } from '../images/image-fetcher';
import { LifecycleQueue } from './lifecycle-queue';
import { OrderTransitions, appendEvent } from './order-transitions.service';

const log = createLogger('start-order');

/**
 * First step of an order: fetch the images it names by URL, then either wait for images
 * (`awaiting_images`) or, when they are complete, move to `ready`. Returns the new state.
 */
@Injectable()
export class StartOrderUseCase {
  constructor(
    private readonly ds: DataSource,
    private readonly transitions: OrderTransitions,
    private readonly queue: LifecycleQueue,
    @Inject(FILE_STORE) private readonly files: FileStore,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
  ) {}

  async execute(orderId: string): Promise<OrderStatus | null> {
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    // Gone, cancelled, or already past this step (a re-delivered job): nothing to do.
    if (!order || order.status !== OrderStatus.Received) return order?.status ?? null;

    const pending = await this.ds.manager.find(ImageFileEntity, { where: { orderId, status: 'pending' } });
    for (const image of pending) {
      try {
        const stored = await fetchImage(
          image.sourceUrl ?? '',
          this.files,
          {
            allowedHosts: this.config.orders.IMAGE_URL_ALLOWED_HOSTS,
            maxBytes: this.config.orders.IMAGE_MAX_BYTES,
            zipMaxUnpackedBytes: this.config.orders.IMAGE_ZIP_MAX_UNPACKED_BYTES,
            timeoutMs: this.config.orders.IMAGE_FETCH_TIMEOUT_MS,
            retries: this.config.orders.IMAGE_FETCH_RETRIES,
            maxRetryAfterMs: this.config.orders.IMAGE_FETCH_RETRY_AFTER_MAX_MS,
          },
          {
            size: image.declaredSize !== null ? Number(image.declaredSize) : undefined,
            sha1: image.declaredSha1 ?? undefined,
          },
        );
        await this.ds.manager.update(
          ImageFileEntity,
          { id: image.id },
          {
            status: 'stored',
            contentHash: stored.sha224,
            sizeBytes: String(stored.size),
            storageKey: stored.key,
            mediaType: stored.mediaType,
            error: null,
          },
        );
        await appendEvent(this.ds.manager, {
          orderId,
          type: 'image_fetched',
          actor: 'worker',
          detail: { image: image.name, bytes: stored.size },
        });
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        await this.ds.manager.update(ImageFileEntity, { id: image.id }, { status: 'failed', error: reason });
        log.warn({ orderId, image: image.id, reason }, 'image fetch failed');
        await this.transitions.move(orderId, OrderStatus.Failed, {
          actor: 'worker',
          patch: { failureReason: `Image ${image.name}: ${reason}`, failedStep: 'fetch_images' },
          detail: { step: 'fetch_images', image: image.name, reason },
        });
        return OrderStatus.Failed;
      }
    }

    if (order.imagesComplete) {
      const moved = await this.transitions.move(orderId, OrderStatus.Ready, {
        actor: 'worker',
        expectFrom: [OrderStatus.Received],
        deadlineMs: this.config.orders.STALE_AFTER_MS,
      });
      await this.queue.step(JobName.OrderCreateStudy, moved);
      return OrderStatus.Ready;
    }
    await this.transitions.move(orderId, OrderStatus.AwaitingImages, {
      actor: 'worker',
      expectFrom: [OrderStatus.Received],
      detail: { expected: order.expectedImageCount },
    });
    return OrderStatus.AwaitingImages;
  }
}
