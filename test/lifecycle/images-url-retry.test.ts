import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, type OrderEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, startPipeline, type Pipeline } from '@hemato/testing';
import { sendHl7Order } from './support/hl7-order';
import { startImageServer, type ImageServer } from './support/image-server';

/**
 * An image server that stumbles before it answers: a transient failure (5xx, 429, a dropped
 * connection) is tried again, a 4xx is not.
 */
describe('an image URL whose server fails for a moment', () => {
  let p: Pipeline;
  let client: MllpClient;
  let server: ImageServer;
  let serverUrl: string;
  /** Requests per path, with the time each arrived. */
  const requests = new Map<string, number[]>();
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 31 });

  beforeAll(async () => {
    server = await startImageServer((req, res) => {
      const url = req.url ?? '';
      const seen = [...(requests.get(url) ?? []), Date.now()];
      requests.set(url, seen);
      const n = seen.length;
      const image = () => {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': smear.length });
        res.end(smear);
      };
      if (url.startsWith('/busy-503/')) {
        if (n <= 2) return void res.writeHead(503, { 'content-type': 'text/plain' }).end('busy, try later');
        return image();
      }
      if (url.startsWith('/reset/')) {
        if (n === 1) return void req.socket.resetAndDestroy();
        return image();
      }
      if (url.startsWith('/rate-429/')) {
        if (n === 1) return void res.writeHead(429, { 'retry-after': '1' }).end();
        return image();
      }
      if (url.startsWith('/gone/')) {
        return void res.writeHead(404, { 'content-type': 'text/plain' }).end('no such slide');
      }
      res.writeHead(500).end();
    });
    serverUrl = server.url;
    p = await startPipeline('imgretry', { IMAGE_URL_ALLOWED_HOSTS: '127.0.0.1', IMAGE_QUIET_PERIOD_MS: '0' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    await server?.close();
  });

  const sendOrder = (placer: string, imageUrl: string): Promise<OrderEntity> =>
    sendHl7Order(p, client, placer, { imageUrls: [imageUrl] });

  const imageOf = async (orderId: string) => (await p.db.manager.find(ImageFileEntity, { where: { orderId } }))[0];

  /** The image row once its fetch is over (stored or failed). */
  const fetchedImage = (orderId: string) =>
    eventually(
      async () => {
        const i = await imageOf(orderId);
        return i && i.status !== 'pending' ? i : null;
      },
      30_000,
      'image fetch over',
    );

  it('a server answering 503 twice, then the image: the image is fetched on the third try and the order completes', async () => {
    const order = await sendOrder('PL-RETRY-503', `${serverUrl}/busy-503/PL-RETRY-503.png`);
    expect(await fetchedImage(order.id)).toMatchObject({ status: 'stored', mediaType: 'image/png', error: null });
    expect(requests.get('/busy-503/PL-RETRY-503.png')).toHaveLength(3);
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 60_000);
    expect(p.receiver.messages.some((m) => m.includes('PL-RETRY-503'))).toBe(true);
  }, 90_000);

  it('a connection reset before any answer is tried again', async () => {
    const order = await sendOrder('PL-RETRY-RST', `${serverUrl}/reset/PL-RETRY-RST.png`);
    const image = await fetchedImage(order.id);
    expect(image).toMatchObject({ status: 'stored', mediaType: 'image/png', error: null });
    expect(requests.get('/reset/PL-RETRY-RST.png')).toHaveLength(2);
  });

  it('a 429 with Retry-After: 1 is tried again after a second', async () => {
    const order = await sendOrder('PL-RETRY-429', `${serverUrl}/rate-429/PL-RETRY-429.png`);
    const image = await fetchedImage(order.id);
    expect(image).toMatchObject({ status: 'stored' });
    const times = requests.get('/rate-429/PL-RETRY-429.png')!;
    expect(times).toHaveLength(2);
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(950);
  });

  it('a 404 fails the order at once with the status in the reason, after one request only', async () => {
    const order = await sendOrder('PL-RETRY-404', `${serverUrl}/gone/PL-RETRY-404.png`);
    const failed = await orderReaches(p.db, { id: order.id }, OrderStatus.Failed, 20_000);
    expect(failed.failedStep).toBe('fetch_images');
    expect(failed.failureReason).toMatch(/Image URL answered HTTP 404 Not Found/);
    expect(await imageOf(order.id)).toMatchObject({ status: 'failed', storageKey: null });
    // Nothing comes after: a 4xx is not tried again.
    await new Promise((r) => setTimeout(r, 1500));
    expect(requests.get('/gone/PL-RETRY-404.png')).toHaveLength(1);
  });
});
