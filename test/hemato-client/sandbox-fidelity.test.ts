/**
 * The client against the real sandbox (apps/hemato-sandbox) on points where the reference
 * (shared/spec/hemato-ai-api.md) is explicit and an earlier review found the two drifting apart.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { zipSync } from 'fflate';
import { loadConfig } from '@hemato/common';
import { HematoClient, KeyAuth, type HematoKeyAuthOptions } from '@hemato/hemato-client';
import { generateSmear } from '@hemato/testing';
import { bootstrapSandbox, type RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';
import { FAST_RETRY } from './support/fixtures';

process.env.LOG_LEVEL ??= 'warn';

interface LoggedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  status?: number;
  body?: any;
}

describe('Hemato client against apps/hemato-sandbox: reference fidelity', () => {
  let sandbox: RunningSandbox;
  let privateKey: KeyObject;
  const clients: HematoClient[] = [];

  beforeAll(async () => {
    sandbox = await bootstrapSandbox(
      loadConfig({ HOST: '127.0.0.1', SANDBOX_PORT: '0', SANDBOX_PROCESSING_MS: '100', LOG_LEVEL: 'silent' }, [
        'core',
        'sandbox',
      ]),
    );
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    privateKey = pair.privateKey;
    const reg = await fetch(`${sandbox.url}/_sandbox/organisations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        id: 'org-fidelity',
        subjects: ['svc-fidelity'],
        keys: [{ kid: 'kid-fidelity', public_key: pair.publicKey.export({ type: 'spki', format: 'pem' }) }],
      }),
    });
    expect(reg.status).toBeLessThan(300);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await sandbox.close();
  });

  function keyClient(auth: Partial<HematoKeyAuthOptions> = {}): HematoClient {
    const c = new HematoClient({
      baseUrl: sandbox.url,
      region: 'dev',
      auth: {
        method: 'key',
        privateKey,
        keyId: 'kid-fidelity',
        issuer: 'org-fidelity',
        subject: 'svc-fidelity',
        ...auth,
      },
      retry: FAST_RETRY,
    });
    clients.push(c);
    return c;
  }

  async function requests(): Promise<LoggedRequest[]> {
    const res = await fetch(`${sandbox.url}/_sandbox/requests`);
    return ((await res.json()) as { requests: LoggedRequest[] }).requests;
  }

  describe('"A token issued in future is invalid"', () => {
    it('a client clock 20 s ahead of the service still gets its tokens accepted (iat is signed 30 s back)', async () => {
      const ahead = keyClient({ now: () => Date.now() + 20_000 });
      const hello = await ahead.hello();
      expect(hello).toMatchObject({ accepted: true, status: 200 });
      await expect(ahead.createStudy({ proxy: 'px-skew' })).resolves.toMatchObject({ studyId: expect.any(String) });
    });

    it('the token stays inside the 1-hour age limit counted from its iat', async () => {
      const auth = new KeyAuth(
        {
          method: 'key',
          privateKey,
          keyId: 'kid-fidelity',
          issuer: 'org-fidelity',
          subject: 'svc-fidelity',
          tokenTtlSeconds: 3600,
        },
        'dev.api.hemato.ai',
      );
      const token = await auth.token();
      const claims = decodeJwt(token) as { iat: number; exp: number };
      const nowS = Date.now() / 1000;
      expect(claims.iat).toBeLessThanOrEqual(nowS - 25);
      expect(claims.exp - claims.iat).toBeLessThanOrEqual(3600);
      const hello = await fetch(`${sandbox.url}/auth/hello`, { method: 'POST', headers: { authorization: token } });
      expect(hello.status).toBe(200);
    });
  });

  describe('kid: "Only required if using `RS256` signing algorithm" (a JWT claim in the reference\'s table)', () => {
    it.each(['RS256', 'RS384'] as const)(
      '%s tokens carry kid as a claim and in the header, and are accepted',
      async (alg) => {
        const c = keyClient({ alg });
        expect(await c.hello()).toMatchObject({ accepted: true, status: 200 });
        await expect(c.createStudy({ proxy: `px-${alg}` })).resolves.toMatchObject({ studyId: expect.any(String) });
        const token = await new KeyAuth(
          { method: 'key', privateKey, keyId: 'kid-fidelity', issuer: 'org-fidelity', subject: 'svc-fidelity', alg },
          'dev.api.hemato.ai',
        ).token();
        expect(decodeJwt(token).kid).toBe('kid-fidelity');
        expect(decodeProtectedHeader(token).kid).toBe('kid-fidelity');
      },
    );
  });

  describe('uploads: the endpoint "expects either "file_name" or "content_type" query parameters"', () => {
    it.each([
      ['png', 'image/png'],
      ['jpeg', 'image/jpeg'],
      ['zip', 'application/zip'],
    ] as const)('a %s upload carries ?content_type=%s and the same Content-Type header', async (format, type) => {
      const c = keyClient();
      const { studyId } = await c.createStudy({ proxy: `px-up-${format}` });
      const image = generateSmear({ width: 64, height: 64, format: format === 'zip' ? 'png' : format, seed: 3 });
      const bytes = format === 'zip' ? Buffer.from(zipSync({ 'a.png': new Uint8Array(image) })) : image;
      await c.uploadFile(studyId, bytes, type);
      const upload = (await requests()).find((r) => r.method === 'POST' && r.path === `/pbs/${studyId}/files`);
      expect(upload).toMatchObject({ status: 201, query: { content_type: type } });
    });
  });
});
