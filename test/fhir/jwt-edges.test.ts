import { createHmac } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { fhirFetch, serveJson, startGateway } from './fhir-helpers';

/**
 * FHIR bearer JWTs an attacker would try, over real HTTP: each must answer 401 as if no token were sent,
 * and a well-formed token of the identity provider 200.
 */
describe('FHIR JWT edge cases', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;
  let jwks: { url: string; close: () => Promise<void> };
  let privateKey: CryptoKey;
  let publicKey: CryptoKey;
  let jwk: Record<string, unknown>;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    ({ privateKey, publicKey } = pair);
    jwk = { ...(await exportJWK(publicKey)), kid: 'k1', use: 'sig' };
    jwks = await serveJson({ keys: [jwk] });
    ({ gw, ds, base } = await startGateway('fhirjwt', {
      FHIR_API_KEYS: 'lab-a:key-of-lab-a-0123456789',
      FHIR_JWKS_URL: jwks.url,
      FHIR_JWT_ISSUER: 'https://idp.test',
      FHIR_JWT_AUDIENCE: 'hemato-bridge',
    }));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
    await jwks?.close();
  });

  const now = () => Math.floor(Date.now() / 1000);
  const sign = (
    over: { kid?: string; iss?: string; aud?: string; exp?: number | null; nbf?: number; sub?: string } = {},
  ) => {
    let j = new SignJWT({ scope: 'system/*.*' })
      .setProtectedHeader({ alg: 'RS256', kid: over.kid ?? 'k1' })
      .setIssuer(over.iss ?? 'https://idp.test')
      .setAudience(over.aud ?? 'hemato-bridge')
      .setSubject(over.sub ?? 'jwt-client')
      .setIssuedAt();
    if (over.exp !== null) j = j.setExpirationTime(over.exp ?? now() + 300);
    if (over.nbf !== undefined) j = j.setNotBefore(over.nbf);
    return j.sign(privateKey);
  };
  const statusWith = async (token: string) =>
    (await fhirFetch(`${base}/fhir/Task?_id=00000000-0000-4000-8000-000000000000`, { token })).status;

  it('takes a well-formed token of the identity provider', async () => {
    expect(await statusWith(await sign())).toBe(200);
  });

  it('refuses a token without exp: it would be valid for ever once leaked', async () => {
    expect(await statusWith(await sign({ exp: null }))).toBe(401);
  });

  it('refuses expired, not yet valid, wrong issuer or audience, and unknown kid', async () => {
    const cases: Record<string, string> = {
      expired: await sign({ exp: now() - 120 }),
      'not before in an hour': await sign({ nbf: now() + 3600 }),
      'wrong issuer': await sign({ iss: 'https://evil.test' }),
      'wrong audience': await sign({ aud: 'another-api' }),
      'unknown kid': await sign({ kid: 'k-unknown' }),
    };
    for (const [name, token] of Object.entries(cases)) {
      expect({ name, status: await statusWith(token) }).toEqual({ name, status: 401 });
    }
  });

  it('refuses alg none and an HS256 token signed with the public key (algorithm confusion)', async () => {
    const claims = { scope: 'system/*.*', sub: 'forger', iss: 'https://idp.test', aud: 'hemato-bridge' };
    const none = new UnsecuredJWT(claims).setExpirationTime(now() + 300).encode();
    expect(await statusWith(none)).toBe(401);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    for (const secret of [await exportSPKI(publicKey), JSON.stringify(jwk)]) {
      const head = b64({ alg: 'HS256', kid: 'k1', typ: 'JWT' });
      const body = b64({ ...claims, iat: now(), exp: now() + 300 });
      const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
      expect(await statusWith(`${head}.${body}.${sig}`)).toBe(401);
    }
  });
});
