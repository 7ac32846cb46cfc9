import type { TestFhirServer } from '@hemato/testing';
import { BACKPORT_PROFILE, fhirValidationErrors, type HookDelivery } from '@hemato/testing';
import { signBody } from '@hemato/fhir';
import type { Media, Patient, ServiceRequest, Subscription } from '@medplum/fhirtypes';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { FhirSubscriptionManager } from '../../apps/gateway/src/fhir/fhir-subscription-manager.service';
import { API_KEY, PNG_1x1, fhirFetch, patient, startGatewayWithEhr } from './fhir-helpers';

const EHR_TOKEN = 'ehr-static-token-abc';
const SECRET = 'subscription-secret-0123456789abcdef';
// Besides the bare API_KEY (first: the key the auto-created Subscription sends): a lab client and the
// EHR under its own name, EHR-wide through FHIR_ADMIN_CLIENTS.
const LAB_KEY = 'lab-x-key-0123456789';
const EHR_KEY = 'ehr-named-key-0123456789';

describe('FHIR Subscription intake', () => {
  let ehr: TestFhirServer;
  let gw: RunningGateway;
  let ds: DataSource;
  let hook: string;
  let close: () => Promise<void>;
  let pat: Patient & { id: string };
  let n = 0;

  beforeAll(async () => {
    ({ ehr, gw, ds, hook, close } = await startGatewayWithEhr(
      'fhirsub',
      {
        FHIR_SUBSCRIPTION_SECRET: SECRET,
        FHIR_SUBSCRIPTION_AUTO_CREATE: 'true',
        FHIR_API_KEYS: `${API_KEY},lab-x:${LAB_KEY},ehr:${EHR_KEY}`,
        FHIR_ADMIN_CLIENTS: 'ehr',
      },
      EHR_TOKEN,
    ));
    pat = await ehr.create(patient(undefined as never, 'MRN-SUB') as unknown as Patient);
    // The gateway creates its Subscription on start (in the background); these tests use their own, so switch it off.
    let auto: Subscription[] = [];
    for (let i = 0; i < 200 && auto.length === 0; i++) {
      auto = await ehr.search<Subscription>('Subscription', { status: 'active' });
      if (auto.length === 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(auto).toHaveLength(1);
    for (const s of auto) await ehr.update({ ...s, id: s.id!, status: 'off' });
  });
  afterAll(async () => close?.());

  async function subscribe(sub: Partial<Subscription>): Promise<Subscription & { id: string }> {
    const s = await ehr.create<Subscription>({
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'test',
      criteria: 'ServiceRequest?status=active',
      ...sub,
      channel: { type: 'rest-hook', endpoint: hook, ...sub.channel },
    } as Subscription);
    await ehr.settled();
    return s;
  }

  async function off(s: Subscription & { id: string }) {
    const current = await ehr.repo.readResource<Subscription>('Subscription', s.id);
    await ehr.update({ ...current, id: s.id, status: 'off' });
  }

  async function order(overrides: Partial<ServiceRequest> = {}): Promise<ServiceRequest & { id: string }> {
    const media = await ehr.create<Media>({
      resourceType: 'Media',
      status: 'completed',
      content: { contentType: 'image/png', data: PNG_1x1, title: `smear-${++n}.png` },
    });
    const sr = await ehr.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:ehr:placer', value: `EHR-${Date.now()}-${++n}` }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
      subject: { reference: `Patient/${pat.id}` },
      supportingInfo: [{ reference: `Media/${media.id}` }],
      ...overrides,
    });
    await ehr.settled();
    return sr;
  }

  async function orderFor(sr: ServiceRequest): Promise<{ id: string; details: any; images: number } | undefined> {
    const key = `fhir:${sr.identifier![0]!.system}|${sr.identifier![0]!.value}`;
    const rows = await ds.query(
      `SELECT o.id, o.details, (SELECT count(*)::int FROM image_files i WHERE i.order_id = o.id) AS images FROM orders o WHERE external_key = $1`,
      [key],
    );
    return rows[0];
  }

  const lastDelivery = (subId: string): HookDelivery =>
    ehr.hookDeliveries.filter((d) => d.subscriptionId === subId).at(-1)!;

  it('Medplum style: the POSTed resource with a valid X-Signature leads to reading the ServiceRequest, Patient and Media from the EHR', async () => {
    const sub = await subscribe({
      channel: { type: 'rest-hook', payload: 'application/fhir+json' },
      extension: [{ url: 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret', valueString: SECRET }],
    });
    const sr = await order();
    const d = lastDelivery(sub.id);
    expect(d.style).toBe('medplum');
    expect(d.headers['x-signature']).toBeDefined();
    expect(d.status).toBe(200);
    const o = await orderFor(sr);
    expect(o?.images).toBe(1);
    expect(o?.details.fhir.serviceRequest).toBe(`ServiceRequest/${sr.id}`);
    const [{ reads }] = [
      { reads: ehr.requests.filter((r) => r.method === 'GET' && r.path === `/Patient/${pat.id}`).length },
    ];
    expect(reads).toBeGreaterThan(0);
    // The EHR was read with the static bearer token.
    expect(
      ehr.requests
        .filter((r) => r.path === `/ServiceRequest/${sr.id}`)
        .every((r) => r.authorization === `Bearer ${EHR_TOKEN}`),
    ).toBe(true);

    // A tampered body fails the signature check and creates nothing.
    const forged = JSON.stringify({ ...JSON.parse(d.body!), id: 'forged' });
    const bad = await fetch(hook, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'x-signature': d.headers['x-signature']! },
      body: forged,
    });
    expect(bad.status).toBe(401);
    const good = await fetch(hook, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'x-signature': signBody(SECRET, d.body!) },
      body: d.body,
    });
    expect(good.status).toBe(200);
    // Signed over the bytes as sent, whatever their layout (a sender that pretty-prints its JSON).
    const pretty = JSON.stringify(JSON.parse(d.body!), null, 2);
    const prettyRes = await fetch(hook, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'x-signature': signBody(SECRET, pretty) },
      body: pretty,
    });
    expect(prettyRes.status).toBe(200);
    const [{ c }] = await ds.query(
      `SELECT count(*)::int AS c FROM orders WHERE details->'fhir'->>'serviceRequest' = $1`,
      [`ServiceRequest/${sr.id}`],
    );
    expect(c).toBe(1);
    await off(sub);
  });

  it('HAPI style: PUT {endpoint}/ServiceRequest/{id}', async () => {
    ehr.restHookStyle = 'hapi';
    const sub = await subscribe({
      channel: { type: 'rest-hook', payload: 'application/fhir+json', header: [`Authorization: Bearer ${API_KEY}`] },
    });
    const sr = await order();
    const d = lastDelivery(sub.id);
    expect(d.method).toBe('PUT');
    expect(d.url).toBe(`${hook}/ServiceRequest/${sr.id}`);
    expect(d.status).toBe(200);
    expect((await orderFor(sr))?.images).toBe(1);
    ehr.restHookStyle = 'medplum';
    await off(sub);
  });

  it('answers 503 when the EHR cannot be read, so the EHR sends the notification again', async () => {
    const sub = await subscribe({
      channel: { type: 'rest-hook', payload: 'application/fhir+json', header: [`Authorization: Bearer ${API_KEY}`] },
    });
    ehr.failBeforeProcessing = 1; // our read of the ServiceRequest gets a 503
    const sr = await order();
    const d = lastDelivery(sub.id);
    expect(d.status).toBe(503);
    expect(await orderFor(sr)).toBeUndefined();
    const again = await ehr.replay(d);
    expect(again.status).toBe(200);
    expect(await orderFor(sr)).toBeDefined();
    await off(sub);
  });

  it('empty POST (no payload): the active ServiceRequests are searched and taken in once', async () => {
    const sub = await subscribe({ channel: { type: 'rest-hook', header: [`Authorization: Bearer ${API_KEY}`] } });
    const sr = await order();
    const d = lastDelivery(sub.id);
    expect(d.style).toBe('empty');
    expect(d.body).toBeUndefined();
    expect(d.status).toBe(200);
    expect(await orderFor(sr)).toBeDefined();
    const unauth = await fetch(hook, { method: 'POST' });
    expect(unauth.status).toBe(401);
    await off(sub);
  });

  it('R4 Backport: handshake activates, event-notification takes the order, a duplicate event is skipped, a gap and a heartbeat trigger a catch-up', async () => {
    const sub = await subscribe({
      meta: { profile: [BACKPORT_PROFILE] },
      channel: { type: 'rest-hook', payload: 'application/fhir+json', header: [`Authorization: Bearer ${API_KEY}`] },
    });
    const handshake = lastDelivery(sub.id);
    expect(handshake.kind).toBe('handshake');
    expect(handshake.status).toBe(200);
    expect((await ehr.repo.readResource<Subscription>('Subscription', sub.id)).status).toBe('active');
    const subRef = `${ehr.baseUrl}/Subscription/${sub.id}`;
    const [state] = await ds.query(`SELECT handshake_at FROM fhir_subscription_state WHERE subscription = $1`, [
      subRef,
    ]);
    expect(state.handshake_at).not.toBeNull();

    const sr1 = await order();
    const ev1 = lastDelivery(sub.id);
    expect(ev1.kind).toBe('event-notification');
    expect(ev1.eventNumber).toBe(1);
    expect(ev1.status).toBe(200);
    expect(await orderFor(sr1)).toBeDefined();

    // The same notification again: recorded as a duplicate, no second order.
    const dup = await fetch(hook, { method: 'POST', headers: ev1.headers, body: ev1.body });
    expect(dup.status).toBe(200);
    // Parsed in this realm: the `fhir` validator checks arrays with instanceof.
    const dupAnswer = JSON.parse(await dup.text());
    expect(JSON.stringify(dupAnswer)).toContain('1 duplicate event(s)');
    expect(fhirValidationErrors(dupAnswer)).toEqual([]);
    const [{ c }] = await ds.query(
      `SELECT count(*)::int AS c FROM orders WHERE details->'fhir'->>'serviceRequest' = $1`,
      [`ServiceRequest/${sr1.id}`],
    );
    expect(c).toBe(1);

    // Events 2 and 3 are lost; an order made meanwhile (under another subscription's silence) is found by the catch-up.
    await off(sub);
    const missed = await order();
    expect(await orderFor(missed)).toBeUndefined();
    const cur = await ehr.repo.readResource<Subscription>('Subscription', sub.id);
    await ehr.repo.updateResource({ ...cur, status: 'active' });
    ehr.skipEvents(sub.id, 2);
    const sr4 = await order();
    const ev4 = lastDelivery(sub.id);
    expect(ev4.eventNumber).toBe(4);
    expect(ev4.status).toBe(200);
    expect(await orderFor(sr4)).toBeDefined();
    expect(await orderFor(missed)).toBeDefined();
    const [gaps] = await ds.query(
      `SELECT gaps_detected, last_event_number::int AS last FROM fhir_subscription_state WHERE subscription = $1`,
      [subRef],
    );
    expect(gaps).toEqual({ gaps_detected: 1, last: 4 });

    const hb = await ehr.sendHeartbeat(sub.id);
    expect(hb.kind).toBe('heartbeat');
    expect(hb.status).toBe(200);
    const [beat] = await ds.query(`SELECT heartbeat_at FROM fhir_subscription_state WHERE subscription = $1`, [subRef]);
    expect(beat.heartbeat_at).not.toBeNull();
    await off(sub);
  });

  it('R4 Backport full-resource payload and a malformed notification', async () => {
    const sub = await subscribe({
      meta: { profile: [BACKPORT_PROFILE] },
      channel: {
        type: 'rest-hook',
        payload: 'application/fhir+json',
        header: [`Authorization: Bearer ${API_KEY}`],
        extension: [
          {
            url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content',
            valueCode: 'full-resource',
          },
        ],
      },
    });
    const sr = await order();
    const ev = lastDelivery(sub.id);
    expect(JSON.parse(ev.body!).entry[1].resource.id).toBe(sr.id);
    expect(ev.status).toBe(200);
    expect(await orderFor(sr)).toBeDefined();
    await off(sub);

    const bad = await fhirFetch(hook, {
      body: {
        resourceType: 'Bundle',
        type: 'history',
        entry: [{ resource: { resourceType: 'Parameters', parameter: [{ name: 'type', valueCode: 'nonsense' }] } }],
      },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.resourceType).toBe('OperationOutcome');
  });

  it('R4B: a subscription-notification Bundle (SubscriptionStatus first) takes the order, id-only or full-resource; a heartbeat is answered', async () => {
    const subscription = { reference: `${ehr.baseUrl}/Subscription/r4b-topic-1` };
    const notification = (events: number, entries: unknown[], type = 'event-notification') => ({
      resourceType: 'Bundle',
      type: 'subscription-notification',
      timestamp: new Date().toISOString(),
      entry: [
        {
          fullUrl: 'urn:uuid:5d0d8a4e-3c55-4a57-9d6b-0d3c1a2b0001',
          resource: {
            resourceType: 'SubscriptionStatus',
            status: 'active',
            type,
            eventsSinceSubscriptionStart: String(events),
            subscription,
            topic: 'http://example.org/SubscriptionTopic/smear-orders',
            ...(type === 'event-notification'
              ? {
                  notificationEvent: [
                    {
                      eventNumber: String(events),
                      timestamp: new Date().toISOString(),
                      focus: { reference: `${ehr.baseUrl}/ServiceRequest/${(entries[0] as { id: string }).id}` },
                    },
                  ],
                }
              : {}),
          },
        },
        ...entries.map((r) => ({ fullUrl: `${ehr.baseUrl}/ServiceRequest/${(r as { id: string }).id}`, resource: r })),
      ],
    });
    // id-only: the ServiceRequest is read from the EHR.
    const idOnly = await order();
    const first = notification(1, [{ resourceType: 'ServiceRequest', id: idOnly.id }]);
    (first.entry[1] as { resource?: unknown }).resource = undefined;
    const r1 = await fhirFetch(hook, { body: first });
    expect(r1.status).toBe(200);
    expect(await orderFor(idOnly)).toBeDefined();
    // full-resource: the ServiceRequest is in the Bundle.
    const full = await order();
    const r2 = await fhirFetch(hook, { body: notification(2, [full]) });
    expect(r2.status).toBe(200);
    expect(await orderFor(full)).toBeDefined();
    const hb = await fhirFetch(hook, { body: notification(2, [], 'heartbeat') });
    expect(hb.status).toBe(200);
    const [state] = await ds.query(
      `SELECT heartbeat_at, last_event_number::int AS last, gaps_detected FROM fhir_subscription_state WHERE subscription = $1`,
      [subscription.reference],
    );
    expect(state).toMatchObject({ last: 2, gaps_detected: 0 });
    expect(state.heartbeat_at).not.toBeNull();
  });

  it("refuses a lab client's key on the hook (403, no EHR search); orders taken in through the hook are the EHR's: EHR-wide callers read them back, a lab client does not see them", async () => {
    const sr = await order(); // no Subscription is active: nothing is notified
    expect(await orderFor(sr)).toBeUndefined();
    // A lab client's key is valid for its own orders, not for the hook: the hook acts EHR-wide (it once
    // answered 200 and searched the EHR for every active ServiceRequest).
    const ehrRequests = ehr.requests.length;
    for (const path of ['', `/ServiceRequest/${sr.id}`]) {
      const refused = await fetch(`${hook}${path}`, {
        method: path ? 'PUT' : 'POST',
        headers: { authorization: `Bearer ${LAB_KEY}`, 'content-type': 'application/fhir+json' },
        body: path ? JSON.stringify(sr) : undefined,
      });
      expect(refused.status).toBe(403);
      expect(refused.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      const outcome = JSON.parse(await refused.text());
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue[0].code).toBe('forbidden');
      expect(fhirValidationErrors(outcome)).toEqual([]);
    }
    expect(ehr.requests.length).toBe(ehrRequests);
    expect(await orderFor(sr)).toBeUndefined();

    // The EHR's own (EHR-wide) key is accepted: an empty POST catches up.
    const poke = await fetch(hook, { method: 'POST', headers: { authorization: `Bearer ${EHR_KEY}` } });
    expect(poke.status).toBe(200);
    const o = (await orderFor(sr))!;
    expect(o).toBeDefined();
    const [{ source_client }] = await ds.query(`SELECT source_client FROM orders WHERE id = $1`, [o.id]);
    expect(source_client).toBe('ehr-subscription');

    const base = hook.replace(/\/subscription-hook$/, '');
    const ehrRef = `${ehr.baseUrl}/ServiceRequest/${sr.id}`;
    for (const token of [API_KEY, EHR_KEY]) {
      const task = await fhirFetch(`${base}/Task/${o.id}`, { token });
      expect(task.status).toBe(200);
      expect(task.body.focus.reference).toBe(ehrRef);
      expect((await fhirFetch(`${base}/Task?focus=${encodeURIComponent(ehrRef)}`, { token })).body.total).toBe(1);
    }
    expect((await fhirFetch(`${base}/Task/${o.id}`, { token: LAB_KEY })).status).toBe(404);
    expect((await fhirFetch(`${base}/Task?focus=${encodeURIComponent(ehrRef)}`, { token: LAB_KEY })).body.total).toBe(
      0,
    );
  });

  it('creates our Subscription on the EHR at start and re-creates it when the EHR switched it off', async () => {
    const ours = () =>
      ehr.search<Subscription>('Subscription', { _tag: 'urn:hemato-bridge:subscription|service-request-intake' });
    const before = await ours();
    expect(before.length).toBe(1);
    expect(before[0]!.channel.endpoint).toBe(hook);
    expect(before[0]!.channel.header).toEqual([`Authorization: Bearer ${API_KEY}`]);
    expect(fhirValidationErrors(before[0]!)).toEqual([]);
    // It was switched off in beforeAll: ensure() makes a new one.
    const manager = gw.app.get(FhirSubscriptionManager);
    const created = await manager.ensure();
    await ehr.settled();
    expect(created.id).not.toBe(before[0]!.id);
    expect((await ehr.repo.readResource<Subscription>('Subscription', created.id!)).status).toBe('active');
    // Active now: ensure() keeps it.
    expect((await manager.ensure()).id).toBe(created.id);
    const sr = await order();
    expect(await orderFor(sr)).toBeDefined();
  });
});
