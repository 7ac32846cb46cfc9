import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

export interface TestS3Server {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The variables that point hemato-bridge's image store at this server. */
  env: Record<string, string>;
  /** `METHOD /path` of every request the server received, in order. */
  requests: string[];
  /** The bucket's objects as the server lists them (ListObjectsV2, its own client, not the store under test). */
  list(prefix?: string): Promise<{ key: string; size: number }[]>;
  /** An object's bytes as the server returns them. */
  read(key: string): Promise<Buffer>;
  /** Stops the server and removes its files (again is a no-op). */
  close(): Promise<void>;
}

/**
 * A real S3-compatible HTTP server (the npm package s3rver, files in a temporary folder) with one bucket,
 * on a free loopback port. It speaks the S3 REST API over HTTP (path-style), checks that the access
 * key id exists (`S3RVER`), but does not verify SigV4 signatures.
 */
export async function startS3Server(bucket = 'hb-images'): Promise<TestS3Server> {
  // Loaded only by the tests that use it.
  const { default: S3rver } = await import('s3rver');
  const directory = await mkdtemp(path.join(os.tmpdir(), 'hb-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const requests: string[] = [];
  server.httpServer!.prependListener('request', (req: { method?: string; url?: string }) => {
    requests.push(`${req.method} ${(req.url ?? '').split('?')[0]}`);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const accessKeyId = 'S3RVER';
  const secretAccessKey = 'S3RVER';
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    env: {
      IMAGE_STORE: 's3',
      S3_ENDPOINT: endpoint,
      S3_BUCKET: bucket,
      S3_ACCESS_KEY_ID: accessKeyId,
      S3_SECRET_ACCESS_KEY: secretAccessKey,
    },
    requests,
    async list(prefix) {
      const res = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (res.Contents ?? []).map((o) => ({ key: o.Key!, size: o.Size ?? 0 }));
    },
    async read(key) {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const chunks: Buffer[] = [];
      for await (const chunk of res.Body as Readable) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
    async close() {
      if (!server.httpServer?.listening) return;
      client.destroy();
      server.httpServer?.closeAllConnections();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
