import { zipSync } from 'fflate';
import { ZipImagesCheck } from '@hemato/common';
import { intakeGatewayForSuite } from './support/gateway';
import { TINY_PNG, orderMessage } from './support/fixtures';
import { ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

/**
 * A zip inline in an OBX ED is inflated to be checked before the message's group commit (letting other
 * connections be served meanwhile). OrderIntakeService.createMany checked it again, inside the batch's
 * transaction: a large valid zip was inflated a second time with a pooled connection held open. Every
 * inflate of a zip goes through ZipImagesCheck (the gateway runs in this process): it is counted.
 */
describe('an HL7 order carrying a valid zip inline (OBX ED)', () => {
  const suite = intakeGatewayForSuite();
  afterEach(() => jest.restoreAllMocks());

  it('is inflated once, and the order is stored with its zip', async () => {
    const zip = Buffer.from(zipSync({ 'a.png': TINY_PNG, 'slides/b.png': TINY_PNG }));
    const inflates = [
      jest.spyOn(ZipImagesCheck.prototype, 'push'),
      jest.spyOn(ZipImagesCheck.prototype, 'pushYielding'),
    ];
    const reply = await suite.conn.request(
      orderMessage({
        controlId: 'ZIP-ONCE-1',
        groups: [
          { placer: 'ZIP-ONCE-1', extra: [`OBX|1|ED|IMG^Smear^L|1|^IM^ZIP^Base64^${zip.toString('base64')}||||||F`] },
        ],
      }),
    );
    expect(ackOf(reply)).toMatchObject({ code: 'AA', acked: 'ZIP-ONCE-1' });
    const images = await suite.gw.db.query(
      `SELECT i.source, i.status, i.media_type, i.size_bytes FROM image_files i
         JOIN orders o ON o.id = i.order_id WHERE o.placer_order_number = 'ZIP-ONCE-1'`,
    );
    expect(images).toEqual([
      { source: 'inline', status: 'stored', media_type: 'application/zip', size_bytes: String(zip.length) },
    ]);
    // The bytes of the zip went into an inflater once: before the transaction, not again inside it.
    const pushed = inflates.flatMap((spy) => spy.mock.calls.map(([chunk]) => chunk.length));
    expect(pushed).toEqual([zip.length]);
  });
});
