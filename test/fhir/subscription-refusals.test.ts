import { randomBytes } from 'node:crypto';
import { loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { MessageSealer } from '@hemato/privacy';
import { TestFhirServer, createTestDatabase, testEnv } from '@hemato/testing';
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { DataSource } from 'typeorm';
import { bootstrapGateway, type RunningGateway } from '../../apps/gateway/src/bootstrap';
import { apiSignIn, createUser } from '../dashboard/dashboard-harness';
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
    const admin = (await apiSignIn(base, ADMIN.email, ADMIN.password)).cookie!;
    const res = await fetch(`${base}/api/admin/health`, { headers: { cookie: admin } });
    const health = (await res.json()) as { lastErrors: { inbound: Array<Record<string, any>> } };
    const listed = health.lastErrors.inbound.filter((m) => m.channel === 'fhir');
    expect(listed).toHaveLength(3);
    expect(listed.every((m) => m.sender === 'ehr-subscription' && m.status === 'rejected')).toBe(true);
    expect(listed.map((m) => m.error)).toContain('Image host other.example is not in IMAGE_URL_ALLOWED_HOSTS');
    const one = (await (
      await fetch(`${base}/api/admin/inbound/${listed[0]!.id}`, { headers: { cookie: admin } })
    ).json()) as { rawMasked: string };
    expect(one.rawMasked).toContain('"resourceType": "ServiceRequest"');
    expect(one.rawMasked).not.toContain('s3cret');
    expect(JSON.stringify(health)).not.toMatch(/MRN-REFUSED|Testperson/);
  });
});
