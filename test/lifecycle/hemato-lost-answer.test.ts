import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { OrderActionsService } from '@hemato/orders';
import { OrderEntity, ReportEntity } from '@hemato/persistence';
import { generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * Hemato.AI acts on a request but its answer never arrives (connection dropped, timeout after the work
 * was done). Asking again must not start the work twice: a second study would be an orphan, a second
 * run of the tasks a report version 2 that the hospital would receive as a correction of nothing.
 */
describe('lifecycle when an answer from Hemato.AI is lost', () => {
  let p: Pipeline;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 23, parasites: true });

  beforeAll(async () => {
    // 57021-8 asks for a task Hemato.AI does not know (a 400 at /tasks): an order that fails at request-tasks.
    p = await startPipeline('lost-answer', { HEMATO_ORDER_CODES: 'LN|34994-4=pbs_v1,LN|57021-8=pbs_v0' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });
  afterEach(async () => {
    await fetch(`${p.sandbox.url}/_sandbox/faults`, { method: 'DELETE' });
  });

  async function setFaults(faults: Record<string, unknown>) {
    const res = await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(faults),
    });
    expect(res.status).toBe(200);
  }

  async function send(placer: string, code?: string): Promise<void> {
    const ack = await client.send(
      sampleOrm({ controlId: `C-${placer}`, placer, code, images: [{ data: smear, subtype: 'PNG' }] }),
      `C-${placer}`,
    );
    expect(ack.code).toBe('AA');
  }

  /** The sandbox's log of API requests (oldest first). */
  type Logged = { method: string; path: string; status?: number; fault?: string; tags?: Record<string, string> };
  async function requests(query: string): Promise<Logged[]> {
    const res = await fetch(`${p.sandbox.url}/_sandbox/requests?${query}`);
    return ((await res.json()) as { requests: Logged[] }).requests;
  }

  /** `POST /pbs/{id}/tasks` calls that started a run (202, whether or not the answer reached us). */
  async function runsStarted(studyId: string): Promise<number> {
    const log = await requests(`path=/pbs/${studyId}/tasks&method=POST`);
    return log.filter((r) => r.status === 202).length;
  }

  async function studiesTagged(orderId: string): Promise<string[]> {
    const res = await fetch(`${p.sandbox.url}/_sandbox/pbs`);
    const { studies } = (await res.json()) as {
      studies: Array<{ pbs_study_id: string; tags: Record<string, string> }>;
    };
    return studies.filter((s) => s.tags?.bridge_order_id === orderId).map((s) => s.pbs_study_id);
  }

  const resultStatus = (m: string) =>
    m
      .split('\r')
      .find((s) => s.startsWith('OBR|'))!
      .split('|')[25];

  async function timeline(orderId: string): Promise<Array<{ to_status: string | null; detail: Record<string, any> }>> {
    return p.db.query(`SELECT to_status, detail FROM order_events WHERE order_id = $1 ORDER BY id`, [orderId]);
  }

  it('the answer to POST /pbs/{id}/tasks lost: one run, report version 1, delivered as the final result', async () => {
    await setFaults({ drop_answer_next: 1, paths: ['/pbs/*/tasks'] });
    await send('PL-LOST-TASKS');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-LOST-TASKS' }, OrderStatus.Completed, 90_000);
    // Whatever a late retry, poll or reconciler run would do, it does within this wait.
    await new Promise((r) => setTimeout(r, 6000));

    const dropped = await requests(`path=/pbs/${order.hematoStudyId}/tasks`);
    expect(dropped[0]).toMatchObject({ status: 202, fault: 'answer dropped' });
    expect(await runsStarted(order.hematoStudyId!)).toBe(1);
    const study = (await (await fetch(`${p.sandbox.url}/_sandbox/pbs/${order.hematoStudyId}`)).json()) as {
      status: { report_version: number };
    };
    expect(study.status.report_version).toBe(1);
    const versions = await p.db.manager.find(ReportEntity, { where: { orderId: order.id } });
    expect(versions.map((v) => v.version)).toEqual([1]);
    const orus = p.receiver.forPlacer('PL-LOST-TASKS');
    expect(orus).toHaveLength(1);
    expect(resultStatus(orus[0]!)).toBe('F');
    expect(await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id })).toMatchObject({
      status: OrderStatus.Completed,
    });
    // The timeline says what happened: the answer was lost and Hemato.AI showed the run under way.
    const requested = (await timeline(order.id)).find((e) => e.to_status === OrderStatus.TasksRequested);
    expect(requested?.detail).toMatchObject({ tasks: ['pbs_v1'], answer: expect.stringMatching(/lost/) });
  }, 150_000);

  it('the answer to /tasks lost and Hemato.AI unreachable right after: the next attempt looks first, one run', async () => {
    // The look right after the lost answer fails too (4 tries of 503): the step's next attempt looks again.
    await setFaults({ drop_answer_next: 1, fail_next: 4, paths: ['/pbs/*/tasks', '/pbs/*/status'] });
    await send('PL-LOST-LATER');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-LOST-LATER' }, OrderStatus.Completed, 90_000);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await runsStarted(order.hematoStudyId!)).toBe(1);
    expect((await requests(`path=/pbs/${order.hematoStudyId}/tasks`)).length).toBe(1);
    const versions = await p.db.manager.find(ReportEntity, { where: { orderId: order.id } });
    expect(versions.map((v) => v.version)).toEqual([1]);
    const orus = p.receiver.forPlacer('PL-LOST-LATER');
    expect(orus).toHaveLength(1);
    expect(resultStatus(orus[0]!)).toBe('F');
    const requested = (await timeline(order.id)).find((e) => e.to_status === OrderStatus.TasksRequested);
    expect(requested?.detail.answer).toMatch(/earlier request was lost; Hemato.AI's status showed the run/);
  }, 150_000);

  it('an admin retry after /tasks was refused (the study still pending) asks Hemato.AI again, once', async () => {
    await send('PL-RETRY-TASKS', '57021-8');
    const failed = await orderReaches(p.db, { placerOrderNumber: 'PL-RETRY-TASKS' }, OrderStatus.Failed, 60_000);
    expect(failed.failedStep).toBe('orders.request-tasks');
    // Staff fix the cause (here: the task the code maps to) and retry the step.
    await p.db.manager.update(OrderEntity, { id: failed.id }, { tasks: ['pbs_v1'] });
    const retried = await p.gateway.app.get(OrderActionsService).retry(failed.id, 'admin:test');
    expect(retried.ok).toBe(true);
    const order = await orderReaches(p.db, { id: failed.id }, OrderStatus.Completed, 90_000);
    expect(await runsStarted(order.hematoStudyId!)).toBe(1);
    const versions = await p.db.manager.find(ReportEntity, { where: { orderId: order.id } });
    expect(versions.map((v) => v.version)).toEqual([1]);
    const orus = p.receiver.forPlacer('PL-RETRY-TASKS');
    expect(orus).toHaveLength(1);
    expect(resultStatus(orus[0]!)).toBe('F');
  }, 150_000);

  it('the answer to POST /pbs lost: the retry finds the study by its order tag, no orphan study', async () => {
    await setFaults({ drop_answer_next: 1, paths: ['/pbs'] });
    await send('PL-LOST-STUDY');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-LOST-STUDY' }, OrderStatus.Completed, 90_000);
    await new Promise((r) => setTimeout(r, 3000));
    const creates = (await requests('path=/pbs&method=POST')).filter(
      (r) => r.path === '/pbs' && r.tags?.bridge_order_id === order.id,
    );
    expect(creates).toEqual([expect.objectContaining({ status: 201, fault: 'answer dropped' })]);
    expect(await studiesTagged(order.id)).toEqual([order.hematoStudyId]);
    expect(p.receiver.forPlacer('PL-LOST-STUDY')).toHaveLength(1);
  }, 150_000);
});
