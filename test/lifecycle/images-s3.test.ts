import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import type { OrderEntity } from '@hemato/persistence';
import { ImageFileEntity } from '@hemato/persistence';
import {
  generateSmear,
  orderReaches,
  startPipeline,
  startS3Server,
  type Pipeline,
  type TestS3Server,
} from '@hemato/testing';
import { apiSignIn, createUser } from '../dashboard/dashboard-harness';
import { sendHl7Order } from './support/hl7-order';

const sha224 = (b: Buffer) => createHash('sha224').update(b).digest('hex');

describe('orders whose images live in an S3 bucket (IMAGE_STORE=s3)', () => {
  let s3: TestS3Server;
  let p: Pipeline;
  let client: MllpClient;
  let dataDir: string;
  const auth = { authorization: 'Bearer test-api-key' };

  // Made before anything else: generating it blocks the event loop for seconds on a busy machine, and a
  // keep-alive socket the gateway (in this process) closes meanwhile would reset the next request on it.
  let uploadSmear: Buffer;

  beforeAll(async () => {
    uploadSmear = generateSmear({ width: 640, height: 480, format: 'png', seed: 7, parasites: true });
    s3 = await startS3Server('smears');
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'hb-s3-e2e-'));
    p = await startPipeline('imgs3', { ...s3.env, S3_PREFIX: 'bridge/images', DATA_DIR: dataDir });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    await s3?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const sendOrder = (placer: string, images: Buffer[] = []): Promise<OrderEntity> =>
    sendHl7Order(p, client, placer, { images: images.map((data) => ({ data, subtype: 'PNG' as const })) });

  const reaches = (id: string, status: OrderStatus, timeoutMs?: number) =>
    orderReaches(p.db, { id }, status, timeoutMs);

  it('reports the bucket in /health/ready', async () => {
    const res = await fetch(`${p.httpUrl}/health/ready`);
    expect(res.status).toBe(200);
    expect((await res.json()).checks.image_store).toMatchObject({ ok: true });
  });

  it('an uploaded image goes to the bucket, Hemato.AI gets its bytes from there, and the order completes', async () => {
    const order = await sendOrder('PL-S3-1');
    await reaches(order.id, OrderStatus.AwaitingImages, 20_000);

    const smear = uploadSmear;
    const url = `${p.httpUrl}/api/orders/${order.id}/images`;
    const put = await fetch(`${url}/smear.png`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(smear),
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ name: 'smear.png', mediaType: 'image/png', created: true });

    // The object is in the bucket under the prefix, as the S3 server lists it, with the uploaded bytes.
    const key = `bridge/images/${sha224(smear).slice(0, 2)}/${sha224(smear)}`;
    expect(await s3.list('bridge/')).toEqual([{ key, size: smear.length }]);
    expect((await s3.read(key)).equals(smear)).toBe(true);
    // Nothing went to a local image folder, and the spool folder is empty again.
    expect(await readdir(path.join(dataDir, 'tmp'))).toEqual([]);
    await expect(readdir(p.env.IMAGE_DIR!)).rejects.toThrow(/ENOENT/);

    const complete = await fetch(`${url}/complete`, { method: 'POST', headers: auth });
    expect(complete.status).toBe(200);

    // The sandbox read the smear it was sent: the parasite it carries is in the result.
    const oru = await p.receiver.waitFor((m) => m.includes('PL-S3-1'), 90_000);
    expect(oru).toMatch(/\|ORU\^R01/);
    expect(oru).toMatch(/ring trophozoite/i);
    await reaches(order.id, OrderStatus.Completed, 30_000);
    const [image] = await p.db.manager.find(ImageFileEntity, { where: { orderId: order.id } });
    expect(image).toMatchObject({ storageKey: key.replace('bridge/images/', ''), contentHash: sha224(smear) });
    expect(image!.hematoFileId).toBe(`sha224-i-${sha224(smear)}`);
  });

  it('an image inline in the HL7 order lands in the bucket too, once for the same bytes in two orders', async () => {
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 12 });
    const key = `bridge/images/${sha224(smear).slice(0, 2)}/${sha224(smear)}`;
    const a = await sendOrder('PL-S3-2', [smear]);
    const b = await sendOrder('PL-S3-3', [smear]);
    await p.receiver.waitFor((m) => m.includes('PL-S3-2'), 90_000);
    await p.receiver.waitFor((m) => m.includes('PL-S3-3'), 90_000);
    await reaches(a.id, OrderStatus.Completed, 30_000);
    await reaches(b.id, OrderStatus.Completed, 30_000);
    expect((await s3.list('bridge/')).filter((o) => o.key === key)).toEqual([{ key, size: smear.length }]);
  });

  it('a bucket that stops answering fails /health/ready, naming the image store', async () => {
    await s3.close();
    const res = await fetch(`${p.httpUrl}/health/ready`);
    expect(res.status).toBe(503);
    const report = await res.json();
    expect(report.failing).toEqual(['image_store']);
    // The open endpoint names the part, not its error: that would tell anyone the bucket and the address.
    expect(JSON.stringify(report)).not.toMatch(/smears|127\.0\.0\.1|HeadBucket/);
    // A signed-in admin sees why, on the dashboard's Health page.
    await createUser(p.db, 'ops@lab.example', 'viewer', 'viewer-password-123');
    const { cookie } = await apiSignIn(p.httpUrl, 'ops@lab.example', 'viewer-password-123');
    const health = await fetch(`${p.httpUrl}/api/admin/health`, { headers: { cookie: cookie! } });
    expect(health.status).toBe(200);
    expect((await health.json()).readiness.checks.image_store.error).toMatch(
      /HeadBucket on bucket "smears" at http:\/\/127\.0\.0\.1:\d+ failed/,
    );
  });
});
