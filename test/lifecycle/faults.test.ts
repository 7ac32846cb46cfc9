import { DeliveryStatus, OrderStatus, QueueName } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { OrderActionsService } from '@hemato/orders';
import { DeliveryEntity, OrderEntity, OrderEventEntity, ReportEntity } from '@hemato/persistence';
import { Queue } from 'bullmq';
import {
  eventually,
  orderReaches,
  generateSmear,
  sampleOrm,
  startPipeline,
  type Pipeline,
  placerOfOru,
} from '@hemato/testing';

/** How the system survives Hemato.AI misbehaving: each case ends with every order completed exactly once. */
describe('lifecycle under Hemato.AI faults', () => {
  let p: Pipeline;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 11, parasites: true });

  beforeAll(async () => {
    p = await startPipeline('faults');
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });
  afterEach(async () => {
    p.receiver.answer = 'AA';
    await fetch(`${p.sandbox.url}/_sandbox/faults`, { method: 'DELETE' }).catch(() => undefined);
    await setFaults({});
  });

  async function setFaults(faults: Record<string, unknown>) {
    const res = await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(faults),
    });
    expect(res.status).toBeLessThan(300);
  }

  async function send(placer: string): Promise<void> {
    const ack = await client.send(
      sampleOrm({ controlId: `C-${placer}`, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      `C-${placer}`,
    );
    expect(ack.code).toBe('AA');
  }

  async function completed(placer: string, timeoutMs = 90_000): Promise<OrderEntity> {
    return orderReaches(p.db, { placerOrderNumber: placer }, OrderStatus.Completed, timeoutMs);
  }

  async function studiesFor(orderId: string): Promise<number> {
    const res = await fetch(`${p.sandbox.url}/_sandbox/pbs`);
    const { studies } = (await res.json()) as { studies: Array<{ tags: Record<string, string> }> };
    return studies.filter((s) => s.tags?.bridge_order_id === orderId).length;
  }

  it('the sandbox answering 503 for a while: the timeline says why it waits; retried until it recovers, one study, one result', async () => {
    await setFaults({ error_rate: 1, error_status: 503 });
    await send('PL-503');
    // While it waits, the timeline says why: the failed try of the step, the error, and when the next comes.
    const retry = await eventually(
      async () => {
        const o = await p.db.manager.findOne(OrderEntity, { where: { placerOrderNumber: 'PL-503' } });
        if (!o) return null;
        return p.db.manager.findOne(OrderEventEntity, { where: { orderId: o.id, type: 'step_retry' } });
      },
      60_000,
      'a failed try of the step on the timeline',
    );
    expect(retry.actor).toBe('worker');
    expect(retry.detail).toMatchObject({ step: 'orders.create-study', attempt: 1, attempts: 8 });
    expect(String(retry.detail.reason)).toMatch(/503/);
    expect(retry.detail.nextTryInMs).toBeGreaterThan(0);
    await setFaults({});
    const order = await completed('PL-503');
    expect(p.receiver.forPlacer('PL-503')).toHaveLength(1);
    expect(await studiesFor(order.id)).toBe(1);
  });

  it('callbacks dropped: polling finishes the job', async () => {
    await setFaults({ callback_drop_rate: 1 });
    await send('PL-NOCB');
    const order = await completed('PL-NOCB');
    expect(p.receiver.forPlacer('PL-NOCB')).toHaveLength(1);
    const cbs = (await (await fetch(`${p.sandbox.url}/_sandbox/callbacks`)).json()) as {
      callbacks?: Array<Record<string, unknown>>;
    };
    const mine = (cbs.callbacks ?? []).filter((c) => c.pbs_study_id === order.hematoStudyId);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.map((c) => c.outcome)).toEqual(mine.map(() => 'dropped'));
    // No callback reached the gateway: the timeline has polls, no callback event.
    const events: Array<{ type: string }> = await p.db.query(`SELECT type FROM order_events WHERE order_id = $1`, [
      order.id,
    ]);
    expect(events.map((e) => e.type)).not.toContain('hemato_callback');
  });

  it('Hemato.AI failing the study: the order fails visibly with its user_message', async () => {
    await setFaults({ processing_fail_rate: 1, processing_fail_message: 'Smear too thick to analyse' });
    await send('PL-FAIL');
    const failed = await eventually(
      async () => {
        const o = await p.db.manager.findOne(OrderEntity, { where: { placerOrderNumber: 'PL-FAIL' } });
        return o?.status === OrderStatus.Failed ? o : null;
      },
      60_000,
      'order failed',
    );
    expect(failed.failureReason).toContain('Smear too thick to analyse');
    expect(p.receiver.forPlacer('PL-FAIL')).toHaveLength(0);
  });

  it('the result receiver refusing the ORU (AR): sent once, the order fails visibly with the reason on its timeline', async () => {
    p.receiver.answer = 'AR';
    await send('PL-ARRX');
    const failed = await eventually(
      async () => {
        const o = await p.db.manager.findOne(OrderEntity, { where: { placerOrderNumber: 'PL-ARRX' } });
        return o?.status === OrderStatus.Failed ? o : null;
      },
      90_000,
      'order failed',
    );
    expect(failed.failureReason).toBe('Delivery to hl7 failed: receiver answered AR');
    const delivery = await p.db.manager.findOneByOrFail(DeliveryEntity, { orderId: failed.id });
    expect(delivery).toMatchObject({ status: DeliveryStatus.Failed, outcome: 'AR', attempts: 1 });
    const events: Array<{ to_status: string | null; detail: Record<string, unknown> }> = await p.db.query(
      `SELECT to_status, detail FROM order_events WHERE order_id = $1 ORDER BY id`,
      [failed.id],
    );
    expect(events.at(-1)).toMatchObject({
      to_status: 'failed',
      detail: { step: 'deliver', target: 'hl7', reason: 'Delivery to hl7 failed: receiver answered AR' },
    });
    // Nothing sends it again (no job retry, no reconciler run).
    await new Promise((r) => setTimeout(r, 6000));
    expect(p.receiver.forPlacer('PL-ARRX')).toHaveLength(0); // the receiver keeps accepted ORUs only
    expect((await p.db.manager.findOneByOrFail(DeliveryEntity, { id: delivery.id })).attempts).toBe(1);
  }, 120_000);

  it('the result receiver silent for longer than STALE_AFTER_MS: one sender at a time, one accepted ORU', async () => {
    // STALE_AFTER_MS is 5 s here and one delivery run (4 sends, 3 s ACK timeout each) takes ~19 s, so the
    // reconciler re-runs fetch-report several times while the delivery still retries.
    const deliveries = new Queue(QueueName.Deliveries, {
      connection: { url: p.env.REDIS_URL! },
      prefix: p.env.QUEUE_PREFIX!,
    });
    try {
      p.receiver.answer = 'drop';
      await send('PL-SLOWRX');
      const order = await orderReaches(p.db, { placerOrderNumber: 'PL-SLOWRX' }, OrderStatus.Delivering, 60_000);
      const delivery = await p.db.manager.findOneByOrFail(DeliveryEntity, { orderId: order.id });
      let mostAtOnce = 0;
      const until = Date.now() + 20_000;
      while (Date.now() < until) {
        const live = await deliveries.getJobs(['active', 'waiting', 'delayed', 'prioritized']);
        mostAtOnce = Math.max(mostAtOnce, live.filter((j) => j?.data.deliveryId === delivery.id).length);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id })).toMatchObject({
        status: OrderStatus.Delivering,
      });
      p.receiver.answer = 'AA';
      await completed('PL-SLOWRX');
      // Anything still queued would send (or give up and mark the delivery failed) within this wait.
      await new Promise((r) => setTimeout(r, 8000));
      expect(mostAtOnce).toBe(1);
      expect(p.receiver.forPlacer('PL-SLOWRX')).toHaveLength(1);
      expect(await p.db.manager.findOneByOrFail(DeliveryEntity, { id: delivery.id })).toMatchObject({
        status: DeliveryStatus.Acknowledged,
      });
      expect(await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id })).toMatchObject({
        status: OrderStatus.Completed,
      });
    } finally {
      await deliveries.close();
    }
  }, 150_000);

  it('a report revised while the first version is still undelivered: only the newest version is sent, as final', async () => {
    p.receiver.answer = 'drop';
    await send('PL-LATEREV');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-LATEREV' }, OrderStatus.Delivering, 60_000);
    const res = await fetch(`${p.sandbox.url}/_sandbox/pbs/${order.hematoStudyId}/revise`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pathology_report: 'Revised before delivery: ring forms confirmed.' }),
    });
    expect(res.status).toBe(202);
    await eventually(
      async () => (await p.db.manager.count(ReportEntity, { where: { orderId: order.id } })) === 2,
      60_000,
      'report version 2 stored',
    );
    p.receiver.answer = 'AA';
    await completed('PL-LATEREV');
    // Anything still queued for version 1 would be sent within this wait.
    await new Promise((r) => setTimeout(r, 8000));
    const received = p.receiver.forPlacer('PL-LATEREV');
    expect(received).toHaveLength(1);
    expect(received[0]).toContain('Revised before delivery');
    // The receiver never had version 1, so version 2 is its final result, not a correction.
    expect(
      received[0]
        .split('\r')
        .find((s) => s.startsWith('OBR|'))!
        .split('|')[25],
    ).toBe('F');
    const rows: Array<{ version: number; status: string }> = await p.db.query(
      `SELECT r.version, d.status FROM deliveries d JOIN reports r ON r.id = d.report_id
        WHERE d.order_id = $1 ORDER BY r.version`,
      [order.id],
    );
    expect(rows).toEqual([
      { version: 1, status: DeliveryStatus.Superseded },
      { version: 2, status: DeliveryStatus.Acknowledged },
    ]);
  }, 150_000);

  it('a report revision is stored as version 2 and delivered as a correction (OBR-25 C)', async () => {
    await send('PL-REV');
    const order = await completed('PL-REV');
    const res = await fetch(`${p.sandbox.url}/_sandbox/pbs/${order.hematoStudyId}/revise`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pathology_report: 'Revised: ring forms confirmed on review.' }),
    });
    expect(res.status).toBe(202);
    const correction = await p.receiver.waitFor((m) => placerOfOru(m) === 'PL-REV' && m.includes('Revised'), 60_000);
    const obr = correction.split('\r').find((s) => s.startsWith('OBR|'))!;
    expect(obr.split('|')[25]).toBe('C');
    await completed('PL-REV');
    const versions = await p.db.manager.find(ReportEntity, { where: { orderId: order.id }, order: { version: 'ASC' } });
    expect(versions.map((v) => v.version)).toEqual([1, 2]);
    expect(p.receiver.forPlacer('PL-REV')).toHaveLength(2);
  }, 150_000);
});

