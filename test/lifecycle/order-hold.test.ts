import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { HOLDABLE, Reconciler } from '@hemato/orders';
import { OrderEntity, OrderEventEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { API_KEY, fhirFetch, patient, serviceRequest } from '../fhir/fhir-helpers';
import { sendHl7Order, sendOrderAwaitingImages } from './support/hl7-order';
import { postJson, putBytes } from './support/image-put';

/** An ORC-1 `control` for the order `placer` (ORM^O01); `enhanced` asks for the application ACK (ORR^O02). */
function orderControl(control: 'HD' | 'RL', placer: string, controlId: string, enhanced = false): string {
  const orm = sampleOrm({ controlId, placer, control });
  return enhanced ? orm.replace('|2.5.1|||||UNICODE UTF-8', '|2.5.1|||AL|AL||UNICODE UTF-8') : orm;
}

/**
 * Holding an order (HL7 ORC-1 HD, FHIR ServiceRequest on-hold) before anything of it went to Hemato.AI: it takes
 * images but runs no step, the reconciler leaves it alone, and once released (ORC-1 RL, the ServiceRequest active
 * again) it goes on to its result. An order already at Hemato.AI cannot be held.
 */
describe('an order held by the hospital, then released', () => {
  let p: Pipeline;
  let client: MllpClient;
  const auth = { authorization: 'Bearer test-api-key' };
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 21, parasites: true });

  beforeAll(async () => {
    p = await startPipeline('order-hold', { FHIR_API_KEYS: API_KEY });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  const statusOf = async (id: string) => (await p.db.manager.findOneByOrFail(OrderEntity, { id })).status;
  /** What Hemato.AI (the sandbox) was asked about this order: its requests tagged with the order id. */
  const sentToHemato = (orderId: string) =>
    p.sandbox.sandbox.requests.list().filter((r) => r.tags?.bridge_order_id === orderId);
  const timeline = (orderId: string) =>
    p.db.manager.find(OrderEventEntity, { where: { orderId }, order: { id: 'ASC' } });

  it('HL7: held (HD) it takes its images but goes nowhere, even when stale; released (RL) it completes', async () => {
    const order = await sendOrderAwaitingImages(p, client, 'PL-HOLD-1');

    const held = await client.send(orderControl('HD', 'PL-HOLD-1', 'C-HOLD-1-HD', true), 'C-HOLD-1-HD');
    expect(held.code).toBe('AA');
    // ORR^O02: ORC-1 OH (on hold as requested), our filler number, ORC-5 HD (on hold).
    expect(held.raw).toMatch(new RegExp(`\\rORC\\|OH\\|PL-HOLD-1\\^LIS\\|${order.fillerOrderNumber}\\^[^|]*\\|\\|HD`));
    expect(await statusOf(order.id)).toBe(OrderStatus.OnHold);

    // The images come in while it is held, and the set is closed: it stays held.
    const base = `${p.httpUrl}/api/orders/${order.id}/images`;
    expect((await putBytes(`${base}/smear.png`, auth, smear)).status).toBe(200);
    expect((await postJson(`${base}/complete`, auth)).status).toBe(200);
    const afterImages = await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id });
    expect(afterImages.status).toBe(OrderStatus.OnHold);
    expect(afterImages.imagesComplete).toBe(true);

    // Long past STALE_AFTER_MS, the reconciler re-drives moving orders: not a held one.
    await p.worker!.get(Reconciler).run(Date.now() + 24 * 3600_000);
    expect(await statusOf(order.id)).toBe(OrderStatus.OnHold);
    expect((await timeline(order.id)).map((e) => e.type)).not.toContain('reconciled');
    expect(sentToHemato(order.id)).toEqual([]);

    const released = await client.send(orderControl('RL', 'PL-HOLD-1', 'C-HOLD-1-RL'), 'C-HOLD-1-RL');
    expect(released.code).toBe('AA');
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 60_000);
    expect(sentToHemato(order.id).length).toBeGreaterThan(0);
    await eventually(async () => p.receiver.forPlacer('PL-HOLD-1').length > 0, 20_000, 'the ORU');

    // The timeline says who held it and who released it.
    const moves = (await timeline(order.id))
      .filter((e) => e.type === 'status_changed')
      .map((e) => [e.fromStatus, e.toStatus, e.detail?.action ?? null]);
    expect(moves).toEqual(
      expect.arrayContaining([
        ['awaiting_images', 'on_hold', 'hold'],
        ['on_hold', 'received', 'release'],
      ]),
    );
  }, 120_000);

  it('HL7: an order already at Hemato.AI cannot be held (AE, ORC-1 UH), and one not held cannot be released', async () => {
    const order = await sendHl7Order(p, client, 'PL-HOLD-2', { images: [{ data: smear, subtype: 'PNG' }] });
    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 60_000);

    const hold = await client.send(orderControl('HD', 'PL-HOLD-2', 'C-HOLD-2-HD', true), 'C-HOLD-2-HD');
    expect(hold.code).toBe('AE');
    expect(hold.raw).toMatch(/\rORC\|UH\|PL-HOLD-2\^LIS/);
    expect(hold.raw).toContain('cannot be put on hold');
    expect(await statusOf(order.id)).toBe(OrderStatus.Completed);

    const release = await client.send(orderControl('RL', 'PL-HOLD-2', 'C-HOLD-2-RL'), 'C-HOLD-2-RL');
    expect(release.code).toBe('AE');
    expect(release.raw).toContain('cannot be released: The order is not on hold');

    const unknown = await client.send(orderControl('HD', 'PL-NO-SUCH', 'C-HOLD-NONE'), 'C-HOLD-NONE');
    expect(unknown.code).toBe('AE');
    expect(unknown.raw).toContain('No order with placer number PL-NO-SUCH');
  }, 120_000);

  it('FHIR: a ServiceRequest on-hold is taken in held, shown on-hold, released when active again, and can be revoked while held', async () => {
    const sr = serviceRequest({
      status: 'on-hold',
      contained: [{ ...patient('ph'), id: 'pat' }],
      subject: { reference: '#pat' },
    });
    const created = await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, { body: sr });
    expect(created.status).toBe(201);
    const id: string = created.body.id;
    expect(await statusOf(id)).toBe(OrderStatus.OnHold);
    expect((await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest/${id}`)).body.status).toBe('on-hold');
    expect((await fhirFetch(`${p.httpUrl}/fhir/Task/${id}`)).body.status).toBe('on-hold');
    // Stored, then held at once: the first step never ran.
    expect((await timeline(id)).filter((e) => e.type === 'status_changed').map((e) => e.toStatus)).toEqual([
      'received',
      'on_hold',
    ]);

    // Active again: released, and it goes on (no image yet: it waits for one).
    const active = await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, { body: { ...sr, status: 'active' } });
    expect(active.status).toBe(200);
    await orderReaches(p.db, { id }, OrderStatus.AwaitingImages, 20_000);
    expect((await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest/${id}`)).body.status).toBe('active');

    // Held again while it waits, then revoked: cancelled.
    expect((await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, { body: sr })).status).toBe(200);
    expect(await statusOf(id)).toBe(OrderStatus.OnHold);
    const revoked = await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, { body: { ...sr, status: 'revoked' } });
    expect(revoked.status).toBe(200);
    expect(await statusOf(id)).toBe(OrderStatus.Cancelled);
  }, 120_000);

  it('FHIR: on-hold for an order already at Hemato.AI is refused (422), and the order goes on', async () => {
    const sr = serviceRequest({
      contained: [{ ...patient('pl'), id: 'pat' }],
      subject: { reference: '#pat' },
    });
    const created = await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, { body: sr });
    expect(created.status).toBe(201);
    const id: string = created.body.id;
    const base = `${p.httpUrl}/api/orders/${id}/images`;
    await orderReaches(p.db, { id }, OrderStatus.AwaitingImages, 20_000);
    expect((await putBytes(`${base}/smear.png`, auth, smear)).status).toBe(200);
    expect((await postJson(`${base}/complete`, auth)).status).toBe(200);
    // Past `ready`: its study is at Hemato.AI (or its result is in).
    const past = await eventually(
      async () => {
        const s = await statusOf(id);
        return HOLDABLE.includes(s) ? null : s;
      },
      60_000,
      'the order at Hemato.AI',
    );

    const hold = await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, { body: { ...sr, status: 'on-hold' } });
    expect(hold.status).toBe(422);
    expect(hold.body.issue[0].diagnostics).toMatch(/^The order is [a-z_]+: /);
    expect(hold.body.issue[0].expression).toEqual(['ServiceRequest.status']);
    expect(HOLDABLE).not.toContain(await statusOf(id));
    expect(past).not.toBe(OrderStatus.OnHold);
  }, 120_000);
});
