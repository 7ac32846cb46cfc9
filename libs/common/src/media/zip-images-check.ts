import { ImageEndCheck } from './image-end-check';
import { sniffMediaType } from './sniff-media-type';
import { Unzip, UnzipInflate, type UnzipFile } from 'fflate';

const IMAGE_NAME = /\.(jpe?g|png)$/i;

/** A name an unzipper would write outside the folder it unzips into: absolute, a drive, or a `..` step. */
function leadsOut(name: string): boolean {
  const path = name.replace(/\\/g, '/');
  return path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.split('/').includes('..');
}

/** `IMAGE_ZIP_MAX_UNPACKED_BYTES`' default: far above any zip of JPEG/PNG files of `IMAGE_MAX_BYTES` (they hardly compress). */
export const DEFAULT_ZIP_MAX_UNPACKED_BYTES = 1024 * 1024 * 1024;

/**
 * Bytes given to the inflater at a time: one push is inflated in one go, up to ~1000 times its size, so a
 * bomb pushed whole would be unpacked whole (in memory, the event loop blocked) before its size is seen.
 */
const PUSH_BYTES = 16 * 1024;

/**
 * What {@link ZipImagesCheck.pushYielding} aims to inflate per push: it sizes its slices by the ratio just seen,
 * so a slice of a bomb (~1000:1) is a few hundred bytes and one of images (which hardly compress) the most,
 * {@link MAX_YIELDING_PUSH_BYTES}. That most bounds a push that meets a bomb after images: 4 KiB inflate to 4 MiB
 * at most (deflate's limit is ~1032:1). Small slices of everything cost 5x the time on a zip of 100 MB of images.
 */
const YIELDING_UNPACKED_PER_PUSH = 256 * 1024;
const MIN_YIELDING_PUSH_BYTES = 64;
const MAX_YIELDING_PUSH_BYTES = 4 * 1024;

/** How long {@link ZipImagesCheck.pushYielding} runs before it lets other work run (a turn of the event loop). */
const YIELD_EVERY_MS = 10;

/**
 * The most of a zip's end kept while it streams by, for its central directory (read at the end): 4 MiB of
 * directory (tens of thousands of entries) and the longest end record with its comment.
 */
const MAX_DIRECTORY_BYTES = 4 * 1024 * 1024;
const MAX_END_RECORD_BYTES = 22 + 0xffff;
const TAIL_BYTES = MAX_DIRECTORY_BYTES + MAX_END_RECORD_BYTES + 20 + 56;

const NO_END_RECORD = 'the zip has no end record (cut short?)';

export interface ZipImagesCheckOptions {
  /** The most all entries together may unpack to (default {@link DEFAULT_ZIP_MAX_UNPACKED_BYTES}). */
  maxUnpackedBytes?: number;
}

/**
 * Follows a zip as its bytes go by (never holding it whole): Hemato.AI takes a zip only of JPEG and
 * PNG files (folders allowed), so every entry must have a .jpg/.jpeg/.png name and JPEG or PNG bytes,
 * and there must be at least one. Each entry is inflated as it passes, only its first bytes looked at.
 * At the end its central directory (what an unzipper, Hemato.AI's too, reads the entries by) must be
 * there, where its end record says, and list the entries just checked: a zip cut short after its
 * last entry, or whose directory names other files, is refused rather than failing at Hemato.AI.
 * `push` and `end` answer what is wrong (first problem found), or null.
 */
export class ZipImagesCheck {
  private readonly unzip = new Unzip();
  private images = 0;
  private unpacked = 0;
  private problem: string | null = null;
  private readonly maxUnpackedBytes: number;
  /** Entry names in the order the local headers gave them (folders too). */
  private readonly names: string[] = [];
  private readonly seen = new Set<string>();
  /** The last bytes seen (up to {@link TAIL_BYTES}), and how many came in all. */
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(opts: ZipImagesCheckOptions = {}) {
    this.maxUnpackedBytes = opts.maxUnpackedBytes ?? DEFAULT_ZIP_MAX_UNPACKED_BYTES;
    this.unzip.register(UnzipInflate);
    this.unzip.onfile = (file) => this.entry(file);
  }

