import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DomainError, DomainErrorCode } from '@hemato/common';
import { refusedAddressKind, type AddressResolver } from './address-guard';
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

describe('fetchImage and the addresses a host name resolves to', () => {
  let dir: string;
  let store: LocalFileStore;
  let server: Awaited<ReturnType<typeof imageServer>>;
  let port: string;

  beforeAll(async () => {
    server = await imageServer([image]);
    port = new URL(server.url).port;
  });
  afterAll(() => server.close());
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hb-fetch-dns-'));
    store = new LocalFileStore(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /**
   * A resolver answering every name with `addresses` and counting its calls. Only `localhost` resolves to a
   * loopback address on every machine, and no name to a link-local one without a DNS server of the test's.
   */
  const resolvingTo = (...addresses: string[]) => {
    const calls: string[] = [];
    const resolver: AddressResolver = (hostname, _options, callback) => {
      calls.push(hostname);
      callback(
        null,
        addresses.map((address) => ({ address, family: isIP(address) })),
      );
    };
    return { resolver, calls };
  };
  const storedFiles = () => readdirSync(dir).filter((f) => f !== 'tmp');

  it('refuses an allowed name that resolves to a loopback address, connecting nowhere, naming host and kind only', async () => {
    const { resolver, calls } = resolvingTo('127.0.0.1');
    const before = server.hits();
    const err = await fetchImage(`http://reader:s3cret@slides.hospital.test:${port}/PL-1/slide.png`, store, {
      allowedHosts: ['slides.hospital.test'],
      maxBytes: 1 << 20,
      retries: 3,
      retryBaseDelayMs: 10,
      resolver,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe(DomainErrorCode.Forbidden);
    expect((err as Error).message).toBe(
      'Image host slides.hospital.test resolves to a loopback address (127.0.0.1), which is not fetched from by name',
    );
    expect((err as Error).message).not.toMatch(/PL-1|s3cret|reader/);
    expect(server.hits()).toBe(before);
    // Not tried again: it would resolve the same.
    expect(calls).toEqual(['slides.hospital.test']);
    expect(storedFiles()).toEqual([]);
  });

  it.each([
    ['169.254.169.254', 'cloud metadata'],
    ['fd00:ec2::254', 'cloud metadata'],
    ['169.254.10.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'cloud metadata'],
    ['100.100.100.200', 'cloud metadata'],
    ['168.63.129.16', 'cloud metadata'],
    ['64:ff9b::a9fe:a9fe', 'cloud metadata'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
  ])('refuses a name under a *. rule resolving to %s (%s)', async (address, kind) => {
    const { resolver, calls } = resolvingTo(address);
    await expect(
      fetchImage(`http://pacs.imaging.hospital.test:${port}/slide.png`, store, {
        allowedHosts: ['*.hospital.test'],
        maxBytes: 1 << 20,
        retries: 3,
        retryBaseDelayMs: 10,
        resolver,
      }),
    ).rejects.toThrow(`Image host pacs.imaging.hospital.test resolves to a ${kind} address`);
    expect(calls).toHaveLength(1);
  });

  it('refuses a name every address of which is refused, naming the first', async () => {
    const { resolver } = resolvingTo('::1', '169.254.169.254');
    await expect(
      fetchImage(`http://slides.hospital.test:${port}/slide.png`, store, {
        allowedHosts: ['slides.hospital.test'],
        maxBytes: 1 << 20,
        retries: 0,
        resolver,
      }),
    ).rejects.toThrow('resolves to a loopback address (::1)');
  });

  it("keeps the worker's own URL check (its allow-list may differ from the gateway's): nothing is asked of the server", async () => {
    const before = server.hits();
    const policy: FetchPolicy = { allowedHosts: ['slides.hospital.test'], maxBytes: 1 << 20 };
    await expect(fetchImage(`http://127.0.0.1:${port}/slide.png`, store, policy)).rejects.toThrow(
      'Image host 127.0.0.1 is not in IMAGE_URL_ALLOWED_HOSTS',
    );
    await expect(fetchImage(`ftp://slides.hospital.test:${port}/slide.png`, store, policy)).rejects.toThrow(
      'Image URL scheme ftp: is not allowed',
    );
    await expect(fetchImage('http://', store, policy)).rejects.toThrow('Image URL is not a valid URL');
    expect(server.hits()).toBe(before);
  });

  it('fetches from localhost when the allow-list names localhost, and from an allow-listed loopback literal', async () => {
    const policy: FetchPolicy = { allowedHosts: ['localhost', '127.0.0.1'], maxBytes: 1 << 20 };
    await expect(fetchImage(`http://localhost:${port}/slide.png`, store, policy)).resolves.toMatchObject({
      mediaType: 'image/png',
    });
    await expect(fetchImage(`http://127.0.0.1:${port}/slide.png`, store, policy)).resolves.toMatchObject({
      mediaType: 'image/png',
    });
  });
});

describe('refusedAddressKind', () => {
  it.each([
    '10.1.2.3',
    '172.16.0.9',
    '172.31.255.1',
    '192.168.1.20',
    'fd12:3456::7',
    'fc00::1',
    '8.8.8.8',
    '2001:db8::1',
    '::ffff:10.0.0.1',
    // Carrier-grade NAT (100.64/10) holds sites' servers too: only the metadata address in it is refused.
    '100.64.0.1',
    '100.100.100.201',
    '168.63.129.17',
    // NAT64 (64:ff9b::/96): an IPv4 server reached from an IPv6-only network.
    '64:ff9b::808:808',
    '64:ff9b::8.8.8.8',
    '64:ff9b::10.0.0.1',
  ])('lets %s through (private networks hold hospital image servers)', (ip) =>
    expect(refusedAddressKind(ip)).toBeUndefined(),
  );
  it.each([
    ['127.0.0.53', 'loopback'],
    ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
    ['fe80::1%eth0', 'link-local'],
    ['239.255.255.250', 'multicast'],
    ['0.1.2.3', 'unspecified'],
    // Alibaba Cloud's metadata service, and Azure's wire server (platform agent and DNS, its own metadata).
    ['100.100.100.200', 'cloud metadata'],
    ['168.63.129.16', 'cloud metadata'],
    ['::ffff:100.100.100.200', 'cloud metadata'],
    // NAT64 (64:ff9b::/96) leads to the IPv4 address in its last 32 bits: judged as that address.
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['64:FF9B:0:0:0:0:a9fe:a9fe', 'cloud metadata'],
    ['64:ff9b::169.254.169.254', 'cloud metadata'],
    ['64:ff9b::100.100.100.200', 'cloud metadata'],
    ['64:ff9b::168.63.129.16', 'cloud metadata'],
    ['64:ff9b::a9fe:1', 'link-local'],
    ['64:ff9b::0.0.0.0', 'unspecified'],
    ['64:ff9b::e000:1', 'multicast'],
    ['64:ff9b::255.255.255.255', 'broadcast'],
  ])('refuses %s as %s', (ip, kind) => expect(refusedAddressKind(ip)).toBe(kind));
});

describe('fetchImage and the size and hash the order declared (FHIR Attachment.size, .hash)', () => {
  let dir: string;
  let store: LocalFileStore;
  let server: Awaited<ReturnType<typeof imageServer>> | undefined;
  const policy: FetchPolicy = { allowedHosts: ['127.0.0.1'], maxBytes: 1 << 20, retries: 3, retryBaseDelayMs: 10 };
  const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
  /** Every file the store holds (the spool folder left out). */
  const storedFiles = () => readdirSync(dir).filter((f) => f !== 'tmp');

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hb-fetch-declared-'));
    store = new LocalFileStore(dir);
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('stores the image when its bytes are what the order declared', async () => {
    server = await imageServer([image]);
    await expect(fetchImage(server.url, store, policy, { size: PNG.length, sha1: sha1(PNG) })).resolves.toMatchObject({
      size: PNG.length,
      mediaType: 'image/png',
    });
  });

  it('refuses bytes whose SHA-1 is not the declared hash, keeping none and not trying again', async () => {
    server = await imageServer([image]);
    await expect(fetchImage(server.url, store, policy, { sha1: sha1(Buffer.from('other bytes')) })).rejects.toThrow(
      'Image URL returned bytes whose SHA-1 does not match its Attachment.hash',
    );
    expect(server.hits()).toBe(1);
    expect(storedFiles()).toEqual([]);
  });

  it('refuses an answer of another size than declared, said by Content-Length or counted', async () => {
    server = await imageServer([
      (res) => void res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length }).end(PNG),
    ]);
    await expect(fetchImage(server.url, store, policy, { size: PNG.length + 1 })).rejects.toThrow(
      `Image URL returned ${PNG.length} bytes, not the ${PNG.length + 1} its Attachment.size declares`,
    );
    await server.close();
    // Chunked, no Content-Length: counted on the way, refused once past the declared size.
    server = await imageServer([image]);
    await expect(fetchImage(server.url, store, policy, { size: 10 })).rejects.toThrow(
      'Image URL returned more than the 10 bytes its Attachment.size declares',
    );
    expect(storedFiles()).toEqual([]);
  });
});
