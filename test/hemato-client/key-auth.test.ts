import { decodeJwt, decodeProtectedHeader } from 'jose';
import { HematoApiError, KeyAuth, type HematoClient } from '@hemato/hemato-client';
import { startLocalHemato, type LocalHematoServer } from './support/local-hemato-server';
import { keyClient, registerTestKey, type TestKey } from './support/fixtures';

describe('Hemato client: key auth (self-signed JWT) against a local Hemato.AI', () => {
  let server: LocalHematoServer;
  let key: TestKey;
  const clients: HematoClient[] = [];
  const track = (c: HematoClient) => (clients.push(c), c);

  beforeEach(async () => {
    server = await startLocalHemato({ audience: 'dev.api.hemato.ai' });
    key = registerTestKey(server);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  it.each(['RS384', 'RS256'] as const)('signs %s tokens with kid and every required claim', async (alg) => {
    const client = track(keyClient(server, key, { auth: { alg, role: 'device' } as never }));
    const hello = await client.hello();
    expect(hello.accepted).toBe(true);
    const claims = (hello.results as { claims: Record<string, unknown> }).claims;
    expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'kid', 'role', 'sub']);
    expect(claims.kid).toBe(key.kid);
    expect(claims).toMatchObject({ aud: 'dev.api.hemato.ai', iss: key.issuer, sub: key.subject, role: 'device' });
    const exp = Number(claims.exp);
    const iat = Number(claims.iat);
    expect(exp - iat).toBeGreaterThan(0);
    expect(exp - iat).toBeLessThanOrEqual(3600);
    const { studyId } = await client.createStudy({ proxy: 'P-9' });
    expect(server.studies.get(studyId)!.tags).toEqual({ proxy: 'P-9' });
    expect(server.log.every((r) => r.auth === 'key')).toBe(true);
  });

  it('uses the region host as audience: a client pointed at another region is refused', async () => {
    const client = track(keyClient(server, key, { region: 'eu' }));
    const hello = await client.hello();
    expect(hello).toMatchObject({ accepted: false, status: 401, error: 'aud must be dev.api.hemato.ai' });
    const err = await client.createStudy().catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'http', status: 401 });
  });

  it('an expired token (iat two hours ago) is refused, re-signed once, then the call fails', async () => {
    const client = track(keyClient(server, key, { auth: { now: () => Date.now() - 2 * 3600_000 } as never }));
    const hello = await client.hello();
    expect(hello).toMatchObject({ accepted: false, status: 401 });
    expect(hello.error).toMatch(/older than 1 hour|expired/);
    const before = server.log.length;
    const err = (await client.getStatus('s-1').catch((e: unknown) => e)) as HematoApiError;
    expect(err).toBeInstanceOf(HematoApiError);
    expect(err).toMatchObject({ kind: 'http', status: 401, path: '/pbs/s-1/status' });
    const attempts = server.log.slice(before);
    expect(attempts).toHaveLength(2);
    // the retry carried a freshly signed token
    expect(new Set(attempts.map((a) => a.jti)).size).toBe(2);
  });

  it('a token issued in the future is refused', async () => {
    const client = track(keyClient(server, key, { auth: { now: () => Date.now() + 10 * 60_000 } as never }));
    const hello = await client.hello();
    expect(hello).toMatchObject({ accepted: false, status: 401, error: 'token issued in the future (iat)' });
    await expect(client.createStudy()).rejects.toMatchObject({ status: 401 });
  });

  it('reuses a token while fresh and signs a new one before it nears expiry', async () => {
    // Starts in the past so that moving the clock forward never signs a token from the future.
    let now = Date.now() - 100_000;
    const client = track(
      keyClient(server, key, { auth: { now: () => now, tokenTtlSeconds: 120, refreshBeforeSeconds: 30 } as never }),
    );
    await client.heartbeat();
    await client.createStudy();
    await client.createStudy();
    now += 60_000; // 60 s left: still fresh
    await client.createStudy();
    now += 35_000; // 25 s left: inside the refresh window
    await client.createStudy();
    const jtis = server.log.filter((r) => r.path === '/pbs').map((r) => r.jti);
    expect(jtis).toHaveLength(4);
    expect(new Set(jtis.slice(0, 3)).size).toBe(1);
    expect(jtis[3]).not.toBe(jtis[0]);
    expect(server.log.find((r) => r.path === '/heartbeat')!.auth).toBeUndefined();
  });

  it('a key the service does not know gets a 401 with the reason', async () => {
    const stranger = { ...registerTestKey(server, 'k-stranger'), kid: 'k-unregistered' };
    const client = track(keyClient(server, stranger));
    const hello = await client.hello();
    expect(hello).toMatchObject({ accepted: false, error: 'unknown kid' });
  });

  it('sends the compact JWS as-is in Authorization (no Bearer prefix)', async () => {
    const client = track(keyClient(server, key));
    await client.createStudy();
    expect(server.log.map((r) => r.authScheme)).toEqual(['raw']);
    const auth = new KeyAuth(
      { method: 'key', privateKey: key.privateKey, keyId: key.kid, issuer: key.issuer, subject: key.subject },
      client.endpoint.audience,
    );
    const seen = await auth.token();
    expect(seen.split('.')).toHaveLength(3);
    expect(decodeProtectedHeader(seen)).toEqual({ alg: 'RS384', kid: key.kid, typ: 'JWT' });
    expect(decodeJwt(seen).aud).toBe('dev.api.hemato.ai');
  });
});
