import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { HematoFileType } from './contract';
import { HematoApiError } from './errors';

/** What {@link HematoClient.uploadFile} can send: a file path, bytes in memory, or a stream. */
export type HematoUploadSource = string | Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/** File types as callers may name them: a MIME type or an extension. */
export type HematoFileTypeInput = HematoFileType | 'jpg' | 'jpeg' | 'png' | 'zip' | (string & {});

/** Prefix of every Hemato.AI file id. */
export const FILE_ID_PREFIX = 'sha224-i-';

/** The Hemato.AI id of some bytes: `sha224-i-` + hex SHA-224. */
export function fileIdOf(bytes: Uint8Array): string {
  return FILE_ID_PREFIX + createHash('sha224').update(bytes).digest('hex');
}

/** Turns a finished SHA-224 into a Hemato.AI file id. */
export function fileIdFromHash(hash: Hash): string {
  return FILE_ID_PREFIX + hash.digest('hex');
}

const TYPE_ALIASES: Record<string, HematoFileType> = {
  'image/jpeg': 'image/jpeg',
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  'image/png': 'image/png',
  png: 'image/png',
  'application/zip': 'application/zip',
  'application/x-zip-compressed': 'application/zip',
  zip: 'application/zip',
};

/**
 * Normalises a file type to one of the three the reference accepts (`image/jpeg`, `image/png`,
 * `application/zip`), or refuses it with an `unsupported_file_type` error.
 */
export function normaliseFileType(type: string): HematoFileType {
  const key = type.trim().toLowerCase().replace(/^\./, '').split(';')[0]!.trim();
  const t = TYPE_ALIASES[key];
  if (!t) {
    throw new HematoApiError({
      kind: 'unsupported_file_type',
      message: `Hemato.AI accepts JPEG, PNG or a ZIP of JPEG/PNG files, not "${type.slice(0, 60)}"`,
    });
  }
  return t;
}

/** The type announced by a file's first bytes, or undefined when it is none of ours. */
export function sniffFileType(head: Uint8Array): HematoFileType | undefined {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'image/jpeg';
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (head.length >= 8 && png.every((b, i) => head[i] === b)) return 'image/png';
  // Local file header or, for an empty archive, the end-of-central-directory record.
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    return 'application/zip';
  }
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x05 && head[3] === 0x06) {
    return 'application/zip';
  }
  return undefined;
}

function refuse(message: string): HematoApiError {
  return new HematoApiError({ kind: 'unsupported_file_type', message });
}

function assertHead(head: Uint8Array, type: HematoFileType): void {
  const sniffed = sniffFileType(head);
  if (sniffed !== type) {
    throw refuse(
      head.length === 0
        ? 'the file is empty'
        : `the file's content is ${sniffed ?? 'not JPEG, PNG or ZIP'}, not ${type} as declared`,
    );
  }
}

const IMAGE_ENTRY = /\.(jpe?g|png)$/i;

/**
 * Lists the entry names of a ZIP from its central directory (ZIP64 included), reading only the
 * tail of the file. `read(position, length)` returns bytes of the archive.
 */
