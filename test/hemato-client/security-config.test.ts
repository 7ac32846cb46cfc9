import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { transformFile } from '@swc/core';
import { hematoSection } from '@hemato/common';
import {
  HematoApiError,
  HematoClient,
  buildCallbackUrl,
  createHematoClientFromConfig,
  parseCallbackPath,
  signCallbackPath,
  verifyCallbackSignature,
} from '@hemato/hemato-client';
import { startLocalHemato, type LocalHematoServer } from './support/local-hemato-server';
import { PASSWORD, USER } from './support/fixtures';

const session = { method: 'session' as const, user: USER, password: PASSWORD };

describe('Hemato client: regions and TLS', () => {
  it('maps regions to their TLS endpoints and JWT audiences', () => {
    const cases: [string, string][] = [
      ['DEV', 'dev'],
      ['QA', 'qa'],
      ['USA', 'us'],
      ['Canada', 'ca'],
      ['EU', 'eu'],
    ];
    for (const [name, code] of cases) {
      const c = new HematoClient({ region: name, auth: session });
      expect(c.endpoint).toMatchObject({ baseUrl: `https://${code}.api.hemato.ai`, audience: `${code}.api.hemato.ai` });
      void c.close();
    }
    expect(() => new HematoClient({ region: 'mars', auth: session })).toThrow(/unknown Hemato.AI region/);
    const custom = new HematoClient({ region: 'us', baseUrl: 'https://proxy.example.org/hemato/', auth: session });
    expect(custom.endpoint).toMatchObject({
      baseUrl: 'https://proxy.example.org/hemato',
      audience: 'us.api.hemato.ai',
    });
    void custom.close();
  });

  it('refuses plain http:// to a non-loopback host, before any connection', () => {
    for (const baseUrl of ['http://api.hemato.ai', 'http://10.1.2.3:4010', 'http://sandbox:4010', 'ftp://x.example']) {
      let err: unknown;
      try {
        new HematoClient({ baseUrl, auth: session });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HematoApiError);
      expect(err).toMatchObject({ kind: 'insecure_url' });
    }
    for (const baseUrl of ['http://127.0.0.1:4010', 'http://localhost:4010', 'http://[::1]:4010']) {
      void new HematoClient({ baseUrl, auth: session }).close();
    }
    void new HematoClient({ baseUrl: 'http://sandbox:4010', allowInsecureHttp: true, auth: session }).close();
  });

  it('talks TLS to a server whose CA it is given, and fails at once on an unknown certificate', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hemato-tls-'));
    let server: LocalHematoServer | undefined;
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
      ], { stdio: 'ignore' }); // prettier-ignore
      const cert = await readFile(path.join(dir, 'cert.pem'), 'utf8');
      server = await startLocalHemato({ tls: { key: await readFile(path.join(dir, 'key.pem'), 'utf8'), cert } });
      expect(server.url).toMatch(/^https:/);
      const trusted = new HematoClient({ baseUrl: server.url, auth: session, tls: { ca: cert } });
      const { studyId } = await trusted.createStudy();
      expect(server.studies.has(studyId)).toBe(true);
      await trusted.close();
      const untrusted = new HematoClient({ baseUrl: server.url, auth: session, retry: { retries: 3, baseDelayMs: 5 } });
      const err = await untrusted.heartbeat().catch((e: unknown) => e);
      expect(err).toMatchObject({ kind: 'network', retryable: false, attempts: 1 });
      await untrusted.close();
    } finally {
      await server?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Hemato client: callback URL signatures', () => {
  const secret = 'x'.repeat(40);
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('verifies its own signature until it expires', () => {
    const url = buildCallbackUrl('https://bridge.hospital.example/', secret, 'study-1', { ttlSeconds: 3600, now });
    const p = parseCallbackPath(new URL(url).pathname)!;
    expect(p.studyId).toBe('study-1');
    expect(verifyCallbackSignature(secret, p.studyId, p.expires, p.signature, now)).toMatchObject({ ok: true });
    expect(verifyCallbackSignature(secret, p.studyId, p.expires, p.signature, now + 3599_000).ok).toBe(true);
    expect(verifyCallbackSignature(secret, p.studyId, p.expires, p.signature, now + 3600_000)).toEqual({
      ok: false,
      reason: 'expired',
    });
  });

  it('refuses a tampered study id, expiry or signature, another secret, and malformed input', () => {
    const exp = Math.floor(now / 1000) + 600;
    const p = parseCallbackPath(signCallbackPath(secret, 'study-1', exp))!;
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    expect(verifyCallbackSignature(secret, 'study-2', p.expires, p.signature, now)).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
    expect(verifyCallbackSignature(secret, p.studyId, String(exp + 86400), p.signature, now).ok).toBe(false);
    expect(verifyCallbackSignature(secret, p.studyId, p.expires, flip(p.signature), now).ok).toBe(false);
    expect(verifyCallbackSignature(secret, p.studyId, p.expires, p.signature.slice(0, 20), now).ok).toBe(false);
    expect(verifyCallbackSignature('y'.repeat(40), p.studyId, p.expires, p.signature, now).ok).toBe(false);
    expect(verifyCallbackSignature(secret, p.studyId, 'soon', p.signature, now)).toEqual({
      ok: false,
      reason: 'malformed',
    });
    expect(verifyCallbackSignature(secret, p.studyId, p.expires, 'not/base64url', now)).toEqual({
      ok: false,
      reason: 'malformed',
    });
    // an expired URL with a forged signature says bad_signature, not expired
    expect(verifyCallbackSignature(secret, p.studyId, '1', p.signature, now)).toEqual({
      ok: false,
      reason: 'bad_signature',
    });
    expect(() => signCallbackPath('short', 'study-1', exp)).toThrow(/32/);
    expect(parseCallbackPath('/hemato/callback/only-two/parts')).toBeUndefined();
  });
});

