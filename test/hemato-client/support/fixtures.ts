import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { Readable } from 'node:stream';
import { zipSync } from 'fflate';
import { HematoClient, type HematoClientOptions } from '@hemato/hemato-client';
import type { LocalHematoServer } from './local-hemato-server';

export const USER = 'lab@example.com';
export const PASSWORD = 'correct horse battery';

/** Bytes that start like a JPEG (the client sniffs the first bytes). */
export function jpegBytes(size = 4096): Buffer {
  const b = randomBytes(size);
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  b[3] = 0xe0;
  return b;
}

/** Bytes that start like a PNG. */
export function pngBytes(size = 4096): Buffer {
  const b = randomBytes(size);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b);
  return b;
}

/** A real ZIP archive of the given entries. */
export function zipOf(entries: Record<string, Buffer>): Buffer {
  return Buffer.from(zipSync(Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, new Uint8Array(v)]))));
}

/**
 * A JPEG-looking stream of `total` bytes produced on the fly from one 1 MiB block, so a test can
 * send hundreds of MB without holding them.
 */
export function generatedJpegStream(total: number): Readable {
  const block = jpegBytes(1024 * 1024);
  let sent = 0;
  let n = 0;
  return new Readable({
    read() {
      if (sent >= total) {
        this.push(null);
        return;
      }
      const size = Math.min(block.length, total - sent);
      const chunk = Buffer.from(block.subarray(0, size));
      // Vary every block so the content is not periodic (the id is then a real check).
      if (n > 0) chunk.writeUInt32BE(n, 8);
      n++;
      sent += size;
      this.push(chunk);
    },
  });
}

export interface TestKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  kid: string;
  issuer: string;
  subject: string;
}

/** A fresh RSA key registered with the local server. */
export function registerTestKey(server: LocalHematoServer, kid = 'k-' + randomBytes(4).toString('hex')): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = { privateKey, publicKey, kid, issuer: 'lab.example.org', subject: 'svc-0001' };
  server.registerKey(kid, { publicKey, issuer: key.issuer, subject: key.subject });
  return key;
}

/** Fast retries for tests: the policy is the same, only the steps are short. */
export const FAST_RETRY = { retries: 3, baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 5_000 };

export function sessionClient(server: LocalHematoServer, extra: Partial<HematoClientOptions> = {}): HematoClient {
  return new HematoClient({
    baseUrl: server.url,
    region: 'dev',
    auth: { method: 'session', user: USER, password: PASSWORD },
    retry: FAST_RETRY,
    ...extra,
  });
}

export function keyClient(
  server: LocalHematoServer,
  key: TestKey,
  extra: Partial<HematoClientOptions> = {},
): HematoClient {
  const { auth, ...rest } = extra;
  return new HematoClient({
    baseUrl: server.url,
    region: 'dev',
    auth: {
      method: 'key',
      privateKey: key.privateKey,
      keyId: key.kid,
      issuer: key.issuer,
      subject: key.subject,
      ...(auth as object),
    } as HematoClientOptions['auth'],
    retry: FAST_RETRY,
    ...rest,
  });
}