  push(chunk: Uint8Array): string | null {
    if (this.problem) return this.problem;
    this.keepTail(chunk);
    try {
      // In slices, stopping at the first problem: a bomb is given up after at most one slice past the limit.
      for (let at = 0; at < chunk.length && !this.problem; at += PUSH_BYTES)
        this.unzip.push(chunk.subarray(at, at + PUSH_BYTES));
    } catch (err) {
      this.problem = `the zip cannot be read (${err instanceof Error ? err.message : String(err)})`;
    }
    return this.problem;
  }

  /**
   * As `push`, letting other work run (a turn of the event loop) every {@link YIELD_EVERY_MS} ms. A bomb inflates
   * for seconds before it reaches the limit (a 1.1 MB zip of zeros, to 1 GiB: 15-24 s measured on a shared 2-core
   * machine); in one go that held the process, and every other sender waited for its ACK, or for its bytes to be
   * read, until the bomb was refused.
   */
  async pushYielding(chunk: Uint8Array): Promise<string | null> {
    if (this.problem) return this.problem;
    this.keepTail(chunk);
    let since = performance.now();
    let slice = MIN_YIELDING_PUSH_BYTES;
    try {
      for (let at = 0; at < chunk.length && !this.problem;) {
        const before = this.unpacked;
        this.unzip.push(chunk.subarray(at, at + slice));
        at += slice;
        const out = this.unpacked - before;
        // Towards the slice that inflates to YIELDING_UNPACKED_PER_PUSH at the ratio just seen, at most doubling.
        if (out > 0) {
          const aim = Math.floor((slice * YIELDING_UNPACKED_PER_PUSH) / out);
          slice = Math.min(MAX_YIELDING_PUSH_BYTES, Math.max(MIN_YIELDING_PUSH_BYTES, Math.min(slice * 2, aim)));
        }
        if (performance.now() - since >= YIELD_EVERY_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          since = performance.now();
        }
      }
    } catch (err) {
      this.problem = `the zip cannot be read (${err instanceof Error ? err.message : String(err)})`;
    }
    return this.problem;
  }

  /**
   * The problem `end` found is that the zip stops short: in an entry, or before its end record. A file
   * still being written looks like that (the drop folder waits for the rest of it).
   */
  cutShort = false;

  end(): string | null {
    if (this.problem) return this.problem;
    try {
      this.unzip.push(new Uint8Array(0), true);
    } catch {
      // The reader still expected entry data when the bytes ran out.
      this.problem = 'the zip is cut short (it ends inside an entry)';
    }
    // Anything wrong at the very end (the last entry's data, or its end check) is the zip ending early.
    if (this.problem) this.cutShort = true;
    if (!this.problem && this.images === 0) this.problem = 'the zip holds no JPEG or PNG file';
    if (!this.problem) {
      this.problem = this.directoryProblem();
      this.cutShort = this.problem === NO_END_RECORD;
    }
    return this.problem;
  }

  private keepTail(chunk: Uint8Array): void {
    this.total += chunk.length;
    this.tail.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.tailBytes += chunk.length;
    while (this.tail.length > 1 && this.tailBytes - this.tail[0]!.length >= TAIL_BYTES)
      this.tailBytes -= this.tail.shift()!.length;
  }

