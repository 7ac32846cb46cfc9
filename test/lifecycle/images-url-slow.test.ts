import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity } from '@hemato/persistence';
import { orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { startImageServer, type ImageServer } from './support/image-server';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('an image URL whose server never finishes', () => {
  let p: Pipeline;
  let client: MllpClient;
  let server: ImageServer;
  let serverUrl: string;

  beforeAll(async () => {
    // Answers at once, then trickles a byte every 200 ms: no idle timeout ever fires.
    server = await startImageServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(PNG_SIGNATURE);
      const t = setInterval(() => res.write(Buffer.alloc(1)), 200);
      res.on('close', () => clearInterval(t));
    });
    serverUrl = server.url;
    p = await startPipeline('imgslow', { IMAGE_URL_ALLOWED_HOSTS: '127.0.0.1', IMAGE_FETCH_TIMEOUT_MS: '3000' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    await server?.close();
  });

  it('fails the order after IMAGE_FETCH_TIMEOUT_MS with the reason, and keeps no partial bytes', async () => {
    const ack = await client.send(
      sampleOrm({ controlId: 'C-PL-SLOW', placer: 'PL-SLOW', imageUrls: [`${serverUrl}/slides/slow.png`] }),
      'C-PL-SLOW',
    );
    expect(ack.code).toBe('AA');
    const failed = await orderReaches(p.db, { placerOrderNumber: 'PL-SLOW' }, OrderStatus.Failed, 20_000);
    expect(failed.failedStep).toBe('fetch_images');
    expect(failed.failureReason).toMatch(/not delivered within 3 s/);
    const [image] = await p.db.manager.find(ImageFileEntity, { where: { orderId: failed.id } });
    expect(image).toMatchObject({ status: 'failed', storageKey: null });
    const spool = path.join(p.config.orders.IMAGE_DIR!, 'tmp');
    expect(existsSync(spool) ? readdirSync(spool) : []).toEqual([]);
    // The connection to the image server was let go.
    expect(server.openConnections()).toBe(0);
  });
});
