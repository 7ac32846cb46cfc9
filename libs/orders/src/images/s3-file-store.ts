import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { DomainError, DomainErrorCode, createLogger, type AppConfig } from '@hemato/common';
import { assertStoreKey, hashingLimiter, spoolToFile, storeKey, type FileStore, type StoredFile } from './file-store';

const log = createLogger('s3-file-store');

export interface S3FileStoreOptions {
  bucket: string;
  region: string;
  /** An S3-compatible server; unset is AWS S3 in `region`. */
  endpoint?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** `<endpoint>/<bucket>/<key>` URLs; default on with an endpoint (MinIO, Ceph), off for AWS. */
  forcePathStyle?: boolean;
  /** Folder inside the bucket, `''` or ending in `/`. */
  prefix?: string;
  /** Where an incoming image is spooled while it is hashed (on disk: images can be hundreds of MiB). */
  tmpDir: string;
  /** Attempts at one PutObject (a streamed body is not retried by the SDK itself). */
  putAttempts?: number;
}

/** The S3 error that stopped a call, as the server named it (`NoSuchBucket`, `AccessDenied`, ...). */
interface S3Failure {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

/** The S3 store could not do its job; `httpStatus` is the server's answer, undefined when there was none. */
export class S3StoreError extends DomainError {
  constructor(
    message: string,
    readonly httpStatus: number | undefined,
  ) {
    super(DomainErrorCode.Unavailable, message);
    this.name = 'S3StoreError';
  }
}

/**
 * Images in an S3 bucket (AWS or an S3-compatible server), under `<prefix><first 2 hex>/<sha224>`.
 * Keys are the same as the local store's, so an image row does not say which store holds it.
 *
 * An image is spooled to a temporary file while it is hashed and measured: the object name is its hash,
 * and S3 wants the length up front. Memory stays bounded whatever the size. If the bucket already holds
 * those bytes (HeadObject), nothing is sent again.
 */
export class S3FileStore implements FileStore {
  private readonly client: S3Client;
  private readonly prefix: string;
  private readonly where: string;

  constructor(private readonly opts: S3FileStoreOptions) {
    const config: S3ClientConfig = {
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
      // Recent SDKs otherwise add CRC checksums as aws-chunked trailers, which many S3-compatible
      // servers refuse; the upload carries a Content-MD5 instead, and the key is the content's hash.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 10_000 },
      // The SDK's own notes (e.g. "non-retryable streaming request", which `upload` retries itself)
      // would otherwise go to the console, outside the structured log.
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: (...args: unknown[]) => log.debug({ sdk: args.map(String).join(' ') }, 'S3 client warning'),
        error: (...args: unknown[]) => log.debug({ sdk: args.map(String).join(' ') }, 'S3 client error'),
      },
    };
    this.client = new S3Client(config);
    this.prefix = opts.prefix ?? '';
    // Named in errors: where the bucket is, never a credential.
    this.where = opts.endpoint ? new URL(opts.endpoint).origin : `AWS ${opts.region}`;
  }

  static fromConfig(config: Pick<AppConfig, 'core' | 'orders'>): S3FileStore {
    const o = config.orders;
    if (!o.S3_BUCKET || !o.S3_ACCESS_KEY_ID || !o.S3_SECRET_ACCESS_KEY) {
      // The config schema already refuses this; kept for callers that build a config by hand.
      throw new Error('IMAGE_STORE=s3 needs S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY');
    }
    return new S3FileStore({
      bucket: o.S3_BUCKET,
      region: o.S3_REGION,
      endpoint: o.S3_ENDPOINT,
      accessKeyId: o.S3_ACCESS_KEY_ID,
      secretAccessKey: o.S3_SECRET_ACCESS_KEY,
      forcePathStyle: o.S3_FORCE_PATH_STYLE,
      prefix: o.S3_PREFIX,
      tmpDir: path.resolve(config.core.DATA_DIR, 'tmp'),
    });
  }

  /** The object name of a store key. */
  objectKey(key: string): string {
    assertStoreKey(key);
    return this.prefix + key;
  }

