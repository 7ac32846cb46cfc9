import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { zipSync } from 'fflate';
import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { orderReaches, generateSmear, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { sendHl7Order } from './support/hl7-order';
import { startImageServer, type ImageServer } from './support/image-server';
import { putBytes } from './support/image-put';

const FHIR_KEY = 'fhir-truncated-key-0123456789';

/**
 * An image cut short (a transfer broken off, an interface engine truncating a long OBX-5, a scanner
 * still writing) starts like a JPEG or PNG, so it passed the type check and was taken, to fail only
 * when Hemato.AI decoded it. Every way in now refuses it with the reason and keeps nothing.
 */
describe('images cut short', () => {
  let p: Pipeline;
  let client: MllpClient;
  let server: ImageServer;
  const auth = { authorization: 'Bearer test-api-key' };
  const jpeg = generateSmear({ width: 128, height: 96, format: 'jpeg', seed: 11 });
  const png = generateSmear({ width: 128, height: 96, format: 'png', seed: 12 });
  const cut = (b: Buffer) => b.subarray(0, Math.floor(b.length * 0.8));

  beforeAll(async () => {
    server = await startImageServer((req, res) => {
      const body = cut(jpeg);
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length });
      res.end(body);
    });
    p = await startPipeline('imgcut', {
      IMAGE_QUIET_PERIOD_MS: '0',
      IMAGE_URL_ALLOWED_HOSTS: '127.0.0.1',
      FHIR_API_KEYS: FHIR_KEY,
    });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    await server?.close();
  });

  const upload = (orderId: string, name: string, body: Uint8Array) =>
    putBytes(`${p.httpUrl}/api/orders/${orderId}/images/${name}`, auth, Buffer.from(body));

  it('an upload of a JPEG or PNG cut short, alone or in a zip, answers 422 and keeps nothing', async () => {
    expect((await client.send(sampleOrm({ controlId: 'C-PL-CUT-1', placer: 'PL-CUT-1' }), 'C-PL-CUT-1')).code).toBe(
      'AA',
    );
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-CUT-1' }, OrderStatus.AwaitingImages, 20_000);
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['a.jpg', cut(jpeg), /JPEG is cut short/],
      ['b.png', cut(png), /PNG is cut short/],
      ['c.zip', zipSync({ 'ok.png': png, 'cut.jpg': cut(jpeg) }), /"cut.jpg".*JPEG is cut short/],
    ];
    for (const [name, body, why] of cases) {
      const res = await upload(order.id, name, body);
      expect({ name, status: res.status, message: res.body.message }).toMatchObject({
        name,
        status: 422,
        message: expect.stringMatching(why),
      });
    }
    expect(await p.db.manager.count(ImageFileEntity, { where: { orderId: order.id } })).toBe(0);
    const spool = path.join(p.config.orders.IMAGE_DIR!, 'tmp');
    expect(existsSync(spool) ? readdirSync(spool) : []).toEqual([]);
    // Whole, the same images are taken.
    expect((await upload(order.id, 'a.jpg', jpeg)).status).toBe(200);
    expect((await upload(order.id, 'b.png', png)).status).toBe(200);
  });

  it('an HL7 order whose OBX ED image is cut short is answered AE with the reason, and no order is made', async () => {
    const ack = await client.send(
      sampleOrm({ controlId: 'C-PL-CUT-2', placer: 'PL-CUT-2', images: [{ data: cut(png), subtype: 'PNG' }] }),
      'C-PL-CUT-2',
    );
    expect(ack.code).toBe('AE');
    expect(ack.raw).toMatch(/PNG is cut short/);
    expect(await p.db.manager.count(OrderEntity, { where: { placerOrderNumber: 'PL-CUT-2' } })).toBe(0);
  });

  it('a FHIR ServiceRequest whose inline image is cut short answers 422 and makes no order', async () => {
    const before = await p.db.manager.count(OrderEntity);
    const res = await fetch(`${p.httpUrl}/fhir/ServiceRequest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${FHIR_KEY}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'ServiceRequest',
        identifier: [{ system: 'urn:oid:1.2.3.4.placer', value: 'SR-CUT-3' }],
        status: 'active',
        intent: 'order',
        code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
        subject: { identifier: { system: 'urn:mrn', value: 'MRN-CUT-3' } },
        contained: [
          {
            resourceType: 'Media',
            id: 'm',
            status: 'completed',
            content: { contentType: 'image/jpeg', data: cut(jpeg).toString('base64'), title: 'smear.jpg' },
          },
        ],
        supportingInfo: [{ reference: '#m' }],
      }),
    });
    expect(res.status).toBe(422);
    expect(JSON.stringify(await res.json())).toMatch(/JPEG is cut short/);
    expect(await p.db.manager.count(OrderEntity)).toBe(before);
  });

  it('an image URL answering a JPEG cut short fails the order at fetch_images with the reason', async () => {
    const order = await sendHl7Order(p, client, 'PL-CUT-4', { imageUrls: [`${server.url}/slides/PL-CUT-4.jpg`] });
    const failed = await orderReaches(p.db, { id: order.id }, OrderStatus.Failed, 30_000);
    expect(failed.failedStep).toBe('fetch_images');
    expect(failed.failureReason).toMatch(/JPEG is cut short/);
    const [image] = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(image).toMatchObject({ status: 'failed', storageKey: null });
  });
});
