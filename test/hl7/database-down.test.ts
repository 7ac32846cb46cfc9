import { TcpProxy } from '@hemato/testing';
import { startGateway, type TestGateway } from './support/gateway';
import { RawMllpConnection, ackOf } from './support/mllp-test-client';
import { orderMessage } from './support/fixtures';

jest.setTimeout(90_000);

describe('HL7 intake when PostgreSQL is unreachable', () => {
  let gw: TestGateway;
  let proxy: TcpProxy;

  beforeAll(async () => {
    proxy = await new TcpProxy('127.0.0.1', 5432).start();
    gw = await startGateway({ DATABASE_POOL_SIZE: '2' }, { gatewayDatabaseUrl: (url) => proxy.rewrite(url) });
  });
  afterAll(async () => {
    await proxy.resume();
    await gw?.close();
    await proxy.stop();
  });

  const count = async (controlId: string) =>
    (
      await gw.db.query(
        `SELECT count(*)::int AS n FROM orders o JOIN inbound_messages im ON im.id = o.inbound_message_id WHERE im.control_id = $1`,
        [controlId],
      )
    )[0].n as number;

  it('answers AR (never AA) while the database is down, and AA once it is back, storing the order once', async () => {
    const c = await RawMllpConnection.open(gw.mllpPort);
    expect(ackOf(await c.request(orderMessage({ controlId: 'UP-1' }))).code).toBe('AA');

    await proxy.pause();
    const down = ackOf(await c.request(orderMessage({ controlId: 'DOWN-1' })));
    expect(down.code).toBe('AR');
    expect(down.acked).toBe('DOWN-1');
    expect(down.errors[0]).toContain('|207^Application internal error^HL70357|');
    expect(down.errors[0]).toContain('Database unavailable');
    // Several at once (one batch) while down: all AR.
    const burst = await RawMllpConnection.open(gw.mllpPort);
    for (let i = 0; i < 5; i++) burst.send(orderMessage({ controlId: `DOWN-B${i}` }));
    const replies = await burst.waitFor(5, 60_000);
    expect(replies.map((r) => ackOf(r).code)).toEqual(['AR', 'AR', 'AR', 'AR', 'AR']);
    // Enhanced mode: a commit error (CE), no application ACK.
    const enh = await RawMllpConnection.open(gw.mllpPort);
    enh.send(orderMessage({ controlId: 'DOWN-E', acceptAck: 'AL', appAck: 'AL' }));
    const [ce] = await enh.waitFor(1, 60_000);
    expect(ackOf(ce!).code).toBe('CE');

    await proxy.resume();
    // The sender resends the same message: now it is stored, once.
    let again = '';
    for (let i = 0; i < 20; i++) {
      again = ackOf(await c.request(orderMessage({ controlId: 'DOWN-1' }))).code;
      if (again === 'AA') break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(again).toBe('AA');
    expect(await count('DOWN-1')).toBe(1);
    expect(ackOf(await c.request(orderMessage({ controlId: 'DOWN-1' }))).code).toBe('AA');
    expect(await count('DOWN-1')).toBe(1);
    for (const x of [c, burst, enh]) x.close();
  });
});
