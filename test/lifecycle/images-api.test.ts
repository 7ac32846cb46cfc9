import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, OrderEntity, OrderEventEntity } from '@hemato/persistence';
import { orderReaches, generateSmear, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { sendHl7Order } from './support/hl7-order';
import { postJson, putFile } from './support/image-put';

const MAX_BYTES = 1024 * 1024;
/** Served as `image/png` by the test's image host: its bytes say otherwise. */
const NOT_AN_IMAGE = Buffer.from('<html>sign in to view this slide</html>\n'.repeat(2000));

describe('images that arrive after the order (upload API) and by URL', () => {
  let p: Pipeline;
  let client: MllpClient;
  let tmp: string;
  let imageServer: http.Server;
  let imageServerUrl: string;
  const fetched: string[] = [];
  const auth = { authorization: 'Bearer test-api-key' };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'hb-images-api-'));
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 11, parasites: true });
    imageServer = http.createServer((req, res) => {
      fetched.push(req.url ?? '');
      if (req.url?.includes('not-an-image')) {
        res.writeHead(200, { 'content-type': 'image/png' });
        res.end(NOT_AN_IMAGE);
        return;
      }
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': smear.length });
      res.end(smear);
    });
    await new Promise<void>((r) => imageServer.listen(0, '127.0.0.1', r));
    imageServerUrl = `http://127.0.0.1:${(imageServer.address() as AddressInfo).port}`;
    p = await startPipeline('imgapi', {
      IMAGE_MAX_BYTES: String(MAX_BYTES),
      IMAGE_URL_ALLOWED_HOSTS: '127.0.0.1',
      IMAGE_QUIET_PERIOD_MS: '0',
    });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    await new Promise((r) => imageServer?.close(r));
    await rm(tmp, { recursive: true, force: true });
  });

  const sendOrder = (placer: string, extra: { imageUrls?: string[] } = {}): Promise<OrderEntity> =>
    sendHl7Order(p, client, placer, extra);

  async function statusOf(id: string): Promise<OrderStatus> {
    return (await p.db.manager.findOneOrFail(OrderEntity, { where: { id } })).status;
  }

  const reaches = (id: string, status: OrderStatus, timeoutMs?: number) =>
    orderReaches(p.db, { id }, status, timeoutMs);

  async function file(name: string, data: Buffer): Promise<string> {
    const f = path.join(tmp, name);
    await writeFile(f, data);
    return f;
  }

  it('an order without images waits; uploaded images and POST complete take it to an ORU', async () => {
    const order = await sendOrder('PL-UP-1');
    await reaches(order.id, OrderStatus.AwaitingImages, 20_000);

    const url = `${p.httpUrl}/api/orders/${order.id}/images`;
    const smear1 = await file('a.png', generateSmear({ width: 400, height: 300, format: 'png', seed: 7 }));
    const smear2 = await file('b.jpg', generateSmear({ width: 400, height: 300, format: 'jpeg', seed: 9 }));

    // Auth: no key, wrong key.
    expect((await putFile(`${url}/a.png`, smear1, {})).status).toBe(401);
    expect((await putFile(`${url}/a.png`, smear1, { authorization: 'Bearer not-a-key' })).status).toBe(401);
    expect((await postJson(`${url}/complete`, {})).status).toBe(401);

    // Complete with no image yet is refused.
    const early = await postJson(`${url}/complete`, auth);
    expect(early.status).toBe(409);
    expect(early.body.message).toMatch(/no image/i);

    // A body that is not an image (several MiB, so it arrives in many chunks): refused on its first bytes,
    // and nothing of it is left in the image store.
    const notImage = Buffer.from('this is a lab note, not an image\n'.repeat(100_000));
    const text = await file('notes.txt', notImage);
    const bad = await putFile(`${url}/notes.png`, text, auth);
    expect([415, 422]).toContain(bad.status);
    expect(bad.body.message).toMatch(/JPEG, PNG/);
    const sha = createHash('sha224').update(notImage).digest('hex');
    const imageDir = p.config.orders.IMAGE_DIR!;
    expect(existsSync(path.join(imageDir, sha.slice(0, 2), sha))).toBe(false);
    expect(existsSync(path.join(imageDir, 'tmp')) ? readdirSync(path.join(imageDir, 'tmp')) : []).toEqual([]);

    // Over IMAGE_MAX_BYTES.
    const pngSignature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const big = await file('big.png', Buffer.concat([pngSignature, Buffer.alloc(MAX_BYTES + 1)]));
    const tooBig = await putFile(`${url}/big.png`, big, auth);
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.message).toMatch(/larger than the limit/);

    // Two good images; the same name and bytes again is accepted once (idempotent).
    const up1 = await putFile(`${url}/a.png`, smear1, auth);
    expect(up1.status).toBe(200);
    expect(up1.body).toMatchObject({ name: 'a.png', mediaType: 'image/png', created: true, imagesComplete: false });
    const again = await putFile(`${url}/a.png`, smear1, auth);
    expect(again.status).toBe(200);
    expect(again.body.created).toBe(false);
    const clash = await putFile(`${url}/a.png`, smear2, auth);
    expect(clash.status).toBe(409);
    const up2 = await putFile(`${url}/b.jpg`, smear2, auth);
    expect(up2.status).toBe(200);
    expect(up2.body.mediaType).toBe('image/jpeg');

    const images = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(images.map((i) => i.name).sort()).toEqual(['a.png', 'b.jpg']);
    // Refused bodies left no image behind, and the order still waits.
    expect(await statusOf(order.id)).toBe(OrderStatus.AwaitingImages);

    const done = await postJson(`${url}/complete`, auth);
    expect(done.status).toBe(200);
    expect(done.body).toEqual({ orderId: order.id, status: OrderStatus.Ready });

    const oru = await p.receiver.waitFor((m) => m.includes('PL-UP-1'), 90_000);
    expect(oru).toMatch(/\|ORU\^R01/);
    await reaches(order.id, OrderStatus.Completed, 30_000);

    // Too late for more images.
    const late = await putFile(`${url}/c.png`, smear1, auth);
    expect(late.status).toBe(409);
    expect(late.body.message).toMatch(/takes no more images/);
  });

  it('an order with an expected image count moves on when the last one arrives', async () => {
    const order = await sendOrder('PL-UP-2');
    await reaches(order.id, OrderStatus.AwaitingImages, 20_000);
    // No channel sets the count yet: set it as an intake would.
    await p.db.manager.update(OrderEntity, { id: order.id }, { expectedImageCount: 2 });
    const url = `${p.httpUrl}/api/orders/${order.id}/images`;
    const one = await putFile(
      `${url}/one.png`,
      await file('one.png', generateSmear({ width: 300, height: 200, format: 'png', seed: 21 })),
      auth,
    );
    expect(one.body.imagesComplete).toBe(false);
    expect(await statusOf(order.id)).toBe(OrderStatus.AwaitingImages);
    const two = await putFile(
      `${url}/two.png`,
      await file('two.png', generateSmear({ width: 300, height: 200, format: 'png', seed: 22 })),
      auth,
    );
    expect(two.status).toBe(200);
    expect(two.body.imagesComplete).toBe(true);
    await p.receiver.waitFor((m) => m.includes('PL-UP-2'), 90_000);
    await reaches(order.id, OrderStatus.Completed, 30_000);
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id }, order: { id: 'ASC' } });
    const ready = events.find((e) => e.type === 'status_changed' && e.toStatus === 'ready');
    expect(JSON.stringify(ready?.detail)).toMatch(/expected count of 2 reached/);
  });

  it('an RP image URL on an allowed host is fetched and the order completes', async () => {
    const order = await sendOrder('PL-URL-1', { imageUrls: [`${imageServerUrl}/slides/PL-URL-1.png?x=1&y=2`] });
    await p.receiver.waitFor((m) => m.includes('PL-URL-1'), 90_000);
    await reaches(order.id, OrderStatus.Completed, 30_000);
    expect(fetched).toContain('/slides/PL-URL-1.png?x=1&y=2');
    const [image] = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(image).toMatchObject({ status: 'stored', mediaType: 'image/png' });
  });

  it('an RP image URL on a host not allowed is refused at intake (AE), no order is made, and nothing is fetched', async () => {
    const before = fetched.length;
    const port = new URL(imageServerUrl).port;
    const ack = await client.send(
      sampleOrm({
        controlId: 'C-PL-URL-2',
        placer: 'PL-URL-2',
        imageUrls: [`http://localhost:${port}/slides/PL-URL-2.png`],
      }),
      'C-PL-URL-2',
    );
    expect(ack.code).toBe('AE');
    expect(ack.raw).toMatch(/OBX\^1\^5/);
    expect(ack.raw).toMatch(/localhost is not in IMAGE_URL_ALLOWED_HOSTS/);
    expect(await p.db.manager.count(OrderEntity, { where: { placerOrderNumber: 'PL-URL-2' } })).toBe(0);
    // No order, so no fetch_images step to ask for it.
    expect(fetched.length).toBe(before);
  });

  it('an RP image URL answering something that is not an image fails the order, and nothing is stored', async () => {
    const order = await sendOrder('PL-URL-3', { imageUrls: [`${imageServerUrl}/slides/not-an-image.png`] });
    const failed = await reaches(order.id, OrderStatus.Failed, 20_000);
    expect(failed.failureReason).toMatch(/did not return a JPEG, PNG or zip/);
    expect(fetched).toContain('/slides/not-an-image.png');
    const sha = createHash('sha224').update(NOT_AN_IMAGE).digest('hex');
    expect(existsSync(path.join(p.config.orders.IMAGE_DIR!, sha.slice(0, 2), sha))).toBe(false);
  });
});
