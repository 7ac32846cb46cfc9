import { randomBytes } from 'node:crypto';
import { loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { MessageSealer } from '@hemato/privacy';
import { TestFhirServer, createTestDatabase, testEnv } from '@hemato/testing';
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { Browser } from 'playwright-core';
import type { DataSource } from 'typeorm';
import { bootstrapGateway, type RunningGateway } from '../../apps/gateway/src/bootstrap';
import { apiSignIn, createUser, launchChromium, newContext, screenshot, signIn } from '../dashboard/dashboard-harness';
import { API_KEY, freePort, patient } from './fhir-helpers';

const EHR_TOKEN = 'ehr-static-token-refusals';
const ADMIN = { email: 'sub-refusals-admin@lab.example', password: 'admin-password-123' };

/**
 * ServiceRequests the EHR's Subscription brings in and the intake refuses: nobody asked us for them (a
 * notification is not the order's request), so they are kept as refused inbound messages that staff see on the
 * Health page, once per ServiceRequest version however often a catch-up meets them again.
 */
describe('ServiceRequests refused on the Subscription path', () => {
  let ehr: TestFhirServer;
  let gw: RunningGateway;
  let ds: DataSource;
  let hook: string;
  let base: string;
  let databaseUrl: string;
  let port: number;
  let pat: Patient & { id: string };
  let n = 0;
  let browser: Browser | undefined;
  // The same keys across a restart: the stored messages are sealed with them.
  const keys = {
    PHI_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    PHI_HMAC_KEY: randomBytes(32).toString('hex'),
  };

  async function start(codes: string): Promise<void> {
    gw = await bootstrapGateway(
      loadConfig(
        testEnv({
          DATABASE_URL: databaseUrl,
          FHIR_API_KEYS: API_KEY,
          PORT: String(port),
          PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
          FHIR_EHR_BASE_URL: ehr.baseUrl,
          FHIR_EHR_AUTH: 'bearer',
          FHIR_EHR_TOKEN: EHR_TOKEN,
          IMAGE_URL_ALLOWED_HOSTS: 'images.hospital.example',
          HEMATO_ORDER_CODES: codes,
          ...keys,
        }),
      ),
    );
    base = gw.urls.http!;
    hook = `${base}/fhir/subscription-hook`;
  }

  beforeAll(async () => {
    ehr = await TestFhirServer.start({ auth: { kind: 'bearer', token: EHR_TOKEN } });
    databaseUrl = await createTestDatabase('fhirsubrefused');
    ds = await createDataSource({ url: databaseUrl }).initialize();
    await runMigrations(ds);
    port = await freePort();
    // Only the smear panel is mapped at first.
    await start('LN|34994-4=pbs_v1');
    await createUser(ds, ADMIN.email, 'admin', ADMIN.password);
    pat = await ehr.create(patient(undefined as never, 'MRN-REFUSED') as unknown as Patient);
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.app.close();
    await ds?.destroy();
    await ehr?.close();
  });

  async function order(over: Partial<ServiceRequest> = {}): Promise<ServiceRequest & { id: string }> {
    const sr = await ehr.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:ehr:placer', value: `RF-${++n}` }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
      subject: { reference: `Patient/${pat.id}` },
      ...over,
    });
    await ehr.settled();
    return sr;
  }

  /** A rest-hook notification carrying the ServiceRequest (empty: a catch-up), as the EHR sends it. */
  async function notify(sr?: ServiceRequest): Promise<string> {
    const res = await fetch(hook, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/fhir+json' },
      body: sr ? JSON.stringify(sr) : undefined,
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { issue: Array<{ diagnostics: string }> }).issue[0]!.diagnostics;
  }

  const refusedOf = (srId: string): Promise<Array<Record<string, any>>> =>
    ds.query(`SELECT * FROM inbound_messages WHERE control_id LIKE $1 ORDER BY received_at`, [
      `ServiceRequest/${srId}/%`,
    ]);

  const badImage = (url = 'https://reader:s3cret@elsewhere.example/smear/1.jpg'): Partial<ServiceRequest> => ({
    contained: [{ resourceType: 'Media', id: 'm1', status: 'completed', content: { contentType: 'image/jpeg', url } }],
    supportingInfo: [{ reference: '#m1' }],
  });

  it('keeps a notified ServiceRequest it refuses (an unmapped code) as a refused inbound message, once', async () => {
    const sr = await order({ code: { coding: [{ system: 'http://loinc.org', code: '57021-8' }] } });
    expect(await notify(sr)).toMatch(/0 order\(s\) created, 0 already known, 1 rejected/);
    const rows = await refusedOf(sr.id);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toMatchObject({
      channel: 'fhir',
      sender: 'ehr-subscription',
      control_id: `ServiceRequest/${sr.id}/_history/${sr.meta!.versionId}`,
      message_type: 'ServiceRequest',
      status: 'rejected',
    });
    expect(row.error).toMatch(/57021-8/);
    // The ServiceRequest as the EHR had it, sealed at rest like every inbound message.
    expect(row.raw).not.toContain(sr.id);
    const opened = JSON.parse(gw.app.get(MessageSealer, { strict: false }).open(row.raw)) as ServiceRequest;
    expect(opened).toMatchObject({ resourceType: 'ServiceRequest', id: sr.id });
    // The EHR sends the notification again: the same version is not kept twice.
    expect(await notify(sr)).toMatch(/1 rejected/);
    expect(await refusedOf(sr.id)).toHaveLength(1);
    expect(await ds.query(`SELECT count(*)::int AS n FROM orders`)).toEqual([{ n: 0 }]);
  });

  it('keeps one a catch-up refuses once per version, and a new version of it again', async () => {
    const sr = await order(badImage());
    expect(await notify()).toMatch(/1 rejected/);
    expect(await notify()).toMatch(/1 rejected/);
    const rows = await refusedOf(sr.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.error).toBe('Image host elsewhere.example is not in IMAGE_URL_ALLOWED_HOSTS');
    // Changed in the EHR, still refused: that version is another message.
    const v2 = await ehr.update({ ...sr, ...badImage('https://other.example/smear/1.jpg') });
    await ehr.settled();
    expect(await notify()).toMatch(/1 rejected/);
    const both = await refusedOf(sr.id);
    expect(both.map((r) => r.control_id)).toEqual([
      `ServiceRequest/${sr.id}/_history/${sr.meta!.versionId}`,
      `ServiceRequest/${sr.id}/_history/${v2.meta!.versionId}`,
    ]);
    expect(both[1]!.error).toBe('Image host other.example is not in IMAGE_URL_ALLOWED_HOSTS');
    // Revoked in the EHR before we ever had its order: nothing to stop, not a refusal (nothing kept).
    const revoked = await order({ status: 'revoked' });
    // (The refused one is met again: its latest version, kept already.)
    expect(await notify()).toMatch(/0 order\(s\) created, 0 already known, 1 rejected/);
    expect(await refusedOf(revoked.id)).toHaveLength(0);
    expect(await refusedOf(sr.id)).toHaveLength(2);
  });

  it('lists them on the Health page among the refused inbound messages, without the patient', async () => {
    // One naming its patient by identifier only (a logical reference), refused for its code.
    const logical = await order({
      code: { coding: [{ system: 'http://loinc.org', code: '57021-8' }] },
      subject: {
        identifier: { system: 'urn:oid:1.2.3.4.mrn', value: 'MRN-LOGICAL-77' },
        display: 'Testperson, Alex',
      },
    });
    expect(await notify(logical)).toMatch(/1 rejected/);
    const admin = (await apiSignIn(base, ADMIN.email, ADMIN.password)).cookie!;
    const res = await fetch(`${base}/api/admin/health`, { headers: { cookie: admin } });
    const health = (await res.json()) as { lastErrors: { inbound: Array<Record<string, any>> } };
    const listed = health.lastErrors.inbound.filter((m) => m.channel === 'fhir');
    expect(listed).toHaveLength(4);
    expect(listed.every((m) => m.sender === 'ehr-subscription' && m.status === 'rejected')).toBe(true);
    expect(listed.map((m) => m.error)).toContain('Image host other.example is not in IMAGE_URL_ALLOWED_HOSTS');
    const one = (await (
      await fetch(`${base}/api/admin/inbound/${listed[0]!.id}`, { headers: { cookie: admin } })
    ).json()) as { rawMasked: string };
    expect(one.rawMasked).toContain('"resourceType": "ServiceRequest"');
    expect(one.rawMasked).not.toContain('s3cret');
    const [kept] = await refusedOf(logical.id);
    const shown = (await (
      await fetch(`${base}/api/admin/inbound/${kept!.id}`, { headers: { cookie: admin } })
    ).json()) as { rawMasked: string };
    expect(shown.rawMasked).toContain('57021-8');
    expect(shown.rawMasked).not.toMatch(/MRN-LOGICAL-77|Testperson/);

    // "Did you get ServiceRequest/…?": found by the ServiceRequest, every version kept of it.
    const sr = (await ehr.search<ServiceRequest>('ServiceRequest', { identifier: 'urn:ehr:placer|RF-2' }))[0]!;
    const found = (await (
      await fetch(`${base}/api/admin/inbound?controlId=${encodeURIComponent(`ServiceRequest/${sr.id}`)}`, {
        headers: { cookie: admin },
      })
    ).json()) as { messages: Array<Record<string, any>> };
    expect(found.messages.map((m) => m.control_id).sort()).toEqual(
      (await refusedOf(sr.id!)).map((r) => r.control_id).sort(),
    );
    expect(found.messages).toHaveLength(2);
    expect(JSON.stringify(health)).not.toMatch(/MRN-REFUSED|Testperson/);
  });

  const replay = async (id: string, cookie: string) => {
    const res = await fetch(`${base}/api/admin/inbound/${id}/replay`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { ok: boolean; message: string };
  };
  const ordersOf = (placer: string): Promise<Array<Record<string, any>>> =>
    ds.query(`SELECT * FROM orders WHERE external_key = $1`, [`fhir:urn:ehr:placer|${placer}`]);

  it('replays one read again from the EHR as it is now: still refused says why, fixed in the EHR makes the order', async () => {
    const admin = (await apiSignIn(base, ADMIN.email, ADMIN.password)).cookie!;
    const sr = (await ehr.search<ServiceRequest>('ServiceRequest', { identifier: 'urn:ehr:placer|RF-2' }))[0]!;
    const [v1, v2] = await refusedOf(sr.id!);
    // Read again, the EHR's current version (v2) is refused for its own reason: the message says so and keeps it.
    expect(await replay(v1!.id, admin)).toEqual({
      ok: false,
      message: 'Still refused: Image host other.example is not in IMAGE_URL_ALLOWED_HOSTS',
    });
    expect((await refusedOf(sr.id!))[0]).toMatchObject({
      status: 'rejected',
      error: 'Image host other.example is not in IMAGE_URL_ALLOWED_HOSTS',
    });
    expect(await ordersOf('RF-2')).toHaveLength(0);

    // The order is corrected in the EHR (its notification lost): the replay takes it in, under the kept message.
    await ehr.update({ ...sr, id: sr.id!, ...badImage('https://images.hospital.example/smear/1.jpg') });
    await ehr.settled();
    const done = await replay(v1!.id, admin);
    expect(done.ok).toBe(true);
    expect(done.message).toMatch(
      new RegExp(`^Replayed: order HB\\d{12} created, from ServiceRequest/${sr.id} as the EHR has it now$`),
    );
    const [o] = await ordersOf('RF-2');
    expect(done.message).toContain(o!.filler_order_number);
    expect(o!.inbound_message_id).toBe(v1!.id);
    expect(o!.source_client).toBe('ehr-subscription');
    const events = await ds.query(`SELECT actor FROM order_events WHERE order_id = $1`, [o!.id]);
    expect(events.map((e: { actor: string }) => e.actor)).toContain(`admin:${ADMIN.email}`);
    expect(await ds.query(`SELECT source_url FROM image_files WHERE order_id = $1`, [o!.id])).toEqual([
      { source_url: 'https://images.hospital.example/smear/1.jpg' },
    ]);
    expect((await refusedOf(sr.id!))[0]).toMatchObject({ id: v1!.id, status: 'accepted', error: null });

    // The other refused version of it: its order exists now, and it leaves the refused list too.
    expect(await replay(v2!.id, admin)).toEqual({
      ok: true,
      message: `Replayed: the order exists already (${o!.filler_order_number}), from ServiceRequest/${sr.id} as the EHR has it now`,
    });
    expect(await ordersOf('RF-2')).toHaveLength(1);
    expect(await replay(v1!.id, admin)).toEqual({
      ok: false,
      message: 'This ServiceRequest was accepted and its order exists: nothing to replay',
    });
    // A catch-up meeting it now finds its order: nothing refused, nothing kept.
    expect(await notify()).toMatch(/0 order\(s\) created, 1 already known, 0 rejected/);
    expect(await refusedOf(sr.id!)).toHaveLength(2);

    // A refused request a client POSTed itself was answered with its OperationOutcome: not replayed.
    const posted: Array<{ id: string }> = await ds.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, message_type, raw, status, error)
       VALUES ('fhir', 'lab-x', 'req-refused-1', 'ServiceRequest', '{"resourceType":"ServiceRequest","id":"x"}', 'rejected', 'no code')
       RETURNING id`,
    );
    expect((await replay(posted[0]!.id, admin)).message).toMatch(
      /^This message cannot be replayed: a FHIR request is answered when it is made/,
    );
  });

  it('replays one from the Health page once its code is mapped: the order is made', async () => {
    // The admin maps the code and restarts the gateway on the same database.
    await gw.app.close();
    await start('LN|34994-4=pbs_v1,LN|57021-8=pbs_v1+cbc_v1');
    const sr = (await ehr.search<ServiceRequest>('ServiceRequest', { identifier: 'urn:ehr:placer|RF-1' }))[0]!;
    const [row] = await refusedOf(sr.id!);
    browser = await launchChromium();
    const page = await (await newContext(browser)).newPage();
    await signIn(page, base, ADMIN.email, ADMIN.password);
    await page.goto(`${base}/admin/health`);
    const button = page.getByRole('button', { name: `Replay ${row!.control_id}` });
    await button.waitFor();
    const line = page.getByRole('row').filter({ has: button });
    expect(await line.innerText()).toMatch(
      /ehr-subscription ServiceRequest\/\S+\s+fhir ServiceRequest read from the EHR \(Subscription\) · rejected\s+No Hemato.AI task is configured for code http:\/\/loinc.org\|57021-8/,
    );
    await button.click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('The ServiceRequest is read again from the EHR').waitFor();
    await dialog.getByRole('button', { name: 'Replay' }).click();
    const status = page.getByRole('status');
    await status.waitFor();
    const said = await status.innerText();
    await screenshot(page, 'health-replay-fhir-subscription');
    expect(said).toMatch(/^Replayed: order HB\d{12} created, from ServiceRequest\/\S+ as the EHR has it now$/);
    const [o] = await ordersOf('RF-1');
    expect(o!.tasks).toEqual(['pbs_v1', 'cbc_v1']);
    expect(o!.inbound_message_id).toBe(row!.id);
    await button.waitFor({ state: 'detached', timeout: 15_000 });
  });

  it('keeps a new on-hold ServiceRequest it refuses (an unmapped code) too: only a hold too late to apply is let go', async () => {
    const sr = await order({ status: 'on-hold', code: { coding: [{ system: 'http://loinc.org', code: '00000-0' }] } });
    expect(await notify(sr)).toMatch(/0 order\(s\) created, 0 already known, 1 rejected/);
    const rows = await refusedOf(sr.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'rejected', sender: 'ehr-subscription' });
    expect(rows[0]!.error).toContain('No Hemato.AI task is configured for code http://loinc.org|00000-0');
  });
});
