import { OrderStatus } from '@hemato/common';
import type { MllpClient } from '@hemato/hl7';
import { OrderEntity } from '@hemato/persistence';
import { eventually, orderReaches, sampleOrm, type Pipeline, type SampleOrderOptions } from '@hemato/testing';

/**
 * Sends a sample ORM^O01 for `placer` (control id `C-<placer>`) over MLLP, expects it accepted (AA),
 * and returns the order row once the gateway has stored it.
 */
export async function sendHl7Order(
  p: Pipeline,
  client: MllpClient,
  placer: string,
  extra: Omit<SampleOrderOptions, 'controlId' | 'placer'> = {},
): Promise<OrderEntity> {
  const ack = await client.send(sampleOrm({ controlId: `C-${placer}`, placer, ...extra }), `C-${placer}`);
  expect(ack.code).toBe('AA');
  return eventually(
    () => p.db.manager.findOne(OrderEntity, { where: { placerOrderNumber: placer } }),
    10_000,
    'order row',
  );
}

/** {@link sendHl7Order} without images: the order once it waits for them (`awaiting_images`). */
export async function sendOrderAwaitingImages(p: Pipeline, client: MllpClient, placer: string): Promise<OrderEntity> {
  const order = await sendHl7Order(p, client, placer);
  return orderReaches(p.db, { id: order.id }, OrderStatus.AwaitingImages, 20_000);
}