describe('Hemato client: configuration from the environment', () => {
  let server: LocalHematoServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hemato-cfg-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    server = await startLocalHemato();
  });
  afterEach(async () => {
    await server.close();
  });

  const configOf = (env: Record<string, string>) => hematoSection.parse(env);

  it('session auth from HEMATO_* variables; HEMATO_BASE_URL wins over the region', async () => {
    const client = createHematoClientFromConfig(
      configOf({ HEMATO_BASE_URL: server.url, HEMATO_REGION: 'eu', HEMATO_USER: USER, HEMATO_PASSWORD: PASSWORD }),
    );
    try {
      expect(client.endpoint).toMatchObject({ baseUrl: server.url, audience: 'eu.api.hemato.ai' });
      expect(client.authMethod).toBe('session');
      await expect(client.createStudy()).resolves.toHaveProperty('studyId');
    } finally {
      await client.close();
    }
  });

  it('key auth from a PEM file or a PEM in the environment', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    server.registerKey('kid-env', { publicKey, issuer: 'org-1', subject: 'user-1' });
    const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
    const keyFile = path.join(dir, 'hemato.key');
    await writeFile(keyFile, pkcs1, { mode: 0o600 });
    const common = {
      HEMATO_BASE_URL: server.url,
      HEMATO_AUTH: 'key',
      HEMATO_KEY_ID: 'kid-env',
      HEMATO_ISSUER: 'org-1',
      HEMATO_SUBJECT: 'user-1',
      HEMATO_JWT_ALG: 'RS256',
    };
    const variants = [
      { ...common, HEMATO_KEY_FILE: keyFile },
      { ...common, HEMATO_PRIVATE_KEY: pkcs1.replace(/\n/g, '\\n') },
    ];
    for (const env of variants) {
      const client = createHematoClientFromConfig(configOf(env));
      try {
        expect(client.authMethod).toBe('key');
        await expect(client.hello()).resolves.toMatchObject({ accepted: true });
      } finally {
        await client.close();
      }
    }
  });

  it('names every missing variable, and refuses http:// to a remote host unless allowed', () => {
    expect(() => createHematoClientFromConfig(configOf({ HEMATO_AUTH: 'key' }))).toThrow(
      'HEMATO_AUTH=key needs HEMATO_KEY_FILE or HEMATO_PRIVATE_KEY, HEMATO_KEY_ID, HEMATO_ISSUER, HEMATO_SUBJECT',
    );
    expect(() => createHematoClientFromConfig(configOf({ HEMATO_USER: USER }))).toThrow(
      'HEMATO_AUTH=session needs HEMATO_PASSWORD or HEMATO_PASS_HASH',
    );
    const remote = { HEMATO_BASE_URL: 'http://sandbox:4010', HEMATO_USER: USER, HEMATO_PASSWORD: PASSWORD };
    expect(() => createHematoClientFromConfig(configOf(remote))).toThrow(/requires TLS/);
    const allowed = createHematoClientFromConfig(configOf({ ...remote, HEMATO_ALLOW_INSECURE_HTTP: 'true' }));
    expect(allowed.endpoint.baseUrl).toBe('http://sandbox:4010');
    void allowed.close();
    const missingFile = {
      HEMATO_AUTH: 'key',
      HEMATO_KEY_FILE: path.join(dir, 'nope.pem'),
      HEMATO_KEY_ID: 'k',
      HEMATO_ISSUER: 'i',
      HEMATO_SUBJECT: 's',
    };
    expect(() => createHematoClientFromConfig(configOf(missingFile))).toThrow(
      /cannot read the Hemato.AI private key file/,
    );
  });
});

