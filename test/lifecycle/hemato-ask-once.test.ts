import { DomainError, DomainErrorCode, OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { RequestTasksStep } from '@hemato/orders';
import { OrderEntity, ReportEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * Two executions of one step for one order can overlap: the reconciler re-drives an order whose row has not
 * changed for STALE_AFTER_MS under a job id of its own while the step's job is still at it, and BullMQ re-runs a
 * job whose lock it lost while the first run may still be going. Only one of them may ask Hemato.AI: a second
 * `POST /pbs` is a second study, a second `/tasks` a second run (or a 409).
 */
describe('lifecycle: one ask to Hemato.AI per order and step, however many executions overlap', () => {
  let p: Pipeline;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 41, parasites: true });

  beforeAll(async () => {
    // The pipeline's STALE_AFTER_MS is 5 s, its reconciler runs every second.
    p = await startPipeline('ask-once');
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });
  afterEach(async () => {
    await fetch(`${p.sandbox.url}/_sandbox/faults`, { method: 'DELETE' });
  });

  async function setFaults(faults: Record<string, unknown> | undefined) {
    const res = await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: faults ? 'POST' : 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: faults ? JSON.stringify(faults) : undefined,
    });
    expect(res.status).toBe(200);
  }

  async function send(placer: string): Promise<void> {
    const ack = await client.send(
      sampleOrm({ controlId: `C-${placer}`, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      `C-${placer}`,
    );
    expect(ack.code).toBe('AA');
  }

  type Logged = { method: string; path: string; status?: number; tags?: Record<string, string> };
  async function requests(query: string): Promise<Logged[]> {
    const res = await fetch(`${p.sandbox.url}/_sandbox/requests?${query}`);
    return ((await res.json()) as { requests: Logged[] }).requests;
  }

  const orusFor = (placer: string) => p.receiver.messages.filter((m) => m.includes(placer));

  it('a reconciler run while POST /pbs is still unanswered does not create a second study', async () => {
    // Hemato.AI takes 9 s to answer POST /pbs (its study is made at the end), longer than STALE_AFTER_MS:
    // the reconciler re-drives create-study while the first request is still out. GET /pbs stays fast.
    await setFaults({ latency_ms: 9000, paths: ['/pbs'], methods: ['POST'] });
    await send('PL-ASK-STUDY');
    const created = await eventually(async () => {
      const o = await p.db.manager.findOneBy(OrderEntity, { placerOrderNumber: 'PL-ASK-STUDY' });
      return o?.hematoStudyId ? o : undefined;
    }, 60_000);
    await setFaults(undefined); // requests already waiting keep their latency
    const order = await orderReaches(p.db, { id: created.id }, OrderStatus.Completed, 90_000);
    // A second request, had one been sent, is answered within this wait.
    await new Promise((r) => setTimeout(r, 10_000));

    const reconciled: Array<{ n: number }> = await p.db.query(
      `SELECT count(*)::int AS n FROM order_events WHERE order_id = $1 AND type = 'reconciled'`,
      [order.id],
    );
    expect(reconciled[0]!.n).toBeGreaterThan(0); // the overlap this test is about did happen
    const creates = (await requests('path=/pbs&method=POST')).filter(
      (r) => r.path === '/pbs' && r.tags?.bridge_order_id === order.id,
    );
    expect(creates).toEqual([expect.objectContaining({ status: 201 })]);
    const { studies } = (await (await fetch(`${p.sandbox.url}/_sandbox/pbs`)).json()) as {
      studies: Array<{ pbs_study_id: string; tags: Record<string, string> }>;
    };
    expect(studies.filter((s) => s.tags.bridge_order_id === order.id).map((s) => s.pbs_study_id)).toEqual([
      order.hematoStudyId,
    ]);
    expect(orusFor('PL-ASK-STUDY')).toHaveLength(1);
  }, 150_000);

  it('a second run of request-tasks while /tasks is still unanswered does not ask again', async () => {
    await setFaults({ latency_ms: 3000, paths: ['/pbs/*/tasks'], methods: ['POST'] });
    await send('PL-ASK-TASKS');
    // The first request is out once the order carries its mark.
    const asking = await eventually(async () => {
      const o = await p.db.manager.findOneBy(OrderEntity, { placerOrderNumber: 'PL-ASK-TASKS' });
      return (o?.details?.hematoSent as Record<string, unknown> | undefined)?.request_tasks ? o : undefined;
    }, 60_000);
    // The step run again meanwhile, as BullMQ does with a job whose lock it lost.
    await p
      .worker!.get(RequestTasksStep, { strict: false })
      .execute(asking.id)
      .catch((err: unknown) => {
        // The first run moved the order on before this one could: what the job handler counts as done.
        if (!(err instanceof DomainError && err.code === DomainErrorCode.Conflict)) throw err;
      });
    const order = await orderReaches(p.db, { id: asking.id }, OrderStatus.Completed, 90_000);
    await new Promise((r) => setTimeout(r, 4000));

    const asked = await requests(`path=/pbs/${order.hematoStudyId}/tasks&method=POST`);
    expect(asked).toEqual([expect.objectContaining({ status: 202 })]);
    const versions = await p.db.manager.find(ReportEntity, { where: { orderId: order.id } });
    expect(versions.map((v) => v.version)).toEqual([1]);
    expect(orusFor('PL-ASK-TASKS')).toHaveLength(1);
  }, 150_000);

  it('a claim left by a worker that died expires: the reconciler re-drives the order and it completes', async () => {
    await p.stopWorker();
    try {
      await send('PL-ASK-DEAD');
      const order = await eventually(() => p.db.manager.findOneBy(OrderEntity, { placerOrderNumber: 'PL-ASK-DEAD' }));
      // What a worker killed while asking for the study leaves behind: its claim, good for a few more seconds.
      await p.db.query(
        `UPDATE orders SET details = details || jsonb_build_object('hematoAsking', jsonb_build_object('create_study',
           jsonb_build_object('by', 'a-dead-worker', 'until', now() + interval '4 seconds')))
          WHERE id = $1`,
        [order.id],
      );
    } finally {
      await p.startWorker();
    }
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-ASK-DEAD' }, OrderStatus.Completed, 90_000);
    const creates = (await requests('path=/pbs&method=POST')).filter(
      (r) => r.path === '/pbs' && r.tags?.bridge_order_id === order.id,
    );
    expect(creates).toEqual([expect.objectContaining({ status: 201 })]);
    // Its own create-study job left the order to the claim's holder; the reconciler's run made the study.
    const redriven: Array<{ n: number }> = await p.db.query(
      `SELECT count(*)::int AS n FROM order_events
        WHERE order_id = $1 AND type = 'reconciled' AND detail->>'status' = 'ready'`,
      [order.id],
    );
    expect(redriven[0]!.n).toBeGreaterThan(0);
    expect(order.details?.hematoAsking ?? {}).toEqual({});
    expect(orusFor('PL-ASK-DEAD')).toHaveLength(1);
  }, 150_000);
});
