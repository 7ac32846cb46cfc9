import { DeliveryStatus, OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { OrderEntity, ReportEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * Hemato.AI calls back when a report is ready, revisions included ("you can get the latest version of the
 * report"). A revision whose callback arrives while the first version is still being delivered must be
 * fetched then: once the delivery ends the order is completed and nothing would ever ask again. The
 * reconciler is kept out of the way (STALE_AFTER_MS 10 min, the order of the default 5 min), so only the
 * callback can bring the revision in.
 */
describe('a revision called back while the result is being delivered', () => {
  let p: Pipeline;
  let client: MllpClient;

  beforeAll(async () => {
    p = await startPipeline('revcb', { STALE_AFTER_MS: '600000' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  it('is fetched on its callback and sent instead of the first version', async () => {
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 23, parasites: true });
    p.receiver.answer = 'drop';
    const ack = await client.send(
      sampleOrm({ controlId: 'C-REVCB', placer: 'PL-REVCB', images: [{ data: smear, subtype: 'PNG' }] }),
      'C-REVCB',
    );
    expect(ack.code).toBe('AA');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-REVCB' }, OrderStatus.Delivering, 60_000);

    const res = await fetch(`${p.sandbox.url}/_sandbox/pbs/${order.hematoStudyId}/revise`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pathology_report: 'Revised while delivering: ring forms confirmed.' }),
    });
    expect(res.status).toBe(202);
    // The revision's callback reaches the gateway...
    await eventually(
      async () => {
        const cbs = (await (
          await fetch(`${p.sandbox.url}/_sandbox/callbacks?pbs_study_id=${order.hematoStudyId}`)
        ).json()) as {
          callbacks: Array<{ body: { report_version?: number }; outcome: string }>;
        };
        return cbs.callbacks.some((c) => c.body.report_version === 2 && c.outcome === 'delivered');
      },
      20_000,
      'callback of version 2 delivered',
    );
    // ...and brings version 2 in while the order is still delivering version 1.
    await eventually(
      async () => (await p.db.manager.count(ReportEntity, { where: { orderId: order.id } })) === 2,
      15_000,
      'report version 2 stored',
    );
    expect(await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id })).toMatchObject({
      status: OrderStatus.Delivering,
    });

    p.receiver.answer = 'AA';
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 90_000);
    await new Promise((r) => setTimeout(r, 5000));
    const received = p.receiver.messages.filter((m) => m.includes('PL-REVCB'));
    expect(received).toHaveLength(1);
    expect(received[0]).toContain('Revised while delivering');
    const rows: Array<{ version: number; status: string }> = await p.db.query(
      `SELECT r.version, d.status FROM deliveries d JOIN reports r ON r.id = d.report_id
        WHERE d.order_id = $1 ORDER BY r.version`,
      [order.id],
    );
    expect(rows).toEqual([
      { version: 1, status: DeliveryStatus.Superseded },
      { version: 2, status: DeliveryStatus.Acknowledged },
    ]);
  }, 180_000);
});
