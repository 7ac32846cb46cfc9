import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, startPipeline, type Pipeline } from '@hemato/testing';
import { API_KEY, fhirFetch, serviceRequest } from '../fhir/fhir-helpers';
import { startImageServer, type ImageServer } from './support/image-server';

/**
 * A FHIR image attachment by URL with `size` and `hash` (R4: the base64 SHA-1 of the data): they were not
 * looked at, so other bytes than the EHR meant (a different file at that URL, a damaged one) went on to
 * Hemato.AI. They are now checked against the bytes fetched: a mismatch fails the order at fetch_images
 * with the reason, and none of those bytes is kept.
 */
describe('FHIR image URLs with a declared size and hash', () => {
  let p: Pipeline;
  let server: ImageServer;
  /** What the image server serves at /slides/<name>.png: other bytes each, so a test sees what it stored. */
  const slides: Record<string, Buffer> = {
    match: generateSmear({ width: 96, height: 64, format: 'png', seed: 61 }),
    'wrong-hash': generateSmear({ width: 96, height: 64, format: 'png', seed: 62 }),
    'wrong-size': generateSmear({ width: 96, height: 64, format: 'png', seed: 63 }),
  };
  const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('base64');
  const sha224 = (b: Buffer) => createHash('sha224').update(b).digest('hex');

  beforeAll(async () => {
    server = await startImageServer((req, res) => {
      const bytes = slides[/^\/slides\/(.+)\.png$/.exec(req.url ?? '')?.[1] ?? ''];
      if (!bytes) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'image/png' }).end(bytes);
    });
    p = await startPipeline('imgdeclared', {
      FHIR_API_KEYS: API_KEY,
      IMAGE_URL_ALLOWED_HOSTS: '127.0.0.1',
      IMAGE_QUIET_PERIOD_MS: '0',
    });
  });

  afterAll(async () => {
    await p?.close();
    await server?.close();
  });

  /** Places a FHIR order whose one image is `url` with `declared` size / hash; answers the order id. */
  async function order(name: string, declared: { size?: number; hash?: string }): Promise<string> {
    const r = await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, {
      body: serviceRequest({
        contained: [
          {
            resourceType: 'Media',
            id: 'm1',
            status: 'completed',
            content: { contentType: 'image/png', url: `${server.url}/slides/${name}.png`, title: name, ...declared },
          },
        ],
        supportingInfo: [{ reference: '#m1' }],
      }),
    });
    expect(r.status).toBe(201);
    // Location: …/fhir/ServiceRequest/<order id>/_history/1
    return /ServiceRequest\/([^/]+)\/_history/.exec(r.headers.get('location') ?? '')![1]!;
  }

  const imageOf = (orderId: string) =>
    eventually(
      async () => {
        const i = await p.db.manager.findOne(ImageFileEntity, { where: { orderId } });
        return i && i.status !== 'pending' ? i : null;
      },
      30_000,
      'image fetched or failed',
    );

  const inStore = (b: Buffer) => existsSync(path.join(p.config.orders.IMAGE_DIR!, sha224(b).slice(0, 2), sha224(b)));

  it('fetches the image when its bytes are the declared ones', async () => {
    const bytes = slides.match!;
    const id = await order('match', { size: bytes.length, hash: sha1(bytes) });
    expect(await imageOf(id)).toMatchObject({ status: 'stored', contentHash: sha224(bytes), error: null });
    expect(inStore(bytes)).toBe(true);
  });

  it('fails the order at fetch_images when the hash does not match, keeping none of the bytes', async () => {
    const id = await order('wrong-hash', { hash: sha1(slides.match!) });
    const failed = await orderReaches(p.db, { id }, OrderStatus.Failed, 30_000);
    expect(failed.failedStep).toBe('fetch_images');
    expect(failed.failureReason).toMatch(/SHA-1 does not match its Attachment\.hash/);
    expect(await imageOf(id)).toMatchObject({ status: 'failed', contentHash: null });
    expect(inStore(slides['wrong-hash']!)).toBe(false);
  });

  it('fails the order at fetch_images when the size does not match, keeping none of the bytes', async () => {
    const bytes = slides['wrong-size']!;
    const id = await order('wrong-size', { size: bytes.length - 1 });
    const failed = await orderReaches(p.db, { id }, OrderStatus.Failed, 30_000);
    expect(failed.failureReason).toMatch(/its Attachment\.size declares/);
    expect(inStore(bytes)).toBe(false);
  });
});