  async put(source: Readable | Buffer, maxBytes: number): Promise<StoredFile> {
    await mkdir(this.opts.tmpDir, { recursive: true });
    const tmp = path.join(this.opts.tmpDir, `s3-put-${randomBytes(12).toString('hex')}`);
    const { transform, result } = hashingLimiter(maxBytes);
    const md5 = createHash('md5');
    const md5Tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        md5.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await spoolToFile(source, [transform, md5Tap], tmp);
      const { sha224, size, head } = result();
      const key = storeKey(sha224);
      // Without s3:ListBucket, AWS answers a HEAD for a missing object with 403: then just send it.
      if ((await this.storedSize(key, [404, 403])) !== size) await this.upload(key, tmp, size, md5.digest('base64'));
      return { key, sha224, size, head };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async open(key: string): Promise<Readable> {
    const Key = this.objectKey(key);
    const res = await this.call('GetObject', () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key })),
    );
    return res.Body as Readable;
  }

  async size(key: string): Promise<number> {
    const size = await this.storedSize(key, [404]);
    if (size === null) throw new DomainError(DomainErrorCode.NotFound, 'The image is not in the S3 image store');
    return size;
  }

  /** The bucket answers and these credentials may use it (HeadBucket). */
  async check(): Promise<void> {
    await this.call('HeadBucket', () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  /** Closes the client's sockets. */
  onModuleDestroy(): void {
    this.client.destroy();
  }

  private get bucket(): string {
    return this.opts.bucket;
  }

  /** The stored object's length, or null when the HEAD answers one of `absent`. */
  private async storedSize(key: string, absent: number[]): Promise<number | null> {
    const Key = this.objectKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return res.ContentLength ?? null;
    } catch (err) {
      // A HEAD has no body: a missing object and a missing bucket are both a bare 404. PutObject tells them apart.
      if (absent.includes((err as S3Failure).$metadata?.httpStatusCode ?? 0)) return null;
      throw this.failure('HeadObject', err);
    }
  }

  private async upload(key: string, file: string, size: number, contentMd5: string): Promise<void> {
    const Key = this.objectKey(key);
    const attempts = this.opts.putAttempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        // A fresh stream each attempt: the SDK does not retry a streamed body it has consumed.
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: createReadStream(file),
            ContentLength: size,
            ContentMD5: contentMd5,
            ContentType: 'application/octet-stream',
          }),
        );
        return;
      } catch (err) {
        if (attempt >= attempts || !transient(err)) throw this.failure('PutObject', err);
        log.warn({ attempt, error: describe(err) }, 'S3 PutObject failed, retrying');
        await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
      }
    }
  }

  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.failure(op, err);
    }
  }

  /** One readable error: the operation, the bucket and where it is, the S3 error code; never a credential. */
  private failure(op: string, err: unknown): DomainError {
    if (err instanceof DomainError) return err;
    const code = describe(err);
    if (code.startsWith('NoSuchKey'))
      return new DomainError(DomainErrorCode.NotFound, 'The image is not in the S3 image store');
    return new S3StoreError(
      `S3 image store: ${op} on bucket "${this.bucket}" at ${this.where} failed: ${code}${hint(code)}`,
      (err as S3Failure).$metadata?.httpStatusCode,
    );
  }
}

/** The S3 error code and HTTP status, or the network error's code. */
function describe(err: unknown): string {
  const f = err as S3Failure;
  const status = f.$metadata?.httpStatusCode;
  if (status) return `${f.Code ?? f.name ?? 'Error'} (HTTP ${status})`;
  // A socket error from another realm (a test VM) reaches us wrapped, its code only in the message.
  const fromMessage = /\b(E[A-Z]{3,})\b/.exec(err instanceof Error ? err.message : '')?.[1];
  return f.code ?? fromMessage ?? f.name ?? 'Error';
}

function hint(code: string): string {
  if (/^NoSuchBucket|^NotFound/.test(code)) return ': the bucket does not exist';
  if (/^(AccessDenied|Forbidden|InvalidAccessKeyId|SignatureDoesNotMatch)/.test(code))
    return ': check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and the bucket policy';
  return '';
}

/** Worth another try: no answer at all, a 5xx, throttling, or what the SDK itself calls retryable. */
function transient(err: unknown): boolean {
  const f = err as S3Failure;
  const status = f.$metadata?.httpStatusCode;
  return status === undefined || status >= 500 || status === 429 || Boolean(f.$retryable);
}
