import { MllpClient } from '@hemato/hl7';
import { OrderEntity } from '@hemato/persistence';
import { generateSmear, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * An OBX ED image over IMAGE_MAX_BYTES was answered AR "Internal error; resend later" (207): the store
 * refused it inside the commit, so the sender was told to send again what can never be taken. It is now
 * an AE naming the limit and the OBX, like any other image the order cannot carry; no order is made.
 */
describe('HL7 OBX ED image over IMAGE_MAX_BYTES', () => {
  let p: Pipeline;
  let client: MllpClient;

  beforeAll(async () => {
    p = await startPipeline('edlimit', { IMAGE_MAX_BYTES: '20000' }, { worker: false });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  it('is answered AE 102 at the OBX with the limit, and no order is made; an image within it is taken', async () => {
    const big = generateSmear({ width: 256, height: 256, format: 'png', seed: 51 });
    expect(big.length).toBeGreaterThan(20_000);
    const small = generateSmear({ width: 32, height: 32, format: 'png', seed: 52 });
    const ack = await client.send(
      sampleOrm({
        controlId: 'C-PL-ED-BIG',
        placer: 'PL-ED-BIG',
        images: [
          { data: small, subtype: 'PNG' },
          { data: big, subtype: 'PNG' },
        ],
      }),
      'C-PL-ED-BIG',
    );
    expect(ack.code).toBe('AE');
    expect(ack.raw).not.toMatch(/resend later/);
    expect(ack.raw).toMatch(/OBX\^2\^5/);
    expect(ack.raw).toMatch(new RegExp(`${big.length} bytes, over the limit of 20000`));
    expect(await p.db.manager.count(OrderEntity, { where: { placerOrderNumber: 'PL-ED-BIG' } })).toBe(0);

    const ok = await client.send(
      sampleOrm({ controlId: 'C-PL-ED-OK', placer: 'PL-ED-OK', images: [{ data: small, subtype: 'PNG' }] }),
      'C-PL-ED-OK',
    );
    expect(ok.code).toBe('AA');
  });
});
