import { DeliveryStatus, OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { OrderActionsService } from '@hemato/orders';
import { DeliveryEntity, OrderEntity, ReportEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

interface LoggedCallback {
  url: string;
  body: Record<string, unknown>;
  outcome: string;
}

interface TimelineRow {
  type: string;
  actor: string;
  from_status: string | null;
  to_status: string | null;
  detail: Record<string, unknown>;
}

/**
 * Hemato.AI finishing after POLL_DEADLINE_MS: the order has failed on the deadline, and the report's
 * signed callback arrives later. The result is picked up and delivered as usual, once, however many
 * times the callback comes; an order cancelled meanwhile stays cancelled. Deadline 3 s, the sandbox
 * takes 12 s, so the order fails well before Hemato.AI calls back.
 */
describe('a report ready after the poll deadline', () => {
  let p: Pipeline;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 31, parasites: true });

  beforeAll(async () => {
    p = await startPipeline('late', { POLL_DEADLINE_MS: '3000', SANDBOX_PROCESSING_MS: '12000' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  async function send(placer: string): Promise<void> {
    const ack = await client.send(
      sampleOrm({ controlId: `C-${placer}`, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      `C-${placer}`,
    );
    expect(ack.code).toBe('AA');
  }

  async function callbacks(studyId: string): Promise<LoggedCallback[]> {
    const res = await fetch(`${p.sandbox.url}/_sandbox/callbacks?pbs_study_id=${studyId}`);
    return ((await res.json()) as { callbacks: LoggedCallback[] }).callbacks;
  }

  async function readyCallbackDelivered(studyId: string): Promise<LoggedCallback> {
    return eventually(
      async () => (await callbacks(studyId)).find((c) => c.body.report_status === 'ready' && c.outcome === 'delivered'),
      30_000,
      'the report-ready callback delivered',
    );
  }

  async function reportFetches(studyId: string): Promise<number> {
    const res = await fetch(`${p.sandbox.url}/_sandbox/requests?pbs_study_id=${studyId}&method=GET`);
    const { requests } = (await res.json()) as { requests: Array<{ path: string }> };
    return requests.filter((r) => r.path.endsWith('/report')).length;
  }

  const timeline = (orderId: string): Promise<TimelineRow[]> =>
    p.db.query(`SELECT type, actor, from_status, to_status, detail FROM order_events WHERE order_id = $1 ORDER BY id`, [
      orderId,
    ]);

  async function failsOnDeadline(placer: string): Promise<OrderEntity> {
    await send(placer);
    const failed = await orderReaches(p.db, { placerOrderNumber: placer }, OrderStatus.Failed, 60_000);
    expect(failed.failureReason).toBe('No report from Hemato.AI within 3 s');
    // Hemato.AI is still working: the report comes after the deadline.
    expect((await callbacks(failed.hematoStudyId!)).filter((c) => c.body.report_status === 'ready')).toHaveLength(0);
    return failed;
  }

  it('is fetched on its callback and delivered once, even when the callback comes three times', async () => {
    const failed = await failsOnDeadline('PL-LATE');
    // The worker is stopped until the callback and two copies of it have arrived: all three are queued
    // before any of them is acted on.
    await p.stopWorker();
    const cb = await readyCallbackDelivered(failed.hematoStudyId!);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(cb.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(cb.body),
      });
      expect(res.status).toBe(202);
    }
    await p.startWorker();

    const done = await orderReaches(p.db, { id: failed.id }, OrderStatus.Completed, 60_000);
    expect(done).toMatchObject({ failureReason: null, failedStep: null });
    const oru = await p.receiver.waitFor((m) => m.includes('PL-LATE^'), 10_000);
    expect(
      oru
        .split('\r')
        .find((s) => s.startsWith('OBR|'))!
        .split('|')[25],
    ).toBe('F');
    // Anything still queued would fetch or send within this wait.
    await new Promise((r) => setTimeout(r, 5000));
    expect(p.receiver.messages.filter((m) => m.includes('PL-LATE^'))).toHaveLength(1);
    expect(await reportFetches(failed.hematoStudyId!)).toBe(1);
    expect(await p.db.manager.count(ReportEntity, { where: { orderId: failed.id } })).toBe(1);
    expect(await p.db.manager.findOneByOrFail(DeliveryEntity, { orderId: failed.id })).toMatchObject({
      status: DeliveryStatus.Acknowledged,
    });

    const moves = (await timeline(failed.id)).filter((e) => e.type === 'status_changed');
    expect(moves.map((e) => e.to_status).slice(-4)).toEqual([
      OrderStatus.Failed,
      OrderStatus.ReportReady,
      OrderStatus.Delivering,
      OrderStatus.Completed,
    ]);
    const late = moves.filter((e) => e.from_status === OrderStatus.Failed);
    expect(late).toHaveLength(1);
    expect(late[0]).toMatchObject({
      to_status: OrderStatus.ReportReady,
      actor: 'hemato',
      detail: { afterDeadline: true, version: 1 },
    });
    expect(String(late[0].detail.note)).toContain('after the poll deadline');
  }, 150_000);

  it('an order cancelled after failing on the deadline stays cancelled when the report is called back', async () => {
    const failed = await failsOnDeadline('PL-LATECANCEL');
    const actions = p.gateway.app.get(OrderActionsService);
    expect(await actions.cancel(failed.id, 'admin:test', 'ordered in error')).toMatchObject({ ok: true });
    await readyCallbackDelivered(failed.hematoStudyId!);
    await new Promise((r) => setTimeout(r, 5000));
    expect(await p.db.manager.findOneByOrFail(OrderEntity, { id: failed.id })).toMatchObject({
      status: OrderStatus.Cancelled,
    });
    expect(await reportFetches(failed.hematoStudyId!)).toBe(0);
    expect(await p.db.manager.count(ReportEntity, { where: { orderId: failed.id } })).toBe(0);
    expect(p.receiver.messages.filter((m) => m.includes('PL-LATECANCEL'))).toHaveLength(0);
  }, 120_000);
});
