import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, OrderEntity, OrderEventEntity } from '@hemato/persistence';
import { orderReaches, generateSmear, startPipeline, type Pipeline } from '@hemato/testing';
import { sendOrderAwaitingImages } from './support/hl7-order';
import { postJson, putBytes, putImage } from './support/image-put';

const smear = (seed: number) => generateSmear({ width: 320, height: 240, format: 'png', seed });

describe('image uploads racing each other and the end of image collection', () => {
  let p: Pipeline;
  let client: MllpClient;
  const auth = { authorization: 'Bearer test-api-key' };

  beforeAll(async () => {
    p = await startPipeline('imgrace', { IMAGE_QUIET_PERIOD_MS: '0' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  const waitingOrder = (placer: string) => sendOrderAwaitingImages(p, client, placer);

  it('an upload still streaming when the images are completed is refused (409), not recorded and never lost silently', async () => {
    const order = await waitingOrder('PL-RACE-1');
    const url = `${p.httpUrl}/api/orders/${order.id}/images`;
    expect((await putBytes(`${url}/first.png`, auth, smear(31))).status).toBe(200);

    // A slow upload has started (headers and first bytes sent) when the set is closed.
    const late = smear(32);
    let closed!: () => void;
    const setClosed = new Promise<void>((r) => (closed = r));
    const slow = putImage(`${url}/late.png`, auth, async (req) => {
      req.write(late.subarray(0, 1000));
      await setClosed;
      req.end(late.subarray(1000));
    });
    await new Promise((r) => setTimeout(r, 500));
    const done = await postJson(`${url}/complete`, auth);
    expect(done.body).toEqual({ orderId: order.id, status: OrderStatus.Ready });
    closed();

    const reply = await slow;
    expect(reply.status).toBe(409);
    expect(reply.body.message).toMatch(/takes no more images/);

    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 90_000);
    const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    // Every image the order holds was sent to Hemato.AI.
    expect(images.map((i) => [i.name, !!i.hematoFileId])).toEqual([['first.png', true]]);
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id, type: 'image_added' } });
    expect(events.map((e) => (e.detail as { image: string }).image)).toEqual(['first.png']);
  });

  it('the same name uploaded concurrently: one image, the others get 200 (same bytes) or 409 (other bytes), no 500', async () => {
    const order = await waitingOrder('PL-RACE-2');
    const url = `${p.httpUrl}/api/orders/${order.id}/images/same.png`;
    const a = smear(41);
    const b = smear(42);
    const replies = await Promise.all([putBytes(url, auth, a), putBytes(url, auth, b), putBytes(url, auth, a)]);
    for (const r of replies) expect([200, 409]).toContain(r.status);
    const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(images).toHaveLength(1);
    // Whichever bytes won, the replies agree with them.
    const created = replies.filter((r) => r.status === 200 && r.body.created);
    expect(created).toHaveLength(1);
    expect(created[0]!.body.sha224).toBe(images[0]!.contentHash);
  });

  it('the last expected images arriving together both succeed and the order moves on once', async () => {
    const order = await waitingOrder('PL-RACE-3');
    await p.db.manager.update(OrderEntity, { id: order.id }, { expectedImageCount: 2 });
    const url = `${p.httpUrl}/api/orders/${order.id}/images`;
    const replies = await Promise.all([
      putBytes(`${url}/a.png`, auth, smear(51)),
      putBytes(`${url}/b.png`, auth, smear(52)),
    ]);
    expect(replies.map((r) => r.status)).toEqual([200, 200]);
    expect(replies.map((r) => r.body.imagesComplete).sort()).toEqual([false, true]);
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 90_000);
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id } });
    expect(events.filter((e) => e.toStatus === OrderStatus.Ready)).toHaveLength(1);
  });

  it('POST complete sent several times at once: every call answers 200, the order moves on once', async () => {
    const order = await waitingOrder('PL-RACE-4');
    const url = `${p.httpUrl}/api/orders/${order.id}/images`;
    expect((await putBytes(`${url}/one.png`, auth, smear(61))).status).toBe(200);
    const replies = await Promise.all([1, 2, 3, 4].map(() => postJson(`${url}/complete`, auth)));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    // (a call served after the order moved on answers where it is now)
    expect(replies.some((r) => r.body.status === OrderStatus.Ready)).toBe(true);
    expect(replies.filter((r) => r.body.status === OrderStatus.AwaitingImages)).toEqual([]);
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 90_000);
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id } });
    expect(events.filter((e) => e.toStatus === OrderStatus.Ready)).toHaveLength(1);
  });
});
