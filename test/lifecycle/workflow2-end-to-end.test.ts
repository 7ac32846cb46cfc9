import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { isRfc3339DateTime } from '@hemato/hemato-client';
import { OrderEventEntity } from '@hemato/persistence';
import { orderReaches, generateSmear, phiValues, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

interface LoggedRequest {
  method: string;
  path: string;
  body?: any;
  status?: number;
  pbs_study_id?: string;
}

describe('workflow 2: Hemato.AI downloads the list and the files from signed gateway URLs', () => {
  let p: Pipeline;
  let client: MllpClient;

  beforeAll(async () => {
    p = await startPipeline('wf2', { HEMATO_WORKFLOW: '2' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  it('a parasite smear order completes with an ORU carrying B50, with no file uploaded by us', async () => {
    const smear = generateSmear({ width: 640, height: 480, format: 'png', seed: 7, parasites: true });
    const ack = await client.send(
      sampleOrm({ controlId: 'WF2-1', placer: 'PL-WF2-1', images: [{ data: smear, subtype: 'PNG' }] }),
      'WF2-1',
    );
    expect(ack.code).toBe('AA');

    const oru = await p.receiver.waitFor((m) => m.includes('PL-WF2-1'), 90_000);
    const obx = oru.split('\r').filter((s) => s.startsWith('OBX|'));
    expect(obx.some((s) => /ring trophozoite/i.test(s.split('|')[3] ?? ''))).toBe(true);
    expect(obx.some((s) => s.split('|')[2] === 'CWE' && (s.split('|')[5] ?? '').startsWith('B50^'))).toBe(true);

    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-WF2-1' }, OrderStatus.Completed, 30_000);
    expect(order.hematoStudyId).toBeTruthy();

    const { requests } = (await (await fetch(`${p.sandbox.url}/_sandbox/requests`)).json()) as {
      requests: LoggedRequest[];
    };
    const creates = requests.filter((r) => r.method === 'POST' && r.path === '/pbs');
    expect(creates).toHaveLength(1);
    const listUrl = String(creates[0]!.body?.list_url ?? '');
    expect(listUrl.startsWith(`${p.httpUrl}/`)).toBe(true);
    expect(creates[0]!.status).toBe(201);
    expect(requests.filter((r) => /^\/pbs\/[^/]+\/files$/.test(r.path))).toEqual([]);

    // The list served at the signed URL names the file by signed URL, and holds no patient data.
    const list = await fetch(listUrl);
    expect(list.status).toBe(200);
    const doc = (await list.json()) as { files: string[] };
    expect(doc.files).toHaveLength(1);
    const text = JSON.stringify(doc).toLowerCase();
    for (const value of phiValues()) expect(text).not.toContain(value.toLowerCase());
    const file = await fetch(doc.files[0]!);
    expect(file.status).toBe(200);
    expect(Buffer.from(await file.arrayBuffer()).equals(smear)).toBe(true);

    // A tampered signature gets nothing.
    const parts = listUrl.split('/');
    const sig = parts[parts.length - 2]!;
    parts[parts.length - 2] = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    expect((await fetch(parts.join('/'))).status).toBe(401);
  });

  it('with callbacks dropped, a study already ready at the first poll still completes (never seen processing)', async () => {
    const faults = (body: Record<string, unknown>) =>
      fetch(`${p.sandbox.url}/_sandbox/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await faults({ callback_drop_rate: 1 })).status).toBeLessThan(300);
    try {
      const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 8, parasites: true });
      const ack = await client.send(
        sampleOrm({ controlId: 'WF2-2', placer: 'PL-WF2-2', images: [{ data: smear, subtype: 'PNG' }] }),
        'WF2-2',
      );
      expect(ack.code).toBe('AA');
      // The sandbox takes 300 ms; our first poll comes 1 s after the study is created: it sees `ready` at once.
      await p.receiver.waitFor((m) => m.includes('PL-WF2-2'), 40_000);
      const order = await orderReaches(p.db, { placerOrderNumber: 'PL-WF2-2' }, OrderStatus.Completed, 20_000);
      const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id }, order: { id: 'ASC' } });
      const path = events.filter((e) => e.type === 'status_changed').map((e) => e.toStatus);
      expect(path).toEqual([
        'received',
        'ready',
        'study_created',
        'processing',
        'report_ready',
        'delivering',
        'completed',
      ]);
    } finally {
      await faults({});
    }
  }, 60_000);

  it("an HL7 order's collection time (OBR-7) reaches the list as an RFC 3339 sample_collection_timestamp", async () => {
    async function listOf(placer: string, collectedAt: string): Promise<Record<string, unknown>> {
      const smear = generateSmear({ width: 160, height: 120, format: 'png', seed: 9, parasites: false });
      const ack = await client.send(
        sampleOrm({ controlId: placer, placer, collectedAt, images: [{ data: smear, subtype: 'PNG' }] }),
        placer,
      );
      expect(ack.code).toBe('AA');
      const order = await orderReaches(p.db, { placerOrderNumber: placer }, OrderStatus.Completed, 40_000);
      const { requests } = (await (await fetch(`${p.sandbox.url}/_sandbox/requests`)).json()) as {
        requests: LoggedRequest[];
      };
      const create = requests.find(
        (r) => r.method === 'POST' && r.path === '/pbs' && r.pbs_study_id === order.hematoStudyId,
      );
      const list = await fetch(String(create!.body.list_url));
      expect(list.status).toBe(200);
      return (await list.json()) as Record<string, unknown>;
    }
    // OBR-7 with an offset: the same instant, written as RFC 3339 with that offset.
    const withOffset = await listOf('PL-WF2-TS1', '20260101113000+0100');
    expect(withOffset.sample_collection_timestamp).toBe('2026-01-01T11:30:00+01:00');
    expect(isRfc3339DateTime(String(withOffset.sample_collection_timestamp))).toBe(true);
    // OBR-7 without an offset is the sender's local time in a zone we do not know: not sent rather than guessed.
    const withoutOffset = await listOf('PL-WF2-TS2', '20260101113000');
    expect(withoutOffset).not.toHaveProperty('sample_collection_timestamp');
  }, 90_000);
});
