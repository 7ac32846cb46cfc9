import { Injectable } from '@nestjs/common';
import { JobName, OrderStatus, createLogger } from '@hemato/common';
import type { HematoFileType } from '@hemato/hemato-client';
import { ImageFileEntity } from '@hemato/persistence';
import { IsNull } from 'typeorm';
import { appendEvent } from '../order-transitions.service';
import { StepContext } from './step-context';

const log = createLogger('step:upload-images');

/**
 * `study_created → uploading`, then each stored image not yet confirmed by Hemato.AI is streamed
 * from the file store. A confirmed image (its `hemato_file_id` set) is never sent again.
 */
@Injectable()
export class UploadImagesStep {
  constructor(private readonly ctx: StepContext) {}

  async execute(orderId: string): Promise<void> {
    let order = await this.ctx.order(orderId);
    if (!order || !order.hematoStudyId) return;
    if (order.status === OrderStatus.StudyCreated) {
      order = await this.ctx.transitions.move(orderId, OrderStatus.Uploading, {
        actor: 'worker',
        expectFrom: [OrderStatus.StudyCreated],
        deadlineMs: this.ctx.staleMs(),
      });
    }
    if (order.status !== OrderStatus.Uploading) return;
    const studyId = order.hematoStudyId!;
    const client = this.ctx.hemato.get();
    const images = await this.ctx.ds.manager.find(ImageFileEntity, {
      where: { orderId, status: 'stored', hematoFileId: IsNull() },
      order: { createdAt: 'ASC' },
    });
    for (const image of images) {
      const stream = await this.ctx.files.open(image.storageKey!);
      const uploaded = await this.ctx.guard.forOrder(order, () =>
        client.uploadFile(studyId, stream, (image.mediaType ?? 'image/jpeg') as HematoFileType),
      );
      await this.ctx.ds.manager.update(ImageFileEntity, { id: image.id }, { hematoFileId: uploaded.fileId });
      await appendEvent(this.ctx.ds.manager, {
        orderId,
        type: 'image_uploaded',
        actor: 'worker',
        detail: { image: image.name, fileId: uploaded.fileId, bytes: uploaded.bytes },
      });
      log.info({ orderId, image: image.id }, 'image uploaded');
    }
    // Keep the deadline fresh: uploads of big files take time.
    await this.ctx.queue.step(JobName.OrderRequestTasks, order);
  }
}