describe('cancellation', () => {
  let p: Pipeline;
  let client: MllpClient;

  beforeAll(async () => {
    p = await startPipeline('cancel', { SANDBOX_PROCESSING_MS: '4000' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  it('an order cancelled while Hemato.AI works stops there: no report is fetched, no result is sent', async () => {
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 5, parasites: true });
    const ack = await client.send(
      sampleOrm({ controlId: 'C-CANCEL', placer: 'PL-CANCEL', images: [{ data: smear, subtype: 'PNG' }] }),
      'C-CANCEL',
    );
    expect(ack.code).toBe('AA');
    const order = await eventually(
      async () => {
        const o = await p.db.manager.findOne(OrderEntity, { where: { placerOrderNumber: 'PL-CANCEL' } });
        return o && [OrderStatus.TasksRequested, OrderStatus.Processing].includes(o.status) ? o : null;
      },
      60_000,
      'order with Hemato.AI',
    );
    const result = await p.gateway.app.get(OrderActionsService).cancel(order.id, 'admin:test', 'ordered in error');
    expect(result).toEqual({ ok: true, message: 'Order cancelled: no further step will run' });
    // Wait past the sandbox's processing time and its callback.
    await new Promise((r) => setTimeout(r, 7000));
    const after = await p.db.manager.findOneOrFail(OrderEntity, { where: { id: order.id } });
    expect(after.status).toBe(OrderStatus.Cancelled);
    expect(await p.db.manager.count(ReportEntity, { where: { orderId: order.id } })).toBe(0);
    expect(p.receiver.messages.filter((m) => m.includes('PL-CANCEL'))).toHaveLength(0);
    // Cancelling twice is refused with a reason.
    expect(await p.gateway.app.get(OrderActionsService).cancel(order.id, 'admin:test', 'again')).toEqual({
      ok: false,
      message: 'An order that is cancelled cannot be cancelled',
    });
  }, 120_000);
});
