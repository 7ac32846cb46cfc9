import { sniffMediaType } from '@hemato/common';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DomainError, DomainErrorCode } from '@hemato/common';
import { ImageEndCheck, ZipImagesCheck, type ZipImagesCheckOptions } from '@hemato/common';

export interface StoredFile {
  /** Key in the store (content-addressed: the same bytes share one key). */
  key: string;
  /** SHA-224 hex of the bytes: Hemato.AI's file id is `sha224-i-` + this. */
  sha224: string;
  size: number;
  /** The first bytes (up to 16), enough to tell the file type without reading it again. */
  head: Buffer;
}

/** Where image bytes live. Content-addressed, so a retried write is harmless. */
export interface FileStore {
  /** Streams the bytes in, hashing on the way; refuses more than `maxBytes`. */
  put(source: Readable | Buffer, maxBytes: number): Promise<StoredFile>;
  open(key: string): Promise<Readable>;
  size(key: string): Promise<number>;
  /** A store on the network: it answers and may be used (throws with the reason otherwise). */
  check?(): Promise<void>;
}

/** The store key of some bytes, whatever the store: `<first 2 hex>/<sha224>`. */
export function storeKey(sha224: string): string {
  return `${sha224.slice(0, 2)}/${sha224}`;
}

/** Refuses anything but a store key (a key comes back from the database: never a path to follow). */
export function assertStoreKey(key: string): void {
  if (!/^[0-9a-f]{2}\/[0-9a-f]{56}$/.test(key)) throw new Error('bad file store key');
}

/** A limit and a hash on a stream passing through. */
export function hashingLimiter(maxBytes: number) {
  const hash = createHash('sha224');
  let size = 0;
  let head = Buffer.alloc(0);
  const transform = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > maxBytes) {
        cb(new DomainError(DomainErrorCode.TooLarge, `Image is larger than the limit of ${maxBytes} bytes`));
        return;
      }
      hash.update(chunk);
      if (head.length < 16) head = Buffer.concat([head, chunk.subarray(0, 16 - head.length)]);
      cb(null, chunk);
    },
  });
  return { transform, result: () => ({ sha224: hash.digest('hex'), size, head }) };
}

/**
 * Streams `source` through `transforms` into the file `file`. When that fails (a refused type, a size over the
 * limit, a broken upload) the file is removed, once its write stream has closed: a source refused at its first
 * bytes fails the pipeline while the stream may still be opening the file, and a removal before that open
 * completes was undone by it, leaving an orphan in the spool folder.
 */
export async function spoolToFile(source: Readable | Buffer, transforms: Transform[], file: string): Promise<void> {
  const out = createWriteStream(file);
  try {
    await pipeline([Buffer.isBuffer(source) ? Readable.from([source]) : source, ...transforms, out]);
  } catch (err) {
    if (!out.closed) await once(out, 'close').catch(() => undefined);
    await rm(file, { force: true });
    throw err;
  }
}

/** Files under a local folder: `<root>/<first 2 hex>/<sha224>`. */
export class LocalFileStore implements FileStore {
  constructor(private readonly root: string) {}