describe('npm run keys:generate', () => {
  it('writes a key pair the service accepts once registered, and never overwrites it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hemato-keys-'));
    const server = await startLocalHemato();
    try {
      // Compile the script on its own, exactly as the build does, so the test does not depend on dist/.
      const script = path.join(__dirname, '../../scripts/keys-generate.ts');
      const { code } = await transformFile(script, {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' },
      });
      const compiled = path.join(dir, 'keys-generate.js');
      await writeFile(compiled, code);
      const out = path.join(dir, 'keys');
      const stdout = execFileSync(process.execPath, [compiled, '--out', out, '--kid', 'kid-gen', '--bits', '2048'], {
        encoding: 'utf8',
      });
      const publicPem = await readFile(path.join(out, 'kid-gen.public.pem'), 'utf8');
      expect(stdout).toContain(publicPem.trim());
      expect(stdout).toContain('HEMATO_KEY_ID=kid-gen');
      expect((await stat(path.join(out, 'kid-gen.private.pem'))).mode & 0o777).toBe(0o600);

      const { createPublicKey } = await import('node:crypto');
      server.registerKey('kid-gen', { publicKey: createPublicKey(publicPem), issuer: 'org-g', subject: 'user-g' });
      const client = createHematoClientFromConfig(
        hematoSection.parse({
          HEMATO_BASE_URL: server.url,
          HEMATO_AUTH: 'key',
          HEMATO_KEY_FILE: path.join(out, 'kid-gen.private.pem'),
          HEMATO_KEY_ID: 'kid-gen',
          HEMATO_ISSUER: 'org-g',
          HEMATO_SUBJECT: 'user-g',
        }),
      );
      await expect(client.hello()).resolves.toMatchObject({ accepted: true });
      await client.close();

      let status = 0;
      try {
        execFileSync(process.execPath, [compiled, '--out', out, '--kid', 'kid-gen'], { stdio: 'ignore' });
      } catch (e) {
        status = (e as { status: number }).status;
      }
      expect(status).toBe(1);
      expect(await readFile(path.join(out, 'kid-gen.public.pem'), 'utf8')).toBe(publicPem);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
