/*
 * Who may call the Subscription rest-hook (it acts EHR-wide: reads and searches the EHR, takes orders in as
 * `ehr-subscription`, may revoke any client's order). FHIR_SUBSCRIPTION_CLIENTS names those callers; a
 * valid X-Signature is always accepted; everyone else with a valid token gets 403. The Subscription we
 * create on the EHR carries a key the hook accepts.
 */
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { TestFhirServer, fhirValidationErrors } from '@hemato/testing';
import { signBody } from '@hemato/fhir';
import type { Patient, ServiceRequest, Subscription } from '@medplum/fhirtypes';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { API_KEY, fhirFetch, freePort, patient, serveJson, startGateway } from './fhir-helpers';

const EHR_TOKEN = 'ehr-static-token-sc';
const SECRET = 'subscription-clients-secret-0123456789';
const LAB_KEY = 'sc-lab-key-0123456789';
const EHR_KEY = 'sc-ehr-key-0123456789';

describe('FHIR Subscription hook: only its own callers', () => {
  let ehr: TestFhirServer;
  let jwks: { url: string; close: () => Promise<void> };
  let privateKey: CryptoKey;
  let pat: Patient & { id: string };
  const running: Array<{ gw: RunningGateway; ds: DataSource }> = [];

  beforeAll(async () => {
    ehr = await TestFhirServer.start({ auth: { kind: 'bearer', token: EHR_TOKEN } });
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    jwks = await serveJson({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
    pat = await ehr.create(patient(undefined as never, 'MRN-SUBCLIENTS') as unknown as Patient);
  });
  afterAll(async () => {
    for (const r of running) {
      await r.gw.app.close();
      await r.ds.destroy();
    }
    await jwks?.close();
    await ehr?.close();
  });

  async function gateway(label: string, env: Record<string, string>): Promise<{ hook: string; ds: DataSource }> {
    const port = await freePort();
    const started = await startGateway(label, {
      PORT: String(port),
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
      FHIR_EHR_BASE_URL: ehr.baseUrl,
      FHIR_EHR_AUTH: 'bearer',
      FHIR_EHR_TOKEN: EHR_TOKEN,
      FHIR_API_KEYS: `${API_KEY},lab:${LAB_KEY},ehr:${EHR_KEY}`,
      FHIR_JWKS_URL: jwks.url,
      ...env,
    });
    running.push(started);
    return { hook: `http://127.0.0.1:${port}/fhir/subscription-hook`, ds: started.ds };
  }

  const jwt = (sub: string) =>
    new SignJWT({ scope: 'system/ServiceRequest.c' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);

  async function newOrder(): Promise<ServiceRequest & { id: string }> {
    const sr = await ehr.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:ehr:placer', value: `SC-${Date.now()}-${Math.random()}` }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
      subject: { reference: `Patient/${pat.id}` },
    });
    await ehr.settled();
    return sr;
  }

  const taken = async (ds: DataSource, sr: ServiceRequest) =>
    (
      await ds.query(`SELECT count(*)::int AS n FROM orders WHERE details->'fhir'->>'serviceRequest' = $1`, [
        `ServiceRequest/${sr.id}`,
      ])
    )[0].n as number;

  /** An empty POST (catch-up search of the EHR) with this bearer token, or none. */
  const poke = (hook: string, token?: string) => fhirFetch(hook, { method: 'POST', token: token ?? null });

  it('with FHIR_SUBSCRIPTION_CLIENTS: only the named clients (keys or JWT clients) and a valid X-Signature get in; others 403, no EHR request', async () => {
    const { hook, ds } = await gateway('fhirsubclients', {
      FHIR_SUBSCRIPTION_CLIENTS: 'ehr,jwt:epic-hook',
      FHIR_ADMIN_CLIENTS: 'jwt:ops',
      FHIR_SUBSCRIPTION_SECRET: SECRET,
      FHIR_SUBSCRIPTION_AUTO_CREATE: 'true',
    });
    // The Subscription we create on the EHR carries a key the hook accepts (the first key is refused here).
    let ours: Subscription[] = [];
    for (let i = 0; i < 200 && ours.length === 0; i++) {
      ours = (await ehr.search<Subscription>('Subscription', { status: 'active' })).filter(
        (s) => s.channel.endpoint === hook,
      );
      if (ours.length === 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(ours).toHaveLength(1);
    expect(ours[0]!.channel.header).toEqual([`Authorization: Bearer ${EHR_KEY}`]);
    // ... and it works: a new order is notified and taken in.
    const notified = await newOrder();
    expect(await taken(ds, notified)).toBe(1);
    await ehr.update({ ...ours[0]!, id: ours[0]!.id!, status: 'off' });

    const missed = await newOrder();
    const before = ehr.requests.length;
    // Valid tokens of clients not named: the lab, the first (bare, EHR-wide) key, an EHR-wide JWT client.
    for (const token of [LAB_KEY, API_KEY, await jwt('ops')]) {
      const r = await poke(hook, token);
      expect(r.status).toBe(403);
      expect(r.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue[0].code).toBe('forbidden');
      expect(r.body.issue[0].diagnostics).toMatch(/FHIR_SUBSCRIPTION_CLIENTS/);
      expect(fhirValidationErrors(r.body)).toEqual([]);
    }
    // A bad token is still 401, a bad signature too.
    expect((await poke(hook, 'not-a-key')).status).toBe(401);
    expect(
      (
        await fetch(hook, {
          method: 'POST',
          headers: { 'content-type': 'application/fhir+json', 'x-signature': signBody('wrong', '{}') },
          body: JSON.stringify({ resourceType: 'ServiceRequest', id: missed.id }),
        })
      ).status,
    ).toBe(401);
    expect(ehr.requests.length).toBe(before);
    expect(await taken(ds, missed)).toBe(0);

    // The named JWT client, then the named key: accepted (catch-up takes the missed order in once).
    expect((await poke(hook, await jwt('epic-hook'))).status).toBe(200);
    expect(await taken(ds, missed)).toBe(1);
    expect((await poke(hook, EHR_KEY)).status).toBe(200);
    expect(await taken(ds, missed)).toBe(1);

    // A valid X-Signature needs no token.
    const signed = await newOrder();
    const body = JSON.stringify({ ...signed });
    const r = await fetch(hook, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'x-signature': signBody(SECRET, body) },
      body,
    });
    expect(r.status).toBe(200);
    expect(await taken(ds, signed)).toBe(1);
  });

  it('FHIR_SUBSCRIPTION_CLIENTS=* accepts every valid client, as before', async () => {
    const { hook, ds } = await gateway('fhirsubclientsall', { FHIR_SUBSCRIPTION_CLIENTS: '*' });
    const sr = await newOrder();
    expect((await poke(hook, LAB_KEY)).status).toBe(200);
    expect(await taken(ds, sr)).toBe(1);
    expect((await poke(hook)).status).toBe(401);
  });
});
