import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { startHematoProxy, type HematoProxy } from './support/hemato-proxy';

/**
 * Hemato.AI answering 429 with a Retry-After longer than the client waits by itself (60 s): the order's step
 * must not ask again before that, nor use up its attempts meanwhile. A proxy in front of the sandbox answers
 * the report request so (the sandbox's own 429s carry short waits the client absorbs).
 */
describe('Hemato.AI asking to wait longer than the client waits', () => {
  let p: Pipeline;
  let proxy: HematoProxy;
  let reportAsks = 0;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 9, parasites: true });

  beforeAll(async () => {
    proxy = await startHematoProxy({
      answer: (req, res) => {
        if (req.method !== 'GET' || !/^\/pbs\/[^/]+\/report/.test(req.url ?? '')) return false;
        reportAsks++;
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '600' });
        res.end(JSON.stringify({ status: 429, error: 'rate limited', user_message: 'Too many requests' }));
        return true;
      },
    });
    // The reconciler is kept out of the way: only the step's own retries ask for the report.
    p = await startPipeline('retry-after', { HEMATO_BASE_URL: proxy.url, STALE_AFTER_MS: '600000' });
    proxy.target = p.sandbox.url;
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
    await proxy?.close();
  });

  it('a 429 with Retry-After: 600 on the report is not asked again while the wait runs', async () => {
    const ack = await client.send(
      sampleOrm({ controlId: 'C-RA', placer: 'PL-RA', images: [{ data: smear, subtype: 'PNG' }] }),
      'C-RA',
    );
    expect(ack.code).toBe('AA');
    await orderReaches(p.db, { placerOrderNumber: 'PL-RA' }, OrderStatus.TasksRequested, 60_000);
    const deadline = Date.now() + 60_000;
    while (reportAsks === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    // The callback and the poll may each have asked once (each re-reads the status and finds it ready).
    await new Promise((r) => setTimeout(r, 1000));
    const asked = reportAsks;
    expect(asked).toBeLessThanOrEqual(2);
    // The job's own backoff would ask again after 2 s, 4 s and 8 s: none of that while Hemato.AI asks to wait.
    await new Promise((r) => setTimeout(r, 15_000));
    expect(reportAsks).toBe(asked);
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-RA' }, OrderStatus.TasksRequested, 1000);
    expect(order.failureReason).toBeNull();
  }, 120_000);
});
