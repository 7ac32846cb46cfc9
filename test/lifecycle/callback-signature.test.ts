import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { buildCallbackUrl, signCallbackPath } from '@hemato/hemato-client';
import { startPipeline, type Pipeline } from '@hemato/testing';

/**
 * The reference recommends a signature in the callback URL because it "enables early filtration of
 * incoming traffic, particularly in cases where the backend systems may be inundated by a surge of
 * malicious or rogue requests": a callback whose signature is wrong or expired is refused from its URL,
 * before its body is read.
 */
describe('Hemato.AI callbacks: the URL signature is checked before the body is read', () => {
  let p: Pipeline;

  beforeAll(async () => {
    p = await startPipeline('cbsig', {}, { worker: false });
  });
  afterAll(async () => {
    await p?.close();
  });

  /**
   * POSTs `path` announcing a body of `declared` bytes but sending only the first kilobyte, and
   * resolves with the status of the answer, or 'no answer' after `waitMs`.
   */
  function postPartial(path: string, declared: number, waitMs = 3000): Promise<number | 'no answer'> {
    const url = new URL(p.httpUrl);
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(declared) },
      });
      const timer = setTimeout(() => {
        req.destroy();
        resolve('no answer');
      }, waitMs);
      req.on('response', (res) => {
        clearTimeout(timer);
        res.resume();
        req.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (err) => {
        if (!req.destroyed) reject(err);
      });
      req.write(`{"pbs_stody_id":"${randomUUID()}","padding":"${'x'.repeat(1024)}`);
    });
  }

  const secret = () => p.config.security.CALLBACK_SIGNING_SECRET;
  const BIG = 50 * 1024 * 1024;

  it('a forged signature is refused (401) without waiting for a 50 MB body', async () => {
    const studyId = randomUUID();
    const good = signCallbackPath(secret(), studyId, Math.floor(Date.now() / 1000) + 3600);
    const forged = good.replace(/\/[^/]+$/, `/${'A'.repeat(43)}`);
    expect(await postPartial(forged, BIG)).toBe(401);
  });

  it('an expired signature is refused (401) without waiting for the body', async () => {
    const expired = signCallbackPath(secret(), randomUUID(), Math.floor(Date.now() / 1000) - 60);
    expect(await postPartial(expired, BIG)).toBe(401);
  });

  it('a well-signed callback is still read and accepted (202)', async () => {
    const url = buildCallbackUrl(p.httpUrl, secret(), randomUUID());
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pbs_stody_id: 'x', report_status: 'ready', progress: 1.0 }),
    });
    expect(res.status).toBe(202);
    // No order has that study: the gateway says so and changes nothing.
    expect(await res.json()).toEqual({ accepted: false });
  });
});