  /** The central directory, read from the tail kept, against the entries the stream held. */
  private directoryProblem(): string | null {
    const buf = Buffer.concat(this.tail);
    this.tail = [];
    const base = this.total - buf.length; // file offset of buf[0]
    // The end record: the last signature within its longest reach of the end (as unzippers look for it).
    let end = -1;
    for (let i = buf.length - 22; i >= 0 && buf.length - i <= MAX_END_RECORD_BYTES; i--) {
      if (buf.readUInt32LE(i) === 0x06054b50) {
        end = i;
        break;
      }
    }
    if (end < 0) return NO_END_RECORD;
    let count = buf.readUInt16LE(end + 10);
    let size = buf.readUInt32LE(end + 12);
    let offset = buf.readUInt32LE(end + 16);
    let directoryEnd = base + end;
    if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
      // Zip64: the locator just before the end record points to the zip64 end record.
      const locator = end - 20;
      const at =
        locator >= 0 && buf.readUInt32LE(locator) === 0x07064b50 ? Number(buf.readBigUInt64LE(locator + 8)) - base : -1;
      if (at < 0 || at + 56 > locator || buf.readUInt32LE(at) !== 0x06064b50)
        return 'the zip has no zip64 end record (cut short?)';
      count = Number(buf.readBigUInt64LE(at + 32));
      size = Number(buf.readBigUInt64LE(at + 40));
      offset = Number(buf.readBigUInt64LE(at + 48));
      directoryEnd = base + at;
    }
    if (offset + size !== directoryEnd)
      return 'the zip central directory is not where its end record says (cut short, or bytes added to the zip)';
    let p = offset - base;
    if (p < 0) return `the zip central directory is over ${MAX_DIRECTORY_BYTES} bytes (too many entries)`;
    const listed: string[] = [];
    for (let k = 0; k < count; k++) {
      if (p + 46 > end || buf.readUInt32LE(p) !== 0x02014b50) return 'the zip central directory cannot be read';
      const flags = buf.readUInt16LE(p + 8);
      const nameLength = buf.readUInt16LE(p + 28);
      const next = p + 46 + nameLength + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
      if (next > directoryEnd - base) return 'the zip central directory cannot be read';
      const name = buf.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLength);
      if (flags & 1) return `the zip entry ${JSON.stringify(name)} is encrypted: it cannot be read`;
      // Unix mode in the high half of the external attributes, when made on Unix (host 3).
      if (buf[p + 5] === 3 && ((buf.readUInt32LE(p + 38) >>> 16) & 0o170000) === 0o120000)
        return `the zip entry ${JSON.stringify(name)} is a symbolic link: only files and folders may be in it`;
      listed.push(name);
      p = next;
    }
    const sorted = (names: string[]) => [...names].sort().join('\u0000');
    if (sorted(listed) !== sorted(this.names))
      return 'the zip central directory does not list the entries the zip holds';
    return null;
  }

  private entry(file: UnzipFile): void {
    const name = JSON.stringify(file.name);
    if (!this.problem && leadsOut(file.name))
      this.problem = `the zip entry ${name} leads out of the zip: entries must be names inside it`;
    if (!this.problem && this.seen.has(file.name))
      this.problem = `the zip holds ${name} twice: an unzipper would keep only one`;
    this.names.push(file.name);
    this.seen.add(file.name);
    if (this.problem || file.name.endsWith('/')) return;
    if (!IMAGE_NAME.test(file.name)) {
      this.problem = `the zip holds ${name}: only .jpg, .jpeg and .png files may be in it`;
      return;
    }
    let head = Buffer.alloc(0);
    /** Follows the entry to its end once its first bytes said JPEG or PNG. */
    let ends: ImageEndCheck | null = null;
    file.ondata = (err, data, final) => {
      if (err) {
        this.problem ??= `the zip entry ${name} cannot be read (${err.message})`;
        return;
      }
      this.unpacked += data.length;
      if (this.unpacked > this.maxUnpackedBytes) {
        this.problem ??= `the zip unpacks to more than ${this.maxUnpackedBytes} bytes (IMAGE_ZIP_MAX_UNPACKED_BYTES)`;
        return;
      }
      if (!ends) {
        head = Buffer.concat([head, data]);
        if (head.length < 8 && !final) return;
        const kind = sniffMediaType(head);
        if (kind !== 'image/jpeg' && kind !== 'image/png') {
          this.problem ??= `the zip entry ${name} is not a JPEG or PNG image`;
          return;
        }
        this.images++;
        ends = new ImageEndCheck(kind);
        data = head;
      }
      ends.push(data);
      const cutShort = final ? ends.end() : null;
      if (cutShort) this.problem ??= `the zip entry ${name}: ${cutShort}`;
    };
    file.start();
  }
}

/** The same check on bytes already in memory (an image inline in an order). */
export function zipImagesProblem(bytes: Uint8Array, opts: ZipImagesCheckOptions = {}): string | null {
  const check = new ZipImagesCheck(opts);
  return check.push(bytes) ?? check.end();
}

/** {@link zipImagesProblem} letting other work run while it inflates (see {@link ZipImagesCheck.pushYielding}). */
export async function zipImagesProblemYielding(
  bytes: Uint8Array,
  opts: ZipImagesCheckOptions = {},
): Promise<string | null> {
  const check = new ZipImagesCheck(opts);
  return (await check.pushYielding(bytes)) ?? check.end();
}
