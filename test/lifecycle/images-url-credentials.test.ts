import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { ImageFileEntity, OrderEventEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, startPipeline, type Pipeline } from '@hemato/testing';
import { sendHl7Order } from './support/hl7-order';
import { startImageServer, type ImageServer } from './support/image-server';

/**
 * An image server behind HTTP Basic auth, named by a URL with the credentials in it
 * (`http://user:password@host/...`, as an OBX RP pointer often carries them). They were dropped by the
 * HTTP client, so the server answered 401 and the order failed as if none had been given. They are now
 * sent (Basic), and never shown: not in the failure reason, nor on the timeline.
 */
describe('image URLs with credentials', () => {
  let p: Pipeline;
  let client: MllpClient;
  let server: ImageServer;
  const smear = generateSmear({ width: 96, height: 64, format: 'png', seed: 41 });
  const expected = `Basic ${Buffer.from('lab reader:p@ss:word').toString('base64')}`;
  const seen: Array<string | null> = [];

  beforeAll(async () => {
    server = await startImageServer((req, res) => {
      seen.push(req.headers.authorization ?? null);
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="slides"' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': smear.length }).end(smear);
    });
    p = await startPipeline('imgcreds', { IMAGE_URL_ALLOWED_HOSTS: '127.0.0.1', IMAGE_QUIET_PERIOD_MS: '0' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
    await server?.close();
  });

  const withCredentials = (user: string, password: string, placer: string) => {
    const u = new URL(`${server.url}/slides/${placer}.png`);
    u.username = encodeURIComponent(user);
    u.password = encodeURIComponent(password);
    return u.toString();
  };

  it('the credentials in the URL are sent as Basic auth, and the image is fetched', async () => {
    const order = await sendHl7Order(p, client, 'PL-CRED-1', {
      imageUrls: [withCredentials('lab reader', 'p@ss:word', 'PL-CRED-1')],
    });
    const image = await eventually(
      async () => {
        const i = await p.db.manager.findOne(ImageFileEntity, { where: { orderId: order.id } });
        return i && i.status !== 'pending' ? i : null;
      },
      30_000,
      'image fetched',
    );
    expect(image).toMatchObject({ status: 'stored', mediaType: 'image/png', error: null });
    expect(seen).toContain(expected);
  });

  it('wrong credentials fail the order with the status, never showing them', async () => {
    const order = await sendHl7Order(p, client, 'PL-CRED-2', {
      imageUrls: [withCredentials('lab reader', 'wrong-s3cret', 'PL-CRED-2')],
    });
    const failed = await orderReaches(p.db, { id: order.id }, OrderStatus.Failed, 30_000);
    expect(failed.failureReason).toMatch(/HTTP 401 Unauthorized/);
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id } });
    const image = await p.db.manager.findOne(ImageFileEntity, { where: { orderId: order.id } });
    const shown = JSON.stringify({ failed, events, error: image?.error });
    expect(shown).not.toMatch(/wrong-s3cret/);
  });
});
