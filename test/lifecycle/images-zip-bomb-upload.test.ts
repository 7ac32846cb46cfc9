import { MllpClient } from '@hemato/hl7';
import { ImageFileEntity } from '@hemato/persistence';
import { startPipeline, zipBomb, type Pipeline } from '@hemato/testing';
import { sendOrderAwaitingImages } from './support/hl7-order';
import { putBytes } from './support/image-put';

jest.setTimeout(120_000);

/** A bomb reaching it is smaller than a chunk (64 KiB) read from the socket: refused within its first chunk. */
const MAX_UNPACKED = 32 * 1024 * 1024;

/**
 * An uploaded (or fetched, or dropped) zip is followed as its bytes stream in, each chunk of up to 64 KiB inflated
 * to be checked. One chunk of a bomb inflates to ~64 MiB: in one go that held the gateway's event loop for
 * seconds, and no other request was answered until the bomb was refused. The inflate now lets other work run.
 */
describe('a zip bomb uploaded to an order', () => {
  let p: Pipeline;
  let client: MllpClient;
  const auth = { authorization: 'Bearer test-api-key' };

  beforeAll(async () => {
    p = await startPipeline('imgzipbombput', {
      IMAGE_QUIET_PERIOD_MS: '0',
      IMAGE_ZIP_MAX_UNPACKED_BYTES: String(MAX_UNPACKED),
    });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 30_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  it('is refused (422) while other requests are answered meanwhile', async () => {
    const order = await sendOrderAwaitingImages(p, client, 'PL-ZBPUT-1');
    const zip = zipBomb(MAX_UNPACKED + 16 * 1024 * 1024);
    const answered: string[] = [];
    const bombed = putBytes(
      `${p.httpUrl}/api/orders/${order.id}/images/slides.zip`,
      { ...auth, 'content-type': 'application/zip' },
      zip,
    ).then((r) => {
      answered.push('bomb');
      return r;
    });
    // The gateway has the body and is inflating by now; a timer of this process (the gateway's) runs only when
    // the inflate lets it.
    await new Promise((r) => setTimeout(r, 500));
    // Requests one after the other, each sent once the previous one is answered. Twenty: the refusal, once
    // decided, takes a few turns of the event loop to reach the client (the spool file is closed and removed),
    // and a few quick requests fit in those even when the inflate held everything before.
    for (const path of Array.from({ length: 10 }, () => ['/health/live', '/fhir/metadata']).flat()) {
      const r = await fetch(`${p.httpUrl}${path}`);
      expect({ path, status: r.status }).toEqual({ path, status: 200 });
      await r.text();
      answered.push('other');
    }
    const refused = await bombed;
    expect(refused.status).toBe(422);
    expect(refused.body.message).toMatch(/unpacks to more than 33554432 bytes/);
    // The other requests were answered while the bomb was being inflated, not after it.
    expect(answered).toEqual([...Array<string>(20).fill('other'), 'bomb']);
    expect(await p.db.manager.count(ImageFileEntity, { where: { orderId: order.id } })).toBe(0);
  });
});
