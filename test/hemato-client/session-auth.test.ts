import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { HematoApiError, HematoClient } from '@hemato/hemato-client';
import { startLocalHemato, type LocalHematoServer } from './support/local-hemato-server';
import { FAST_RETRY, PASSWORD, USER, jpegBytes, sessionClient } from './support/fixtures';

describe('Hemato client: session auth against a local Hemato.AI', () => {
  let server: LocalHematoServer;
  const clients: HematoClient[] = [];
  const track = (c: HematoClient) => (clients.push(c), c);

  beforeEach(async () => {
    server = await startLocalHemato();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server.close();
  });

  it('logs in with the sha256 of the password and reports the user', async () => {
    const client = track(sessionClient(server));
    const info = await client.login();
    expect(info.email).toBe(USER);
    expect(info.userId).toBe(server.users.get(USER)!.id);
    expect(info.loggedInAt!.getTime()).toBeGreaterThan(Date.parse('2020-01-01'));
    const hello = await client.hello();
    expect(hello).toMatchObject({ accepted: true, status: 200 });
    expect(hello.results).toMatchObject({ method: 'session', sub: USER });
  });

  it('accepts an already-hashed password', async () => {
    const passHash = createHash('sha256').update(PASSWORD).digest('hex');
    const client = track(
      new HematoClient({ baseUrl: server.url, auth: { method: 'session', user: USER, passHash }, retry: FAST_RETRY }),
    );
    const { studyId } = await client.createStudy();
    expect(server.studies.has(studyId)).toBe(true);
  });

  it('fails with the service error on wrong credentials', async () => {
    const client = track(
      new HematoClient({ baseUrl: server.url, auth: { method: 'session', user: USER, password: 'nope' } }),
    );
    const err = await client.createStudy().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HematoApiError);
    expect(err).toMatchObject({
      kind: 'http',
      status: 401,
      error: 'invalid credentials',
      method: 'POST',
      path: '/auth/login',
    });
    expect(server.count('POST', /^\/pbs$/)).toBe(0);
  });

  it('logs in again once when the session expired, and the call succeeds', async () => {
    const client = track(sessionClient(server));
    const { studyId } = await client.createStudy({ proxy: 'P-1' });
    expect(server.count('POST', /^\/auth\/login$/)).toBe(1);
    server.expireAllSessions();
    const uploaded = await client.uploadFile(studyId, jpegBytes(), 'image/jpeg');
    expect(uploaded.fileId).toMatch(/^sha224-i-[0-9a-f]{56}$/);
    expect(server.count('POST', /^\/auth\/login$/)).toBe(2);
    // the rejected attempt and the successful one
    expect(server.log.filter((r) => r.path.endsWith('/files')).map((r) => r.status)).toEqual([401, 201]);
  });

  it('a streamed upload refused because the session expired leaves a fresh session for the next try', async () => {
    // A stream cannot be sent twice, so the client cannot retry this upload itself; but it must not keep the
    // expired token: the order's next attempt (a new stream of the same file) has to go out with a new one.
    const client = track(sessionClient(server));
    const { studyId } = await client.createStudy();
    server.expireAllSessions();
    const bytes = jpegBytes();
    const first = await client.uploadFile(studyId, Readable.from([bytes]), 'image/jpeg').catch((e: unknown) => e);
    expect(first).toMatchObject({ kind: 'http', status: 401, retryable: true, authRefused: false });
    const again = await client.uploadFile(studyId, Readable.from([bytes]), 'image/jpeg');
    expect(again.fileId).toMatch(/^sha224-i-[0-9a-f]{56}$/);
    expect(server.studies.get(studyId)!.files.has(again.fileId)).toBe(true);
    expect(server.count('POST', /^\/auth\/login$/)).toBe(2);
    expect(server.log.filter((r) => r.path.endsWith('/files')).map((r) => r.status)).toEqual([401, 201]);
  });

  it('gives up after one re-login when the new session is refused too', async () => {
    const client = track(sessionClient(server));
    await client.login();
    server.expireAllSessions();
    server.refuseNewSessions = true;
    const err = await client.getStatus('whatever').catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'http', status: 401, error: 'session expired', path: '/pbs/whatever/status' });
    expect(err).toMatchObject({ attempts: 2 });
    expect(server.count('POST', /^\/auth\/login$/)).toBe(2);
    expect(server.count('GET', /\/status$/)).toBe(2);
  });

  it('shares one login between concurrent first calls', async () => {
    const client = track(sessionClient(server));
    await Promise.all([client.createStudy(), client.createStudy(), client.createStudy()]);
    expect(server.count('POST', /^\/auth\/login$/)).toBe(1);
    expect(server.studies.size).toBe(3);
  });

  it('hello() explains a rejected session without logging in again', async () => {
    const client = track(sessionClient(server));
    await client.login();
    server.expireAllSessions();
    const hello = await client.hello();
    expect(hello).toMatchObject({ accepted: false, status: 401, error: 'session expired' });
    expect(server.count('POST', /^\/auth\/login$/)).toBe(1);
  });

  it('never puts the token or the password hash in an error', async () => {
    const client = track(sessionClient(server));
    await client.login();
    const token = [...server.sessions.keys()][0]!;
    const passHash = createHash('sha256').update(PASSWORD).digest('hex');
    server.fail('GET', /\/status$/, 400);
    const err = (await client.getStatus('s-1').catch((e: unknown) => e)) as HematoApiError;
    const dumped = JSON.stringify(err) + err.message + String(err.stack);
    expect(err.status).toBe(400);
    expect(dumped).not.toContain(token);
    expect(dumped).not.toContain(passHash);
  });
});