export async function zipEntryNames(
  size: number,
  read: (position: number, length: number) => Promise<Buffer>,
): Promise<string[]> {
  const tailLen = Math.min(size, 22 + 0xffff + 20);
  const tail = await read(size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw refuse('the ZIP has no central directory');
  let entries = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (cdOffset === 0xffffffff || cdSize === 0xffffffff || entries === 0xffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) throw refuse('the ZIP64 locator is missing');
    const z64At = Number(tail.readBigUInt64LE(loc + 8));
    const z64 = await read(z64At, 56);
    if (z64.readUInt32LE(0) !== 0x06064b50) throw refuse('the ZIP64 end record is missing');
    entries = Number(z64.readBigUInt64LE(32));
    cdSize = Number(z64.readBigUInt64LE(40));
    cdOffset = Number(z64.readBigUInt64LE(48));
  }
  if (cdOffset + cdSize > size || cdSize > 64 * 1024 * 1024) throw refuse('the ZIP central directory is malformed');
  const cd = await read(cdOffset, cdSize);
  const names: string[] = [];
  let p = 0;
  for (let n = 0; n < entries; n++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw refuse('the ZIP central directory is malformed');
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    names.push(cd.toString('utf8', p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

/** Refuses a ZIP holding anything but JPEG/PNG files (directories allowed), or no image at all. */
export function assertZipOfImages(names: string[]): void {
  const files = names.filter((n) => !n.endsWith('/'));
  const other = files.find((n) => !IMAGE_ENTRY.test(n));
  if (other !== undefined) throw refuse('the ZIP holds a file that is not .jpg/.jpeg/.png');
  if (files.length === 0) throw refuse('the ZIP holds no image');
}

/**
 * An upload body made replayable where the source allows it: each `open()` yields a fresh
 * iterable and hash. A stream can be opened once; paths and buffers any number of times.
 */
export interface PreparedUpload {
  type: HematoFileType;
  replayable: boolean;
  /** Known before sending for in-memory bytes. */
  expectedFileId?: string;
  /** Bytes when known in advance (buffers and files). */
  size?: number;
  open(): { body: Buffer | Readable | AsyncIterable<Buffer>; result: () => { fileId: string; bytes: number } };
}

const READ_CHUNK = 256 * 1024;

/** Streams `source` while hashing and counting it. */
interface HashState {
  hash: Hash;
  bytes: number;
  fileId?: string;
}

function newHashState(): HashState {
  return { hash: createHash('sha224'), bytes: 0 };
}

/** Finishes the hash once; later calls return the same id. */
function finish(state: HashState): { fileId: string; bytes: number } {
  state.fileId ??= fileIdFromHash(state.hash);
  return { fileId: state.fileId, bytes: state.bytes };
}

async function* hashing(source: AsyncIterable<Uint8Array | string>, state: HashState) {
  for await (const chunk of source) {
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.isBuffer(chunk)
          ? chunk
          : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // A body still streaming after the answer arrived (the service answered early) must not
    // touch a finished hash.
    if (state.fileId !== undefined) return;
    state.hash.update(buf);
    state.bytes += buf.length;
    yield buf;
  }
}

async function* prepend(first: Buffer[], rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* first;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/**
 * Checks a source against its declared type before any network call (content sniffing, and for
 * ZIP files and buffers the archive's entry list) and returns a body that hashes while it streams.
 */
export async function prepareUpload(source: HematoUploadSource, declared: string): Promise<PreparedUpload> {
  const type = normaliseFileType(declared);

  if (typeof source === 'string') {
    const fh = await open(source, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new HematoApiError({ kind: 'invalid_argument', message: `cannot open the upload file (${e.code})` });
    });
    let size: number;
    try {
      size = (await fh.stat()).size;
      const read = async (position: number, length: number) => {
        const buf = Buffer.alloc(length);
        const { bytesRead } = await fh.read(buf, 0, length, position);
        return buf.subarray(0, bytesRead);
      };
      assertHead(await read(0, Math.min(size, 8)), type);
      if (type === 'application/zip') assertZipOfImages(await zipEntryNames(size, read));
    } finally {
      await fh.close();
    }
    return {
      type,
      replayable: true,
      size,
      open() {
        const state = newHashState();
        const stream = createReadStream(source, { highWaterMark: READ_CHUNK });
        // Hash in the very 'data' events the HTTP client sends from: no extra stream stage, so a
        // file upload costs the hash and nothing more. Paused first so that no chunk flows before
        // undici attaches its own listener (it resumes the body itself).
        stream.pause();
        stream.on('data', (chunk: string | Buffer) => {
          // No encoding is set, so chunks are always Buffers.
          if (state.fileId !== undefined || typeof chunk === 'string') return;
          state.hash.update(chunk);
          state.bytes += chunk.length;
        });
        return { body: stream, result: () => finish(state) };
      },
    };
  }

  if (source instanceof Uint8Array) {
    const buf = Buffer.isBuffer(source) ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    assertHead(buf.subarray(0, 8), type);
    if (type === 'application/zip') {
      assertZipOfImages(await zipEntryNames(buf.length, async (p, l) => buf.subarray(p, p + l)));
    }
    const fileId = fileIdOf(buf);
    return {
      type,
      replayable: true,
      expectedFileId: fileId,
      size: buf.length,
      open: () => ({ body: buf, result: () => ({ fileId, bytes: buf.length }) }),
    };
  }

  // A stream: read just enough to sniff the type, then send what was read followed by the rest.
  const iterator = (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLen = 0;
  while (headLen < 8) {
    const next = await iterator.next();
    if (next.done) break;
    const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value);
    head.push(chunk);
    headLen += chunk.length;
  }
  try {
    assertHead(Buffer.concat(head).subarray(0, 8), type);
  } catch (e) {
    await iterator.return?.();
    if (source instanceof Readable) source.destroy();
    throw e;
  }
  let opened = false;
  return {
    type,
    replayable: false,
    open() {
      if (opened) throw new HematoApiError({ kind: 'invalid_argument', message: 'a stream source can be sent once' });
      opened = true;
      const state = newHashState();
      return { body: hashing(prepend(head, iterator), state), result: () => finish(state) };
    },
  };
}
