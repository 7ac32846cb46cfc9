import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { orderReaches, generateSmear, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { sendOrderAwaitingImages } from './support/hl7-order';
import { putBytes } from './support/image-put';

/** Hemato.AI takes a zip only of JPEG and PNG files: the bridge checks every entry before keeping one. */
describe('zip images: what is inside is checked at intake', () => {
  let p: Pipeline;
  let client: MllpClient;
  const auth = { authorization: 'Bearer test-api-key' };
  const png = (seed: number) => generateSmear({ width: 64, height: 64, format: 'png', seed });
  const jpeg = (seed: number) => generateSmear({ width: 64, height: 64, format: 'jpeg', seed });

  beforeAll(async () => {
    p = await startPipeline('imgzip', { IMAGE_QUIET_PERIOD_MS: '0' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  const waitingOrder = (placer: string) => sendOrderAwaitingImages(p, client, placer);

  const upload = (orderId: string, name: string, body: Uint8Array) =>
    putBytes(
      `${p.httpUrl}/api/orders/${orderId}/images/${name}`,
      { ...auth, 'content-type': 'application/zip' },
      Buffer.from(body),
    );

  it('a zip holding anything but JPEG/PNG files is refused (422) with the entry named, and nothing is kept', async () => {
    const order = await waitingOrder('PL-ZIP-1');
    const cases: Array<[Uint8Array, RegExp]> = [
      // A lab report next to the slide: never sent on.
      [zipSync({ 'a.png': png(1), 'report.txt': strToU8('not for Hemato.AI') }), /"report.txt"/],
      // An image name, other bytes.
      [zipSync({ 'b.png': strToU8('<html>not an image</html>') }), /"b.png" is not a JPEG or PNG/],
      // Stored rather than deflated makes no difference.
      [zipSync({ 'c.pdf': [strToU8('%PDF-1.4 ...'), { level: 0 }] }), /"c.pdf"/],
      // Nothing in it.
      [zipSync({ 'empty/': {} }), /no JPEG or PNG/],
      // Cut short.
      [zipSync({ 'd.png': [png(2), { level: 0 }] }).subarray(0, 200), /cut short/],
    ];
    for (const [zip, why] of cases) {
      const res = await upload(order.id, 'slides.zip', zip);
      expect(res.status).toBe(422);
      expect(res.body.message).toMatch(why);
    }
    expect(await p.db.manager.count(ImageFileEntity, { where: { orderId: order.id } })).toBe(0);
    const spool = path.join(p.config.orders.IMAGE_DIR!, 'tmp');
    expect(existsSync(spool) ? readdirSync(spool) : []).toEqual([]);
  });

  it('a zip of JPEG and PNG files (in folders too) is taken and the order completes', async () => {
    const order = await waitingOrder('PL-ZIP-2');
    const zip = zipSync({
      'slide-1.png': png(3),
      'more/': {},
      'more/slide-2.JPG': jpeg(4),
      'more/slide-3.jpeg': jpeg(5),
    });
    const res = await upload(order.id, 'slides.zip', zip);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ mediaType: 'application/zip', created: true });
    const done = await fetch(`${p.httpUrl}/api/orders/${order.id}/images/complete`, { method: 'POST', headers: auth });
    expect(done.status).toBe(200);
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 90_000);
  });

  it('an HL7 order with such a zip inline (OBX ED) is refused with the reason, and no order is made', async () => {
    const zip = Buffer.from(zipSync({ 'a.png': png(6), 'notes.txt': strToU8('not an image') }));
    const ack = await client.send(
      sampleOrm({ controlId: 'C-PL-ZIP-3', placer: 'PL-ZIP-3', images: [{ data: zip, subtype: 'ZIP' }] }),
      'C-PL-ZIP-3',
    );
    expect(ack.code).not.toBe('AA');
    expect(ack.raw).toMatch(/notes.txt/);
    await new Promise((r) => setTimeout(r, 500));
    expect(await p.db.manager.count(OrderEntity, { where: { placerOrderNumber: 'PL-ZIP-3' } })).toBe(0);
  });
});
