import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { OrderEntity, OrderEventEntity } from '@hemato/persistence';
import {
  eventually,
  orderReaches,
  generateSmear,
  phiValues,
  sampleOrm,
  startPipeline,
  type Pipeline,
} from '@hemato/testing';

/** OBX segments of an ORU, as [value type, identifier, value] triples. */
function obx(oru: string): Array<{ type: string; id: string; value: string }> {
  return oru
    .split('\r')
    .filter((s) => s.startsWith('OBX|'))
    .map((s) => {
      const f = s.split('|');
      return { type: f[2]!, id: f[3]!, value: f[5]! };
    });
}

describe('HL7 order to ORU^R01 through gateway, worker and the Hemato.AI sandbox', () => {
  let p: Pipeline;
  let client: MllpClient;

  beforeAll(async () => {
    p = await startPipeline('e2ehl7');
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });

  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  async function order(controlId: string, placer: string, parasites: boolean): Promise<OrderEntity> {
    const smear = generateSmear({ width: 640, height: 480, format: 'png', seed: parasites ? 7 : 8, parasites });
    const ack = await client.send(
      sampleOrm({ controlId, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      controlId,
    );
    expect(ack.code).toBe('AA');
    return eventually(
      () => p.db.manager.findOne(OrderEntity, { where: { placerOrderNumber: placer } }),
      10_000,
      'order row',
    );
  }

  it('a parasite smear comes back as an ORU carrying the ring trophozoite finding and a B50 diagnosis', async () => {
    const created = await order('E2E-PARA-1', 'PL-PARA-1', true);
    const oru = await p.receiver.waitFor((m) => m.includes('PL-PARA-1'), 90_000);
    expect(oru.split('\r')[0]).toMatch(/^MSH\|\^~\\&\|HEMATO-BRIDGE\|HEMATO\|.*\|ORU\^R01/);
    // PID is the hospital's own, not the proxy.
    expect(oru).toContain('MRN77001234');
    const obr = oru.split('\r').find((s) => s.startsWith('OBR|'))!;
    expect(obr).toContain(created.fillerOrderNumber);
    expect(obr.split('|')[25]).toBe('F');
    const values = obx(oru);
    expect(values.some((v) => /ring trophozoite/i.test(v.id))).toBe(true);
    expect(values.some((v) => v.type === 'CWE' && v.value.startsWith('B50^'))).toBe(true);

    const done = await orderReaches(p.db, { id: created.id }, OrderStatus.Completed, 30_000);
    expect(done.hematoStudyId).toBeTruthy();
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: created.id }, order: { id: 'ASC' } });
    const path = events.filter((e) => e.type === 'status_changed').map((e) => e.toStatus);
    expect(path).toEqual([
      'received',
      'ready',
      'study_created',
      'uploading',
      'tasks_requested',
      ...(path.includes('processing') ? ['processing'] : []),
      'report_ready',
      'delivering',
      'completed',
    ]);
  });

  it('a clean smear comes back without a parasite finding or B50', async () => {
    await order('E2E-CLEAN-1', 'PL-CLEAN-1', false);
    const oru = await p.receiver.waitFor((m) => m.includes('PL-CLEAN-1'), 90_000);
    const values = obx(oru);
    expect(values.some((v) => /ring trophozoite/i.test(v.id))).toBe(false);
    expect(values.some((v) => v.value.startsWith('B50^'))).toBe(false);
    expect(values.length).toBeGreaterThan(2);
  });

  it('sends Hemato.AI no patient data: the sandbox request log holds none of the PID values', async () => {
    const res = await fetch(`${p.sandbox.url}/_sandbox/requests`);
    const log = await res.text();
    expect(log.length).toBeGreaterThan(100);
    expect(log).toContain('patient_proxy_id');
    for (const value of phiValues()) expect(log.toLowerCase()).not.toContain(value.toLowerCase());
  });
});
