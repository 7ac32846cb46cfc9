import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import type { RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';
import { AUDIENCE, call, type OrgKey, rsaKey, sha256, signJwt, startSandbox } from './sandbox-helpers';

/** Key-signed JWTs: every rule of the reference's "JWT Specifications", one broken at a time. */
describe('Hemato.AI sandbox: key-signed JWTs', () => {
  let sb: RunningSandbox;
  let key: OrgKey;
  let other: OrgKey;

  beforeAll(async () => {
    key = rsaKey();
    other = rsaKey();
    // The organisation comes from SANDBOX_CONFIG_FILE, as a deployment would register it.
    const dir = mkdtempSync(path.join(tmpdir(), 'sandbox-jwt-'));
    const file = path.join(dir, 'sandbox.json');
    writeFileSync(
      file,
      JSON.stringify({
        organisations: [
          { id: 'lab.example.org', subjects: ['device-7'], keys: [{ kid: 'k1', public_key: key.publicPem }] },
        ],
      }),
    );
    sb = await startSandbox({ SANDBOX_CONFIG_FILE: file });
  });
  afterAll(() => sb.close());

  async function hello(token: string) {
    const a = await call(sb.url, 'POST', '/auth/hello', { token });
    return { status: a.status, results: a.body.results, error: a.body.error as string };
  }

  async function expectRefused(token: string, check: string, reason: RegExp) {
    const h = await hello(token);
    expect(h.status).toBe(401);
    expect(h.results.valid).toBe(false);
    expect(h.results.failed).toContain(check);
    const failed = h.results.checks.find((c: { check: string }) => c.check === check);
    expect(failed.detail).toMatch(reason);
    // And the API refuses it too.
    const api = await call(sb.url, 'POST', '/pbs', { token });
    expect(api.status).toBe(401);
  }

  it('accepts RS384 (no kid needed) and RS256 with kid, raw or with Bearer, aud as string or array', async () => {
    for (const token of [
      await signJwt(key.privateKey, { alg: 'RS384', kid: null }),
      await signJwt(key.privateKey, { alg: 'RS256', kid: 'k1', aud: AUDIENCE }),
    ]) {
      const h = await hello(token);
      expect(h.status).toBe(200);
      expect(h.results).toEqual(expect.objectContaining({ valid: true, method: 'key' }));
      expect((await call(sb.url, 'POST', '/pbs', { token })).status).toBe(201);
      expect((await call(sb.url, 'POST', '/pbs', { token: `Bearer ${token}` })).status).toBe(201);
    }
  });

  it('accepts kid in the claims, as the reference example shows it', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({
      jti: 'x1',
      iss: 'lab.example.org',
      sub: 'device-7',
      role: 'service',
      aud: [AUDIENCE],
      kid: 'k1',
      iat: now,
      exp: now + 60,
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT' })
      .sign(key.privateKey);
    expect((await hello(token)).status).toBe(200);
  });

  it('refuses HS256 (the alg in the reference example header)', async () => {
    await expectRefused(
      await signJwt(randomBytes(32), { alg: 'HS256' }),
      'alg',
      /HS256 is not accepted.*RS384 or RS256/,
    );
  });

  it('refuses RS256 without kid', async () => {
    await expectRefused(
      await signJwt(key.privateKey, { alg: 'RS256', kid: null }),
      'kid',
      /RS256 tokens must name their key/,
    );
  });

  it('refuses RS256 with kid only in the JOSE header: the reference lists kid among the claims', async () => {
    await expectRefused(
      await signJwt(key.privateKey, { alg: 'RS256', kid: 'k1', kidIn: 'header' }),
      'kid',
      /must carry kid as a claim/,
    );
  });

  it('refuses a header kid that names another key than the kid claim', async () => {
    await expectRefused(
      await signJwt(key.privateKey, { alg: 'RS256', kid: 'k1', headerKid: 'k2' }),
      'kid',
      /header kid k2 and the kid claim k1 name different keys/,
    );
    await expectRefused(
      await signJwt(key.privateKey, { alg: 'RS384', kid: 'k1', headerKid: 'k2' }),
      'kid',
      /different keys/,
    );
  });

  it('refuses a wrong audience', async () => {
    await expectRefused(
      await signJwt(key.privateKey, { aud: 'us.api.hemato.ai' }),
      'aud',
      /must be \(or include\) dev\.api\.hemato\.ai/,
    );
  });

  it('refuses an iat in the future', async () => {
    await expectRefused(await signJwt(key.privateKey, { iatOffsetS: 120 }), 'iat', /future/);
  });

  it('refuses a 61-minute-old iat even with a far exp', async () => {
    await expectRefused(
      await signJwt(key.privateKey, { iatOffsetS: -61 * 60, expOffsetS: 30 * 24 * 3600 }),
      'iat',
      /older than 1 hour/,
    );
  });

  it('refuses a key the organisation did not register, and an unknown kid', async () => {
    await expectRefused(await signJwt(other.privateKey), 'signature', /does not verify/);
    await expectRefused(await signJwt(key.privateKey, { kid: 'k9' }), 'key', /no registered public key with kid k9/);
  });

  it('refuses an unknown issuer, a missing claim, a bad role, a sub outside the organisation, an expired token', async () => {
    await expectRefused(
      await signJwt(key.privateKey, { iss: 'evil.example' }),
      'issuer',
      /not a registered organisation/,
    );
    await expectRefused(await signJwt(key.privateKey, { omit: ['jti'] }), 'claims', /missing required claim\(s\): jti/);
    await expectRefused(await signJwt(key.privateKey, { role: 'root' }), 'role', /admin, user, device, service/);
    await expectRefused(
      await signJwt(key.privateKey, { sub: 'someone-else' }),
      'sub',
      /not a user of lab\.example\.org/,
    );
    await expectRefused(await signJwt(key.privateKey, { iatOffsetS: -120, expOffsetS: 60 }), 'exp', /expired/);
  });

  it('refuses an expired session token and explains it', async () => {
    const short = await startSandbox({ SANDBOX_SESSION_TTL_S: '1' });
    try {
      const login = await call(short.url, 'POST', '/auth/login', {
        json: { user: 'ali@example.com', pass_hash: sha256('hemato-sandbox') },
      });
      const token = login.body.results.token.HY_APP_AUTH_v1 as string;
      expect((await call(short.url, 'POST', '/pbs', { token })).status).toBe(201);
      // Wait out the 1 s lifetime plus the sandbox's 5 s clock-skew tolerance.
      await new Promise((r) => setTimeout(r, 7_000));
      const h = await call(short.url, 'POST', '/auth/hello', { token });
      expect(h.status).toBe(401);
      expect(h.body.results.reason).toMatch(/session expired/);
      expect((await call(short.url, 'POST', '/pbs', { token })).status).toBe(401);
    } finally {
      await short.close();
    }
  });

  it('registers an organisation at runtime through the sandbox admin endpoint', async () => {
    const k = rsaKey();
    const reg = await call(sb.url, 'POST', '/_sandbox/organisations', {
      json: { id: 'clinic.example', keys: [{ kid: 'c1', public_key: k.publicPem }] },
    });
    expect(reg.status).toBe(201);
    expect((await hello(await signJwt(k.privateKey, { iss: 'clinic.example', kid: 'c1', sub: 'anyone' }))).status).toBe(
      200,
    );
  });
});
