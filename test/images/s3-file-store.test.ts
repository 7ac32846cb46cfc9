import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { DomainError, DomainErrorCode, loadConfig } from '@hemato/common';
import { S3FileStore, S3StoreError, fileStoreProvider, type FileStore } from '@hemato/orders';
import { freePort, startS3Server, type TestS3Server } from '@hemato/testing';

const MiB = 1024 * 1024;

/** Bytes as a stream in 64 KiB chunks, as an upload arrives. */
function chunked(data: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
    })(),
  );
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('S3 image store (IMAGE_STORE=s3) against an S3-compatible server over HTTP', () => {
  let s3: TestS3Server;
  let tmpDir: string;
  let store: S3FileStore;
  const others: S3FileStore[] = [];

  function storeWith(overrides: Partial<ConstructorParameters<typeof S3FileStore>[0]> = {}): S3FileStore {
    const s = new S3FileStore({
      bucket: s3.bucket,
      region: 'us-east-1',
      endpoint: s3.endpoint,
      accessKeyId: s3.accessKeyId,
      secretAccessKey: s3.secretAccessKey,
      prefix: 'images/',
      tmpDir,
      ...overrides,
    });
    others.push(s);
    return s;
  }

  beforeAll(async () => {
    s3 = await startS3Server();
    tmpDir = await mkdtemp(path.join(os.tmpdir(), 'hb-s3-store-'));
    store = storeWith();
  });

  afterAll(async () => {
    for (const s of others) s.onModuleDestroy();
    await s3?.close();
    await rm(tmpDir, { recursive: true, force: true });
  });

  it('stores a few MiB streamed in, under images/<2 hex>/<sha224>, and reads them back', async () => {
    const data = randomBytes(3 * MiB + 123);
    const sha224 = createHash('sha224').update(data).digest('hex');

    const stored = await store.put(chunked(data), 10 * MiB);
    expect(stored).toEqual({
      key: `${sha224.slice(0, 2)}/${sha224}`,
      sha224,
      size: data.length,
      head: data.subarray(0, 16),
    });

    // What the server holds, asked through its own client.
    expect(await s3.list()).toEqual([{ key: `images/${stored.key}`, size: data.length }]);
    expect((await s3.read(`images/${stored.key}`)).equals(data)).toBe(true);

    expect(await store.size(stored.key)).toBe(data.length);
    expect((await readAll(await store.open(stored.key))).equals(data)).toBe(true);
    // The spooled copy is gone.
    expect(await readdir(tmpDir)).toEqual([]);
  });

  it('the same bytes twice make one object, sent once', async () => {
    const data = randomBytes(2 * MiB);
    const first = await store.put(data, 10 * MiB);
    const puts = () => s3.requests.filter((r) => r === `PUT /${s3.bucket}/images/${first.key}`).length;
    expect(puts()).toBe(1);

    const second = await store.put(chunked(data), 10 * MiB);
    expect(second).toEqual(first);
    expect(puts()).toBe(1);
    expect((await s3.list(`images/${first.key.slice(0, 2)}/`)).filter((o) => o.key.endsWith(first.sha224))).toEqual([
      { key: `images/${first.key}`, size: data.length },
    ]);
  });

  it('refuses an image over the limit with TooLarge and leaves nothing behind', async () => {
    const before = await s3.list();
    const requestsBefore = s3.requests.length;
    const err = await rejection(store.put(chunked(randomBytes(MiB + 1)), MiB));
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).code).toBe(DomainErrorCode.TooLarge);
    expect(err.message).toMatch(/larger than the limit of 1048576 bytes/);
    // Refused while spooling: the server was not even asked.
    expect(s3.requests.length).toBe(requestsBefore);
    expect(await s3.list()).toEqual(before);
    expect(await readdir(tmpDir)).toEqual([]);
  });

  it('a key not in the bucket is NotFound; a malformed key is refused before any request', async () => {
    const missing = `ab/${'ab'.repeat(28)}`;
    expect(((await rejection(store.open(missing))) as DomainError).code).toBe(DomainErrorCode.NotFound);
    expect(((await rejection(store.size(missing))) as DomainError).code).toBe(DomainErrorCode.NotFound);
    const requestsBefore = s3.requests.length;
    await expect(store.open('../../etc/passwd')).rejects.toThrow(/bad file store key/);
    expect(s3.requests.length).toBe(requestsBefore);
  });

  it('wrong credentials, a missing bucket or no server are errors naming the bucket and the S3 code, never a secret', async () => {
    const secret = 'very-secret-value-123';
    const wrongKey = storeWith({ accessKeyId: 'NOT-A-KEY', secretAccessKey: secret });
    const denied = await rejection(wrongKey.put(randomBytes(1000), MiB));
    expect(denied).toBeInstanceOf(S3StoreError);
    expect((denied as S3StoreError).code).toBe(DomainErrorCode.Unavailable);
    expect(denied.message).toMatch(
      new RegExp(`PutObject on bucket "${s3.bucket}" at ${s3.endpoint} failed: InvalidAccessKeyId \\(HTTP 403\\)`),
    );
    expect(denied.message).toMatch(/check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY/);
    expect(denied.message).not.toContain(secret);
    expect(await readdir(tmpDir)).toEqual([]);

    const noBucket = storeWith({ bucket: 'no-such-bucket' });
    const missing = await rejection(noBucket.put(randomBytes(1000), MiB));
    expect(missing.message).toMatch(
      /PutObject on bucket "no-such-bucket" .* NoSuchBucket \(HTTP 404\): the bucket does not exist/,
    );
    await expect(noBucket.check()).rejects.toThrow(/HeadBucket on bucket "no-such-bucket" .*\(HTTP 404\)/);
    await expect(store.check()).resolves.toBeUndefined();

    const nobody = storeWith({ endpoint: `http://127.0.0.1:${await freePort()}` });
    const down = await rejection(nobody.put(randomBytes(1000), MiB));
    expect(down).toBeInstanceOf(S3StoreError);
    expect(down.message).toMatch(/on bucket "hb-images" at http:\/\/127\.0\.0\.1:\d+ failed: ECONNREFUSED/);
  });

  it('the provider builds it from the environment and refuses to start on a bucket that does not exist', async () => {
    const env = { ...s3.env, DATA_DIR: tmpDir };
    const factory = (fileStoreProvider as { useFactory: (c: unknown) => Promise<FileStore> }).useFactory;
    const configured = (await factory(loadConfig(env, ['core', 'orders']))) as S3FileStore;
    others.push(configured);
    expect(configured).toBeInstanceOf(S3FileStore);
    const stored = await configured.put(randomBytes(5000), MiB);
    expect((await s3.list()).map((o) => o.key)).toContain(`images/${stored.key}`);

    await expect(factory(loadConfig({ ...env, S3_BUCKET: 'not-there' }, ['core', 'orders']))).rejects.toThrow(
      /HeadBucket on bucket "not-there" .*the bucket does not exist/,
    );
  });
});
