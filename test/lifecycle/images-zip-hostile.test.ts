import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { zipSync } from 'fflate';
import { MllpClient } from '@hemato/hl7';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { generateSmear, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { sendOrderAwaitingImages } from './support/hl7-order';
import { putBytes } from './support/image-put';

const FHIR_KEY = 'fhir-hostile-zip-key-0123456789';
const MAX_UNPACKED = 16 * 1024 * 1024;

/**
 * Zips a hostile or broken sender may send: each is refused where it comes in, with the reason, and
 * nothing of it is kept (what would have failed later, at Hemato.AI or in our own memory, fails now).
 */
describe('zip images from a hostile or broken sender', () => {
  let p: Pipeline;
  let client: MllpClient;
  const auth = { authorization: 'Bearer test-api-key' };
  const png = (seed: number) => generateSmear({ width: 64, height: 64, format: 'png', seed });

  /** A PNG signature followed by `bytes` zeros, deflated: a few kB that unpack to `bytes`. */
  const bomb = (bytes: number) => {
    const big = new Uint8Array(bytes);
    big.set(png(1).subarray(0, 16));
    return Buffer.from(zipSync({ 'slide.png': big }, { level: 9 }));
  };

  beforeAll(async () => {
    p = await startPipeline('imgziphost', {
      IMAGE_QUIET_PERIOD_MS: '0',
      IMAGE_ZIP_MAX_UNPACKED_BYTES: String(MAX_UNPACKED),
      FHIR_API_KEYS: FHIR_KEY,
    });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 30_000 });
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

  async function postFhir(zip: Buffer) {
    const value = `SR-${Math.random().toString(36).slice(2, 10)}`;
    const res = await fetch(`${p.httpUrl}/fhir/ServiceRequest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${FHIR_KEY}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify({
        resourceType: 'ServiceRequest',
        identifier: [{ system: 'urn:oid:1.2.3.4.placer', value }],
        status: 'active',
        intent: 'order',
        code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
        subject: { identifier: { system: 'urn:mrn', value: `MRN-${value}` } },
        contained: [
          {
            resourceType: 'Media',
            id: 'm',
            status: 'completed',
            content: { contentType: 'application/zip', data: zip.toString('base64'), title: 'slides.zip' },
          },
        ],
        supportingInfo: [{ reference: '#m' }],
      }),
    });
    return { status: res.status, body: (await res.json()) as any };
  }

  function spoolIsEmpty() {
    const spool = path.join(p.config.orders.IMAGE_DIR!, 'tmp');
    expect(existsSync(spool) ? readdirSync(spool) : []).toEqual([]);
  }

  it('a zip bomb (a few kB unpacking past IMAGE_ZIP_MAX_UNPACKED_BYTES) is refused by upload, HL7 and FHIR', async () => {
    const zip = bomb(4 * MAX_UNPACKED);
    expect(zip.length).toBeLessThan(1024 * 1024);

    const order = await waitingOrder('PL-BOMB-1');
    const res = await upload(order.id, 'slides.zip', zip);
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(/unpacks to more than 16777216 bytes/);
    expect(await p.db.manager.count(ImageFileEntity, { where: { orderId: order.id } })).toBe(0);
    spoolIsEmpty();

    const ack = await client.send(
      sampleOrm({ controlId: 'C-PL-BOMB-2', placer: 'PL-BOMB-2', images: [{ data: zip, subtype: 'ZIP' }] }),
      'C-PL-BOMB-2',
    );
    expect(ack.code).toBe('AE');
    expect(ack.raw).toMatch(/unpacks to more than 16777216 bytes/);
    expect(await p.db.manager.count(OrderEntity, { where: { placerOrderNumber: 'PL-BOMB-2' } })).toBe(0);

    const before = await p.db.manager.count(OrderEntity);
    const fhir = await postFhir(zip);
    expect(fhir.status).toBe(422);
    expect(JSON.stringify(fhir.body)).toMatch(/unpacks to more than 16777216 bytes/);
    expect(await p.db.manager.count(OrderEntity)).toBe(before);
  });

  it('a zip just under the limit is still taken', async () => {
    const order = await waitingOrder('PL-BOMB-3');
    const ok = Buffer.from(zipSync({ 'a.png': png(2), 'b.png': png(3) }));
    const res = await upload(order.id, 'slides.zip', ok);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ mediaType: 'application/zip', created: true });
  });

  /** Where a zip's central directory starts (its first record's signature). */
  const directoryAt = (zip: Uint8Array) => Buffer.from(zip).indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));

  it('a zip whose central directory is missing, cut or contradicts its entries is refused, as Hemato.AI would', async () => {
    const order = await waitingOrder('PL-CD-1');
    const good = zipSync({ 'a.png': [png(4), { level: 0 }], 'b.png': [png(5), { level: 0 }] });
    const cd = directoryAt(good);
    // The central directory names b.png "b.txt": the entries are read by it, not by the local headers.
    const renamed = Buffer.from(good);
    renamed.write('b.txt', renamed.indexOf('b.png', cd));
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['cut before its directory', good.subarray(0, cd), /end record/],
      ['cut inside its directory', good.subarray(0, cd + 30), /end record/],
      ['cut inside its end record', good.subarray(0, good.length - 6), /end record/],
      ['directory naming other entries', renamed, /directory/],
    ];
    for (const [what, zip, why] of cases) {
      const res = await upload(order.id, 'slides.zip', zip);
      expect({ what, status: res.status }).toEqual({ what, status: 422 });
      expect(res.body.message).toMatch(why);
    }
    expect(await p.db.manager.count(ImageFileEntity, { where: { orderId: order.id } })).toBe(0);
    spoolIsEmpty();

    const ack = await client.send(
      sampleOrm({
        controlId: 'C-PL-CD-2',
        placer: 'PL-CD-2',
        images: [{ data: Buffer.from(good.subarray(0, cd)), subtype: 'ZIP' }],
      }),
      'C-PL-CD-2',
    );
    expect(ack.code).toBe('AE');
    expect(ack.raw).toMatch(/end record/);
    expect(await p.db.manager.count(OrderEntity, { where: { placerOrderNumber: 'PL-CD-2' } })).toBe(0);

    // The same zip whole is taken.
    expect((await upload(order.id, 'slides.zip', good)).status).toBe(200);
  });

  it('a zip entry leading out of the zip, named twice, encrypted or a symbolic link is refused, with its name', async () => {
    const order = await waitingOrder('PL-NAMES-1');
    const a = png(6);
    const stored = (files: Record<string, Uint8Array>) =>
      Buffer.from(zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, [v, { level: 0 }]]))));
    // Renames the second entry (local header and directory) to the first's name.
    const twice = stored({ 'a.png': a, 'b.png': png(7) });
    for (let i = twice.indexOf('b.png'); i >= 0; i = twice.indexOf('b.png', i + 1)) twice.write('a.png', i);
    // Flag bit 0 (encrypted) in the local header and the directory: the bytes are a PNG, but no unzipper reads them.
    const encrypted = stored({ 'a.png': a });
    encrypted[6] |= 1;
    encrypted[directoryAt(encrypted) + 8] |= 1;
    // Made on Unix (host 3) with mode S_IFLNK: an unzipper that extracts makes it a link.
    const link = stored({ 'link.png': a });
    const cd = directoryAt(link);
    link[cd + 5] = 3;
    link.writeUInt32LE((0o120777 << 16) >>> 0, cd + 38);
    const cases: Array<[Uint8Array, RegExp]> = [
      [stored({ '../../etc/evil.png': a }), /"..\/..\/etc\/evil.png" leads out of the zip/],
      [stored({ 'ok/../../evil.png': a }), /leads out of the zip/],
      [stored({ '/abs/evil.png': a }), /"\/abs\/evil.png" leads out of the zip/],
      [stored({ 'C:\\evil.png': a }), /leads out of the zip/],
      [twice, /"a.png" twice/],
      [encrypted, /"a.png" is encrypted/],
      [link, /"link.png" is a symbolic link/],
    ];
    for (const [zip, why] of cases) {
      const res = await upload(order.id, 'slides.zip', zip);
      expect({ why: String(why), status: res.status, message: res.body.message }).toMatchObject({
        why: String(why),
        status: 422,
        message: expect.stringMatching(why),
      });
    }
    expect(await p.db.manager.count(ImageFileEntity, { where: { orderId: order.id } })).toBe(0);

    // Folders, and a Windows tool's backslashes inside the zip, are fine.
    const fine = stored({ 'slides/a.png': a, 'slides\\b.png': png(8) });
    expect((await upload(order.id, 'slides.zip', fine)).status).toBe(200);
  });
});
