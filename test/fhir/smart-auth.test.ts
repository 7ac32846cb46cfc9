import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '@hemato/common';
import { EhrClient, EhrHttpError, SmartAuthError, SmartBackendAuth } from '@hemato/fhir';
import { TestFhirServer } from '@hemato/testing';
import type { Patient } from '@medplum/fhirtypes';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { patient } from './fhir-helpers';

describe('SMART Backend Services client against the test EHR', () => {
  let ehr: TestFhirServer;
  let rsKey: CryptoKey;
  let esPem: string;
  let pat: Patient & { id: string };

  beforeAll(async () => {
    const rs = await generateKeyPair('RS384', { extractable: true });
    const es = await generateKeyPair('ES384', { extractable: true });
    rsKey = rs.privateKey;
    esPem = await exportPKCS8(es.privateKey);
    ehr = await TestFhirServer.start({
      auth: {
        kind: 'smart',
        expiresIn: 300,
        clients: [
          { clientId: 'bridge-rs', jwks: [{ ...(await exportJWK(rs.publicKey)), kid: 'rs-1', alg: 'RS384' }] },
          {
            clientId: 'bridge-es',
            jwks: [{ ...(await exportJWK(es.publicKey)), kid: 'es-1', alg: 'ES384' }],
            allowedScopes: ['system/ServiceRequest.read', 'system/Patient.read'],
          },
        ],
      },
    });
    pat = await ehr.create(patient(undefined as never) as unknown as Patient);
  });
  afterAll(async () => ehr?.close());

  it('discovers the token endpoint, gets a client_credentials token with an RS384 private_key_jwt, caches it and renews it before expires_in', async () => {
    let now = Date.now();
    const smart = new SmartBackendAuth({
      fhirBaseUrl: ehr.baseUrl,
      clientId: 'bridge-rs',
      privateKey: rsKey,
      keyId: 'rs-1',
      alg: 'RS384',
      scopes: 'system/Patient.read system/DiagnosticReport.write',
      now: () => now,
    });
    const client = new EhrClient(ehr.baseUrl, { kind: 'smart', smart });
    const issuedBefore = ehr.tokensIssued.length;

    expect((await client.read<Patient>('Patient', pat.id)).id).toBe(pat.id);
    expect((await client.read<Patient>('Patient', pat.id)).id).toBe(pat.id);
    expect(ehr.tokensIssued.length - issuedBefore).toBe(1);
    const first = ehr.tokensIssued.at(-1)!;
    expect(first).toMatchObject({ clientId: 'bridge-rs', scope: 'system/Patient.read system/DiagnosticReport.write' });
    expect(
      ehr.requests
        .filter((r) => r.path === `/Patient/${pat.id}`)
        .slice(-2)
        .map((r) => r.authorization),
    ).toEqual([`Bearer ${first.token}`, `Bearer ${first.token}`]);

    now += 200_000; // still well within expires_in (300 s): the cached token is used
    expect(await smart.getToken()).toBe(first.token);
    expect(ehr.tokensIssued.length - issuedBefore).toBe(1);

    now += 50_000; // 250 s: inside the renewal margin before expiry: a new token is fetched
    const renewed = await smart.getToken();
    expect(renewed).not.toBe(first.token);
    expect(ehr.tokensIssued.length - issuedBefore).toBe(2);
    expect(ehr.tokensIssued.at(-1)!.token).toBe(renewed);
  });

  it('fetches a new token when the EHR answers 401 to a cached one', async () => {
    const smart = new SmartBackendAuth({
      fhirBaseUrl: ehr.baseUrl,
      clientId: 'bridge-rs',
      privateKey: rsKey,
      keyId: 'rs-1',
      alg: 'RS384',
      scopes: 'system/Patient.read',
    });
    const client = new EhrClient(ehr.baseUrl, { kind: 'smart', smart });
    await client.read('Patient', pat.id);
    const before = ehr.tokensIssued.length;
    ehr.revokeTokens();
    expect((await client.read<Patient>('Patient', pat.id)).id).toBe(pat.id);
    expect(ehr.tokensIssued.length).toBe(before + 1);
  });

  it('signs ES384 with the key file from config and only gets the scopes it is allowed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'smart-'));
    const keyFile = path.join(dir, 'key.pem');
    writeFileSync(keyFile, esPem, { mode: 0o600 });
    const config = loadConfig(
      {
        NODE_ENV: 'test',
        FHIR_EHR_BASE_URL: ehr.baseUrl,
        FHIR_EHR_AUTH: 'smart',
        FHIR_SMART_CLIENT_ID: 'bridge-es',
        FHIR_SMART_KEY_FILE: keyFile,
        FHIR_SMART_KEY_ID: 'es-1',
        FHIR_SMART_ALG: 'ES384',
        FHIR_SMART_SCOPES: 'system/ServiceRequest.read system/Patient.read system/DiagnosticReport.write',
      } as NodeJS.ProcessEnv,
      ['fhir'],
    );
    const client = (await EhrClient.fromConfig(config.fhir))!;
    expect(client.smart).toBeDefined();
    expect((await client.read<Patient>('Patient', pat.id)).id).toBe(pat.id);
    expect(ehr.tokensIssued.at(-1)).toMatchObject({
      clientId: 'bridge-es',
      scope: 'system/ServiceRequest.read system/Patient.read',
    });
  });

  it('reports a refused client assertion (unknown kid) as an error, and a wrong static token as 401', async () => {
    const smart = new SmartBackendAuth({
      fhirBaseUrl: ehr.baseUrl,
      clientId: 'bridge-rs',
      privateKey: rsKey,
      keyId: 'not-registered',
      alg: 'RS384',
      scopes: 'system/Patient.read',
    });
    await expect(smart.getToken()).rejects.toThrow(SmartAuthError);
    await expect(smart.getToken()).rejects.toMatchObject({ status: 401 });
    const bearer = new EhrClient(ehr.baseUrl, { kind: 'bearer', token: 'not-a-token' });
    await expect(bearer.read('Patient', pat.id)).rejects.toBeInstanceOf(EhrHttpError);
    await expect(bearer.read('Patient', pat.id)).rejects.toMatchObject({ status: 401 });
  });
  it('does not follow a redirect of the token request: the signed client assertion goes to no other server', async () => {
    const listen = async (server: Server) => {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    // Another server the token endpoint redirects to: it must receive nothing.
    const elsewhereGot: string[] = [];
    const elsewhere = createServer((req, res) => {
      elsewhereGot.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'stolen', token_type: 'bearer', expires_in: 300 }));
    });
    const elsewhereUrl = await listen(elsewhere);
    let base = '';
    const authServer = createServer((req, res) => {
      if (req.url === '/.well-known/smart-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token_endpoint: `${base}/token` }));
        return;
      }
      res.writeHead(307, { location: `${elsewhereUrl}/token` });
      res.end();
    });
    base = await listen(authServer);
    try {
      const smart = new SmartBackendAuth({
        fhirBaseUrl: base,
        clientId: 'bridge-rs',
        privateKey: rsKey,
        keyId: 'rs-1',
        alg: 'RS384',
        scopes: 'system/Patient.read',
      });
      await expect(smart.getToken()).rejects.toThrow(/SMART token request.*HTTP 307.*redirect.*not followed/);
      expect(elsewhereGot).toEqual([]);
    } finally {
      authServer.close();
      elsewhere.close();
    }
  });
});
