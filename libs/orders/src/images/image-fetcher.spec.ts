import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LocalFileStore } from './file-store';
import { fetchImage, type FetchPolicy } from './image-fetcher';

/** A whole 1x1 PNG (a signature alone would be refused as cut short). */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

/** A loopback server answering each request with the next of `answers` (the last one repeats). */
async function imageServer(answers: Array<(res: http.ServerResponse) => void>) {
  let hits = 0;
  const server = http.createServer((_req, res) => answers[Math.min(hits++, answers.length - 1)](res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/slide.png`,
    hits: () => hits,
    close: () => new Promise((r) => server.close(r)),
  };
}

const status =
  (code: number, headers: http.OutgoingHttpHeaders = {}) =>
  (res: http.ServerResponse) =>
    void res.writeHead(code, headers).end('not now');
const image = (res: http.ServerResponse) => void res.writeHead(200, { 'content-type': 'image/png' }).end(PNG);

describe('fetchImage retries', () => {
  let dir: string;
  let store: LocalFileStore;
  const policy: FetchPolicy = { allowedHosts: ['127.0.0.1'], maxBytes: 1 << 20, retries: 3, retryBaseDelayMs: 10 };
  let server: Awaited<ReturnType<typeof imageServer>> | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hb-fetch-'));
    store = new LocalFileStore(dir);
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('gets the image after two 502s', async () => {
    server = await imageServer([status(502), status(502), image]);
    const stored = await fetchImage(server.url, store, policy);
    expect(stored).toMatchObject({ size: PNG.length, mediaType: 'image/png' });
    expect(server.hits()).toBe(3);
  });

  it('gives up after the retries, naming the status and the attempts', async () => {
    server = await imageServer([status(503)]);
    await expect(fetchImage(server.url, store, policy)).rejects.toThrow(
      'Image URL answered HTTP 503 Service Unavailable, 4 attempts',
    );
    expect(server.hits()).toBe(4);
  });

  it('does not retry at all with IMAGE_FETCH_RETRIES=0', async () => {
    server = await imageServer([status(500), image]);
    await expect(fetchImage(server.url, store, { ...policy, retries: 0 })).rejects.toThrow(
      'Image URL answered HTTP 500 Internal Server Error, 1 attempt',
    );
    expect(server.hits()).toBe(1);
  });

  it.each([
    [403, 'Forbidden'],
    [404, 'Not Found'],
    [501, 'Not Implemented'],
  ])('fails at once on %i', async (code, text) => {
    server = await imageServer([status(code), image]);
    await expect(fetchImage(server.url, store, policy)).rejects.toThrow(`Image URL answered HTTP ${code} ${text}`);
    expect(server.hits()).toBe(1);
  });

  it('fails at once when Retry-After asks for longer than the cap', async () => {
    server = await imageServer([status(429, { 'retry-after': '120' }), image]);
    await expect(fetchImage(server.url, store, policy)).rejects.toThrow(
      'Image URL answered HTTP 429 Too Many Requests and asked to wait 120 s, longer than IMAGE_FETCH_RETRY_AFTER_MAX_MS',
    );
    expect(server.hits()).toBe(1);
  });

  it('retries a refused connection, then names it', async () => {
    server = await imageServer([image]);
    const { url } = server;
    await server.close();
    server = undefined;
    await expect(fetchImage(url, store, policy)).rejects.toThrow(
      'Image URL: connection failed (ECONNREFUSED), 4 attempts',
    );
  });

  it('does not wait past IMAGE_FETCH_TIMEOUT_MS for another attempt', async () => {
    server = await imageServer([status(503, { 'retry-after': '5' }), image]);
    const started = Date.now();
    await expect(fetchImage(server.url, store, { ...policy, timeoutMs: 2000 })).rejects.toThrow(
      'Image URL answered HTTP 503 Service Unavailable, 1 attempt',
    );
    expect(Date.now() - started).toBeLessThan(1000);
    expect(server.hits()).toBe(1);
  });
});
