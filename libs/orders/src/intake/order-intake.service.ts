import { randomUUID } from 'node:crypto';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import {
  APP_CONFIG,
  DomainError,
  DomainErrorCode,
  JobName,
  OrderStatus,
  QueueName,
  createLogger,
  type AppConfig,
  type OrderJobData,
} from '@hemato/common';
import { ImageFileEntity, OrderEntity, preparedQuery } from '@hemato/persistence';
import { PatientProxyService } from '@hemato/privacy';
import type { Queue } from 'bullmq';
import type { EntityManager } from 'typeorm';
import { FILE_STORE } from '../images/file-store.provider';
import { sniffMediaType, type FileStore } from '../images/file-store';
import { imageBytesFoundGood, imageEndProblem, markImageBytesGood, zipImagesProblemYielding } from '@hemato/common';
import { stepJobId } from '../lifecycle/lifecycle-queue';
import type { ImageSourceInput, NewOrderInput } from './new-order';

const log = createLogger('order-intake');

/**
 * Stores new orders for any channel. `create` runs inside the channel's own transaction (so the
 * inbound message, its orders and the ACK commit together); `afterCommit` then starts the lifecycle.
 */
@Injectable()
export class OrderIntakeService {
  /** The orders columns createMany returns (from the entity metadata: one text for its prepared statement). */
  private returnedColumns?: string;

  constructor(
    private readonly proxies: PatientProxyService,
    @Inject(FILE_STORE) private readonly files: FileStore,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
    @InjectQueue(QueueName.Orders) private readonly queue: Queue<OrderJobData>,
  ) {}

  /**
   * Checks an order's inline images as `createMany` does (the bytes say what they are: a whole JPEG or PNG, or a
   * zip of them), throwing the same DomainError, before the caller opens its transaction: a zip bomb inflates
   * for seconds before it reaches IMAGE_ZIP_MAX_UNPACKED_BYTES, and a transaction (a pooled connection) should not
   * be held open meanwhile. Images found good here are not checked again by `createMany` (nor bytes another way in
   * found good before, see markImageBytesGood: HL7's checkDeferredZips).
   */
  async checkInlineImages(images: ImageSourceInput[] = []): Promise<void> {
    for (const image of images) if (image.kind === 'inline') await this.checkInline(image);
  }

  /**
   * Refuses inline bytes that are not what Hemato.AI takes. A zip is inflated letting other work run meanwhile
   * (zipImagesProblemYielding): in one go a bomb held the event loop for seconds, and no other request, HTTP or
   * HL7, was answered until it was refused.
   */
  private async checkInline(image: Extract<ImageSourceInput, { kind: 'inline' }>): Promise<void> {
    const maxUnpackedBytes = this.config.orders.IMAGE_ZIP_MAX_UNPACKED_BYTES;
    if (imageBytesFoundGood(image.data, maxUnpackedBytes)) return;
    // The bytes say what they are, not the sender's label: refused here, before anything is kept.
    const type = sniffMediaType(image.data.subarray(0, 16));
    if (!type) {
      throw new DomainError(DomainErrorCode.Unsupported, `Image ${image.name} is not a JPEG, PNG or zip`);
    }
    const contentProblem =
      type === 'application/zip'
        ? await zipImagesProblemYielding(image.data, { maxUnpackedBytes })
        : imageEndProblem(image.data, type);
    if (contentProblem) throw new DomainError(DomainErrorCode.Unsupported, `Image ${image.name}: ${contentProblem}`);
    markImageBytesGood(image.data, maxUnpackedBytes);
  }

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
    const column = <T>(pick: (input: NewOrderInput, k: number) => T): T[] => inputs.map(pick);
    // One array per column and unnest(): the statement's text is the same whatever the count, so
    // PostgreSQL parses a short statement with 18 parameters instead of one with 16 per order.
    const meta = manager.connection.getMetadata(OrderEntity);
    // Prepared once per connection (see preparedQuery), so the columns it returns are named, not `*`.
    const returned = (this.returnedColumns ??= meta.columns.map((c) => `"${c.databaseName}"`).join(', '));
    const rows: Array<Record<string, unknown>> = await preparedQuery(
      manager,
      'orders_create_many',
      `WITH v AS (
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::text[],
                              $8::text[], $9::text[], $10::jsonb[], $11::jsonb[], $12::int[], $13::boolean[],
                              $14::text[], $15::int[], $16::text[])
                    AS v (id, channel, placer, ext, proxy, inbound, tsys, tcode, tdisplay, tasks, details, expected,
                          complete, actor, nimages, client)),
       o AS (
         INSERT INTO orders (id, status, source_channel, source_client, placer_order_number, filler_order_number,
                             external_key, patient_proxy_id, inbound_message_id, test_system, test_code, test_display,
                             tasks, details, expected_image_count, images_complete, state_deadline_at)
         SELECT id, $17, channel, client, placer, 'HB' || to_char(now(), 'YYMMDD') || lpad(nextval('filler_number_seq')::text, 6, '0'),
                ext, proxy, inbound, tsys, tcode, tdisplay,
                ARRAY(SELECT t FROM jsonb_array_elements_text(tasks) WITH ORDINALITY AS x (t, n) ORDER BY n),
                details, expected, complete, $18
           FROM v
         RETURNING ${returned}),
       e AS (
         INSERT INTO order_events (order_id, type, from_status, to_status, actor, detail)
         SELECT o.id, 'status_changed', NULL, $17, v.actor,
                jsonb_build_object('channel', v.channel, 'tasks', v.tasks, 'images', v.nimages, 'fillerOrderNumber', o.filler_order_number)
           FROM o JOIN v USING (id))
       SELECT ${returned} FROM o`,
      [
        ids,
        column((i) => i.sourceChannel),
        column((i) => i.placerOrderNumber),
        column((i) => i.externalKey ?? null),
        column((_, k) => proxies[k]!.id),
        column((i) => i.inboundMessageId ?? null),
        column((i) => i.test.system),
        column((i) => i.test.code),
        column((i) => i.test.display ?? null),
        column((i) => JSON.stringify(i.tasks)),
        column((i) => JSON.stringify(i.details ?? {})),
        column((i) => i.expectedImageCount ?? null),
        // Images carried by the order are all there is: the order need not wait for more.
        column((i) => (i.images ?? []).length > 0),
        column((i) => i.actor),
        column((i) => (i.images ?? []).length),
        column((i) => i.sourceClient ?? null),
        OrderStatus.Received,
        deadline,
      ],
    );
    const byId = new Map<string, OrderEntity>();
    for (const row of rows) {
      // The returned row (defaults included) mapped onto the entity by its column metadata: no read-back.
      const order = manager.create(OrderEntity);
      for (const col of meta.columns)
        (order as unknown as Record<string, unknown>)[col.propertyName] = row[col.databaseName];
      byId.set(order.id, order);
    }
    // RETURNING promises no row order: back in input order by the ids made above.
    const orders = ids.map((id) => {
      const order = byId.get(id);
      if (!order) throw new Error('order insert returned no row for an input');
      return order;
    });
    for (const [k, input] of inputs.entries()) {
      const order = orders[k]!;
      const images = input.images ?? [];
      for (const image of images) {
        if (image.kind === 'inline') {
          // Checked already (not again) if the caller checked it before its transaction: checkInlineImages, HL7's
          // checkDeferredZips (markImageBytesGood).
          await this.checkInline(image);
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
            declaredSize: image.declared?.size !== undefined ? String(image.declared.size) : null,
            declaredSha1: image.declared?.sha1 ?? null,
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
