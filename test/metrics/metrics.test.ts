import { startGateway, type TestGateway } from '../hl7/support/gateway';
import { RawMllpConnection, ackOf } from '../hl7/support/mllp-test-client';
import { orderMessage } from '../hl7/support/fixtures';

jest.setTimeout(60_000);

/** One sample's value from a Prometheus text page, by metric name and exact label set. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('GET /metrics (Prometheus)', () => {
  let gw: TestGateway;
  let base: string;
  const TOKEN = 'metrics-token-for-the-scraper';

  beforeAll(async () => {
    gw = await startGateway({ METRICS_TOKEN: TOKEN, HEMATO_ORDER_CODES: 'LN|34994-4=pbs_v1' });
    base = gw.gateway.urls.http;
  });
  afterAll(async () => gw?.close());

  const scrape = async () => {
    const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  it('asks for METRICS_TOKEN when it is set', async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer not-the-token' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).not.toContain(TOKEN);
  });

  it('counts orders by status, MLLP frames and ACK codes, queue jobs and dependencies, and names no patient', async () => {
    const before = await scrape();
    expect(sample(before, 'hemato_bridge_orders', '{status="received"}')).toBe(0);
    expect(sample(before, 'hemato_bridge_dependency_up', '{dependency="postgres"}')).toBe(1);
    expect(sample(before, 'hemato_bridge_dependency_up', '{dependency="redis"}')).toBe(1);

    const conn = await RawMllpConnection.open(gw.mllpPort);
    try {
      expect(ackOf(await conn.request(orderMessage({ controlId: 'MET-1', patientName: 'METRICS^PATIENT' }))).code).toBe(
        'AA',
      );
      expect(ackOf(await conn.request(orderMessage({ controlId: 'MET-2', patientName: 'METRICS^PATIENT' }))).code).toBe(
        'AA',
      );
      // A message type we do not take: AR.
      const refused = await conn.request('MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101120000||ADT^A01|MET-3|P|2.5.1\rEVN|A01');
      expect(ackOf(refused).code).toBe('AR');
    } finally {
      conn.close();
    }

    const after = await scrape();
    // Orders are counted from PostgreSQL: the two new orders are received (or already past it, in a queue).
    const statuses = after
      .split('\n')
      .filter((l) => l.startsWith('hemato_bridge_orders{'))
      .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
    expect(statuses.reduce((a, b) => a + b, 0)).toBe(2);
    expect(sample(after, 'hemato_bridge_mllp_messages_received_total')).toBe(3);
    expect(sample(after, 'hemato_bridge_mllp_acks_sent_total', '{code="AA"}')).toBe(2);
    expect(sample(after, 'hemato_bridge_mllp_acks_sent_total', '{code="AR"}')).toBe(1);
    // Every message was answered: none is held in memory any more.
    expect(sample(after, 'hemato_bridge_mllp_inflight_bytes')).toBe(0);
    // No frame is left half-received either.
    expect(sample(after, 'hemato_bridge_mllp_buffered_bytes')).toBe(0);
    // The start jobs of the two orders are in the orders queue (no worker runs here).
    const orderJobs = ['waiting', 'active', 'delayed', 'prioritized']
      .map((state) => sample(after, 'hemato_bridge_queue_jobs', `{queue="orders",state="${state}"}`) ?? 0)
      .reduce((a, b) => a + b, 0);
    expect(orderJobs).toBe(2);
    expect(sample(after, 'hemato_bridge_deliveries', '{target="hl7",status="failed"}')).toBe(0);
    expect(sample(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    // Every family declared once, with HELP and TYPE.
    const types = after.split('\n').filter((l) => l.startsWith('# TYPE '));
    expect(new Set(types).size).toBe(types.length);
    expect(after).not.toMatch(/METRICS|PATIENT|MRN/);
  });
});
