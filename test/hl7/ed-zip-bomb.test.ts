import { zipBomb } from '@hemato/testing';
import { intakeGatewayForSuite } from './support/gateway';
import { orderMessage } from './support/fixtures';
import { RawMllpConnection, ackOf } from './support/mllp-test-client';

jest.setTimeout(120_000);

const MAX_UNPACKED = 64 * 1024 * 1024;

/**
 * A zip inline in an OBX ED is inflated to be checked (JPEG/PNG entries, IMAGE_ZIP_MAX_UNPACKED_BYTES). A bomb
 * takes seconds to inflate up to the limit; it held the gateway's event loop all that while, so no other
 * sender got an ACK (nor a byte read) until it was refused. The inflate now lets other work run between slices.
 */
describe('an HL7 order carrying a zip bomb inline (OBX ED)', () => {
  const suite = intakeGatewayForSuite({ IMAGE_ZIP_MAX_UNPACKED_BYTES: String(MAX_UNPACKED) });

  it("is refused (AE 102) while another connection's orders are answered meanwhile", async () => {
    const zip = zipBomb(MAX_UNPACKED + 16 * 1024 * 1024);
    const bombed = await RawMllpConnection.open(suite.gw.mllpPort);
    const other = await RawMllpConnection.open(suite.gw.mllpPort);
    const answered: string[] = [];
    bombed.socket.on('data', () => answered.push('bomb'));
    other.socket.on('data', () => answered.push('other'));
    try {
      const withBomb = orderMessage({
        controlId: 'ZB-1',
        groups: [{ placer: 'ZB-1', extra: [`OBX|1|ED|IMG^Smear^L|1|^IM^ZIP^Base64^${zip.toString('base64')}||||||F`] }],
      });
      await new Promise<void>((resolve) => bombed.socket.write(Buffer.from(`\x0b${withBomb}\x1c\r`), () => resolve()));
      // The gateway has the whole frame and is inflating by now; a timer of this process (the gateway's) runs
      // only when the inflate lets it.
      await new Promise((r) => setTimeout(r, 300));
      // Three orders one after the other, each sent once the previous one is answered.
      for (const id of ['ZB-2', 'ZB-3', 'ZB-4']) {
        expect(ackOf(await other.request(orderMessage({ controlId: id, groups: [{ placer: id }] })))).toMatchObject({
          code: 'AA',
          acked: id,
        });
      }
      const [bombReply] = await bombed.waitFor(1, 90_000);
      expect(ackOf(bombReply!)).toMatchObject({ code: 'AE', acked: 'ZB-1' });
      expect(bombReply).toContain('IMAGE_ZIP_MAX_UNPACKED_BYTES');
      expect(bombReply).toContain('OBX^1^5');
      // The other sender's ACKs came while the bomb was being inflated, not after it.
      expect(answered).toEqual(['other', 'other', 'other', 'bomb']);
    } finally {
      bombed.close();
      other.close();
    }
  });
});
