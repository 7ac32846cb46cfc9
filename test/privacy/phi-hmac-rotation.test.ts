import { randomBytes } from 'node:crypto';
import { rootLogger } from '@hemato/common';
import { startGateway, migratedDatabase, type TestGateway } from '../hl7/support/gateway';
import { orderMessage } from '../hl7/support/fixtures';
import { RawMllpConnection, ackOf } from '../hl7/support/mllp-test-client';

rootLogger().level = process.env.TEST_LOG_LEVEL ?? 'silent';

/** PHI_HMAC_KEY changed more than once: a patient may be filed under several earlier keys. */
describe('PHI_HMAC_KEY rotated twice', () => {
  const phi = { PHI_KEY_ID: 'k1', PHI_ENCRYPTION_KEY: randomBytes(32).toString('base64') };
  const [a, b, c] = [0, 1, 2].map(() => randomBytes(32).toString('base64url'));
  let databaseUrl: string;
  let gw: TestGateway | undefined;
  const send = async (g: TestGateway, message: string) => {
    const conn = await RawMllpConnection.open(g.mllpPort);
    try {
      return await conn.request(message);
    } finally {
      conn.close();
    }
  };
  const proxyOf = async (placer: string) =>
    (
      (await gw!.db.query(`SELECT patient_proxy_id AS id FROM orders WHERE placer_order_number = $1`, [
        placer,
      ])) as Array<{
        id: string;
      }>
    )[0]?.id;

  beforeAll(async () => {
    databaseUrl = await migratedDatabase();
  });
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });

  it('takes the orders of a patient filed under two earlier keys (one proxy moves, none is refused)', async () => {
    const patient = { patientId: 'MRN-HMAC-2X', patientName: 'TWICE^BOB' };
    gw = await startGateway({ ...phi, PHI_HMAC_KEY: a! }, { databaseUrl });
    expect(ackOf(await send(gw, orderMessage({ controlId: 'H2-1', ...patient }))).code).toBe('AA');
    await gw.close();
    // Changed without naming the old key: the patient got a second proxy under key b.
    gw = await startGateway({ ...phi, PHI_HMAC_KEY: b! }, { databaseUrl });
    expect(ackOf(await send(gw, orderMessage({ controlId: 'H2-2', ...patient }))).code).toBe('AA');
    const second = await proxyOf('PL-H2-2');
    await gw.close();

    // Changed again, this time naming both earlier keys: her next order is taken, on one of her proxies.
    gw = await startGateway({ ...phi, PHI_HMAC_KEY: c!, PHI_PREVIOUS_HMAC_KEYS: `${a},${b}` }, { databaseUrl });
    expect(ackOf(await send(gw, orderMessage({ controlId: 'H2-3', ...patient }))).code).toBe('AA');
    // The one her latest order was on (her latest demographics, the proxy Hemato.AI saw last).
    expect(await proxyOf('PL-H2-3')).toBe(second);
    expect(ackOf(await send(gw, orderMessage({ controlId: 'H2-4', ...patient }))).code).toBe('AA');
    expect(await proxyOf('PL-H2-4')).toBe(second);
    expect(await gw.db.query(`SELECT count(*)::int AS n FROM patient_proxies`)).toEqual([{ n: 2 }]);
  });
});
