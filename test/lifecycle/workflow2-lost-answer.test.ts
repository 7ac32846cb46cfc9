import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { ReportEntity } from '@hemato/persistence';
import { generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * Workflow 2: `POST /pbs` with the list URL makes the study and starts the run at once. When its answer is
 * lost, posting again would make a second study and a second run (a second report, reaching the hospital as a
 * correction). The order's tags go with the list, so the step finds the study it made and adopts it.
 */
describe('workflow 2 when the answer to POST /pbs is lost', () => {
  let p: Pipeline;
  let client: MllpClient;

  beforeAll(async () => {
    p = await startPipeline('wf2-lost', { HEMATO_WORKFLOW: '2' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  type Logged = { method: string; path: string; status?: number; fault?: string; body?: any };

  it('one study, one run, one report delivered as the final result; the timeline says the answer was lost', async () => {
    const faults = await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ drop_answer_next: 1, paths: ['/pbs'] }),
    });
    expect(faults.status).toBe(200);
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 31, parasites: true });
    const ack = await client.send(
      sampleOrm({ controlId: 'WF2-LOST', placer: 'PL-WF2-LOST', images: [{ data: smear, subtype: 'PNG' }] }),
      'WF2-LOST',
    );
    expect(ack.code).toBe('AA');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-WF2-LOST' }, OrderStatus.Completed, 90_000);
    // Whatever a late retry, poll or reconciler run would do, it does within this wait.
    await new Promise((r) => setTimeout(r, 6000));

    const { requests } = (await (await fetch(`${p.sandbox.url}/_sandbox/requests?path=/pbs&method=POST`)).json()) as {
      requests: Logged[];
    };
    const creates = requests.filter((r) => r.path === '/pbs');
    expect(creates).toEqual([expect.objectContaining({ status: 201, fault: 'answer dropped' })]);
    // The list went with the order's tag (no patient data: the order id only).
    expect(creates[0]!.body).toMatchObject({ tags: { bridge_order_id: order.id } });

    const { studies } = (await (await fetch(`${p.sandbox.url}/_sandbox/pbs`)).json()) as {
      studies: Array<{ pbs_study_id: string }>;
    };
    expect(studies.map((s) => s.pbs_study_id)).toEqual([order.hematoStudyId]);
    const versions = await p.db.manager.find(ReportEntity, { where: { orderId: order.id } });
    expect(versions.map((v) => v.version)).toEqual([1]);
    const orus = p.receiver.messages.filter((m) => m.includes('PL-WF2-LOST'));
    expect(orus).toHaveLength(1);
    expect(
      orus[0]!
        .split('\r')
        .find((s) => s.startsWith('OBR|'))!
        .split('|')[25],
    ).toBe('F');

    const events: Array<{ detail: Record<string, any> }> = await p.db.query(
      `SELECT detail FROM order_events WHERE order_id = $1 AND to_status = 'study_created'`,
      [order.id],
    );
    expect(events).toHaveLength(1);
    expect(events[0]!.detail).toMatchObject({
      studyId: order.hematoStudyId,
      workflow: 2,
      answer: expect.stringMatching(/lost/),
    });
  }, 150_000);
});
