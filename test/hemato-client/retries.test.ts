import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HematoApiError, fileIdOf, type HematoClient, type HematoRetryEvent } from '@hemato/hemato-client';
import { startLocalHemato, type LocalHematoServer } from './support/local-hemato-server';
import { jpegBytes, sessionClient } from './support/fixtures';

describe('Hemato client: retries, backoff and timeouts', () => {
  let server: LocalHematoServer;
  let client: HematoClient;
  let retries: HematoRetryEvent[];
  let studyId: string;

  beforeEach(async () => {
    server = await startLocalHemato();
    retries = [];
    client = sessionClient(server, { onRetry: (e) => retries.push(e) });
    ({ studyId } = await client.createStudy());
    server.log.length = 0;
  });
  afterEach(async () => {
    await client.close();
    await server.close();
  });

  it('retries a 503 on an idempotent call with growing, jittered delays, then succeeds', async () => {
    server.fail('GET', /\/status$/, 503, 2);
    const status = await client.getStatus(studyId);
    expect(status).toMatchObject({ studyId, reportStatus: 'pending', progress: 0 });
    expect(server.log.map((r) => r.status)).toEqual([503, 503, 200]);
    expect(retries.map((r) => [r.attempt, r.reason, r.status])).toEqual([
      [1, 'status', 503],
      [2, 'status', 503],
    ]);
    // FAST_RETRY: base 5 ms doubling, equal jitter: [2.5, 5] then [5, 10]
    expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(2);
    expect(retries[0]!.delayMs).toBeLessThanOrEqual(5);
    expect(retries[1]!.delayMs).toBeGreaterThanOrEqual(5);
    expect(retries[1]!.delayMs).toBeLessThanOrEqual(10);
  });

  it('honours Retry-After on 429', async () => {
    server.fail('GET', /\/report$/, 429, 1, '1');
    server.fail('GET', /\/status$/, 429, 1, new Date(Date.now() + 60_000).toUTCString());
    await expect(client.getReport(studyId)).rejects.toMatchObject({ status: 409, error: 'report not ready' });
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ reason: 'status', status: 429, retryAfterMs: 1000, delayMs: 1000 });
    expect(server.log.map((r) => r.status)).toEqual([429, 409]);
    // A Retry-After beyond maxRetryAfterMs (5 s in tests) is not waited for: the caller learns when to come back.
    const err = (await client.getStatus(studyId).catch((e: unknown) => e)) as HematoApiError;
    expect(err).toMatchObject({ kind: 'http', status: 429, retryable: true });
    expect(err.retryAfterMs).toBeGreaterThan(50_000);
    expect(retries).toHaveLength(1);
  });

  it('gives up after the retry budget with the last error', async () => {
    server.fail('GET', /\/status$/, 502, 10);
    const err = await client.getStatus(studyId).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HematoApiError);
    expect(err).toMatchObject({ kind: 'http', status: 502, retryable: true, attempts: 4, error: 'injected 502' });
    expect(err).toMatchObject({
      user_message: 'Please try again later',
      method: 'GET',
      path: `/pbs/${studyId}/status`,
    });
    expect(server.count('GET', /\/status$/)).toBe(4);
  });

  it('does not retry createStudy or submitFromList on 503', async () => {
    server.fail('POST', /^\/pbs$/, 503, 5);
    await expect(client.createStudy({ proxy: 'P-1' })).rejects.toMatchObject({ status: 503 });
    await expect(client.submitFromList('http://127.0.0.1:9/list.json', ['pbs_v1'])).rejects.toMatchObject({
      status: 503,
    });
    expect(server.count('POST', /^\/pbs$/)).toBe(2);
    expect(server.studies.size).toBe(1);
    expect(retries).toEqual([]);
  });

  it('does not retry a 4xx other than 429', async () => {
    server.fail('GET', /\/status$/, 400, 3);
    await expect(client.getStatus(studyId)).rejects.toMatchObject({ status: 400, retryable: false, attempts: 1 });
    expect(server.count('GET', /\/status$/)).toBe(1);
  });

  it('retries an upload from a buffer or a file after a 503 (idempotent by hash)', async () => {
    server.fail('POST', /\/files$/, 503, 1);
    const bytes = jpegBytes(100_000);
    const up = await client.uploadFile(studyId, bytes, 'jpg');
    expect(server.log.map((r) => r.status)).toEqual([503, 201]);
    expect(server.studies.get(studyId)!.files.get(up.fileId)).toBe(100_000);

    const dir = await mkdtemp(path.join(tmpdir(), 'hemato-retry-'));
    try {
      const file = path.join(dir, 'smear.jpg');
      const other = jpegBytes(3 * 1024 * 1024);
      await writeFile(file, other);
      server.fail('POST', /\/files$/, 503, 2);
      const again = await client.uploadFile(studyId, file, 'image/jpeg');
      expect(again).toEqual({ studyId, fileId: fileIdOf(other), bytes: other.length });
      expect(server.log.slice(2).map((r) => [r.status, r.bytes])).toEqual([
        [503, undefined],
        [503, undefined],
        [201, other.length],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('times out an attempt, retries, and reports a timeout when every attempt is slow', async () => {
    const slow = sessionClient(server, { timeoutMs: 500, onRetry: (e) => retries.push(e) });
    try {
      await slow.login();
      retries.length = 0;
      server.delay('GET', /\/status$/, 5_000, 1);
      await expect(slow.getStatus(studyId)).resolves.toMatchObject({ studyId });
      expect(retries.map((r) => r.reason)).toEqual(['timeout']);
      server.delay('GET', /\/status$/, 5_000, 10);
      await expect(slow.getStatus(studyId)).rejects.toMatchObject({ kind: 'timeout', attempts: 4, status: 0 });
    } finally {
      await slow.close();
    }
  });

  it('retries network errors on idempotent calls', async () => {
    const port = Number(new URL(server.url).port);
    await server.close();
    const dead = sessionClient(server, { onRetry: (e) => retries.push(e) });
    try {
      await expect(dead.heartbeat()).rejects.toMatchObject({ kind: 'network', attempts: 4, status: 0 });
      expect(retries.map((r) => r.reason)).toEqual(['network', 'network', 'network']);
    } finally {
      await dead.close();
      server = await startLocalHemato();
      expect(port).toBeGreaterThan(0);
    }
  });

  it('an AbortSignal stops the call', async () => {
    server.delay('GET', /\/status$/, 2_000, 1);
    const ac = new AbortController();
    const p = client.getStatus(studyId, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ kind: 'aborted' });
  });
});