  async put(source: Readable | Buffer, maxBytes: number): Promise<StoredFile> {
    await mkdir(path.join(this.root, 'tmp'), { recursive: true });
    const tmp = path.join(this.root, 'tmp', randomBytes(12).toString('hex'));
    const { transform, result } = hashingLimiter(maxBytes);
    await spoolToFile(source, [transform], tmp);
    try {
      const { sha224, size, head } = result();
      const key = storeKey(sha224);
      await mkdir(path.join(this.root, sha224.slice(0, 2)), { recursive: true });
      await rename(tmp, path.join(this.root, key));
      return { key, sha224, size, head };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async open(key: string): Promise<Readable> {
    const full = this.resolve(key);
    await stat(full);
    return createReadStream(full);
  }

  async size(key: string): Promise<number> {
    return (await stat(this.resolve(key))).size;
  }

  private resolve(key: string): string {
    assertStoreKey(key);
    return path.join(this.root, key);
  }
}

/**
 * A JPEG, PNG or zip that ends before its end: refused where it came in, like any file that is not a whole
 * image; the drop folder, where a scanner may still be writing it, waits for the rest instead.
 */
export class ImageCutShortError extends DomainError {
  constructor(message: string) {
    super(DomainErrorCode.Unsupported, message);
  }
}

export interface ImageGateOptions extends ZipImagesCheckOptions {
  /** The size limit the store will apply (`IMAGE_MAX_BYTES`): past it the gate refuses as too large. */
  maxBytes?: number;
}

/**
 * Lets a stream through only once its first bytes are a JPEG, PNG or zip; otherwise fails it with
 * `Unsupported` (`message`). A zip is followed to its end: an entry that is not a JPEG or PNG (or a zip
 * with none) fails it too, on the way or at its end; so is a JPEG or PNG, which fails when cut short. Put in front of `FileStore.put`, a refused file
 * never stays in the store (no orphan bytes), and nothing is read twice.
 */
export function imageTypeGate(message: string, options: ImageGateOptions = {}): Transform {
  let head: Buffer | null = Buffer.alloc(0);
  let size = 0;
  let zip: ZipImagesCheck | null = null;
  /** A JPEG or PNG is followed to its end: one cut short is refused there. */
  let ends: ImageEndCheck | null = null;
  const refuse = (why?: string) => new DomainError(DomainErrorCode.Unsupported, why ? `${message}: ${why}` : message);
  /**
   * A zip's bytes inflated, letting other work run meanwhile (`pushYielding`): one chunk read from a socket or
   * a file is up to 64 KiB, which a bomb inflates to ~64 MiB; in one go that held the process for seconds, and
   * no other request, upload or HL7 connection was served until it was refused.
   */
  const pushZip = async (chunk: Buffer): Promise<DomainError | null> => {
    const problem = await zip!.pushYielding(chunk);
    return problem ? refuse(problem) : null;
  };
  /** Judges the first bytes; a zip's are also the start of its check. */
  const judge = async (first: Buffer): Promise<DomainError | null> => {
    const type = sniffMediaType(first);
    if (!type) return refuse();
    if (type !== 'application/zip') {
      ends = new ImageEndCheck(type);
      ends.push(first);
      return null;
    }
    zip = new ZipImagesCheck(options);
    return pushZip(first);
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      // Over the size limit is said first, before an end this file will never reach (it is not read to its end).
      size += chunk.length;
      if (options.maxBytes !== undefined && size > options.maxBytes)
        return cb(
          new DomainError(DomainErrorCode.TooLarge, `Image is larger than the limit of ${options.maxBytes} bytes`),
        );
      if (head === null) {
        ends?.push(chunk);
        if (!zip) return cb(null, chunk);
        pushZip(chunk).then((refused) => cb(refused, refused ? undefined : chunk), cb);
        return;
      }
      head = Buffer.concat([head, chunk]);
      if (head.length < 8) return cb();
      const out = head;
      head = null;
      judge(out).then((refused) => cb(refused, refused ? undefined : out), cb);
    },
    flush(cb) {
      const finish = () => {
        const zipProblem = zip?.end();
        if (zipProblem)
          return cb(zip!.cutShort ? new ImageCutShortError(`${message}: ${zipProblem}`) : refuse(zipProblem));
        const endProblem = ends?.end();
        cb(endProblem ? new ImageCutShortError(`${message}: ${endProblem}`) : null);
      };
      // A file shorter than 8 bytes: judged on what there is.
      if (head === null) return finish();
      const out = head;
      head = null;
      judge(out).then((refused) => {
        if (refused) return cb(refused);
        this.push(out);
        finish();
      }, cb);
    },
  });
}

/**
 * `source` through an `imageTypeGate`, ready for `FileStore.put`. On refusal the source is either
 * destroyed (`'destroy'`: a download we stop fetching) or drained and discarded (`'drain'`: an HTTP
 * request body, which must stay readable for the 4xx answer to reach the client).
 */
export function gateImageType(
  source: Readable,
  message: string,
  onRefused: 'drain' | 'destroy',
  options: ImageGateOptions = {},
): Readable {
  const gate = imageTypeGate(message, options);
  source.once('error', (err) => gate.destroy(err));
  gate.once('error', () => {
    source.unpipe(gate);
    if (onRefused === 'destroy') source.destroy();
    else source.resume();
  });
  return source.pipe(gate);
}

export { sniffMediaType };
