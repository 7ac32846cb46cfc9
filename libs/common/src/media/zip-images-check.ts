import { sniffMediaType } from './sniff-media-type';
import { Unzip, UnzipInflate, type UnzipFile } from 'fflate';

const IMAGE_NAME = /\.(jpe?g|png)$/i;

/** `IMAGE_ZIP_MAX_UNPACKED_BYTES`' default: far above any zip of JPEG/PNG files of `IMAGE_MAX_BYTES` (they hardly compress). */
export const DEFAULT_ZIP_MAX_UNPACKED_BYTES = 1024 * 1024 * 1024;

/**
 * Bytes given to the inflater at a time: one push is inflated in one go, up to ~1000 times its size, so a
 * bomb pushed whole would be unpacked whole (in memory, the event loop blocked) before its size is seen.
 */
const PUSH_BYTES = 16 * 1024;

export interface ZipImagesCheckOptions {
  /** The most all entries together may unpack to (default {@link DEFAULT_ZIP_MAX_UNPACKED_BYTES}). */
  maxUnpackedBytes?: number;
}

/**
 * Follows a zip as its bytes go by (never holding it whole): Hemato.AI takes a zip only of JPEG and
 * PNG files (folders allowed), so every entry must have a .jpg/.jpeg/.png name and JPEG or PNG bytes,
 * and there must be at least one. Each entry is inflated as it passes, only its first bytes looked at.
 * `push` and `end` answer what is wrong (first problem found), or null.
 */
export class ZipImagesCheck {
  private readonly unzip = new Unzip();
  private images = 0;
  private unpacked = 0;
  private problem: string | null = null;
  private readonly maxUnpackedBytes: number;

  constructor(opts: ZipImagesCheckOptions = {}) {
    this.maxUnpackedBytes = opts.maxUnpackedBytes ?? DEFAULT_ZIP_MAX_UNPACKED_BYTES;
    this.unzip.register(UnzipInflate);
    this.unzip.onfile = (file) => this.entry(file);
  }

  push(chunk: Uint8Array): string | null {
    if (this.problem) return this.problem;
    try {
      // In slices, stopping at the first problem: a bomb is given up after at most one slice past the limit.
      for (let at = 0; at < chunk.length && !this.problem; at += PUSH_BYTES)
        this.unzip.push(chunk.subarray(at, at + PUSH_BYTES));
    } catch (err) {
      this.problem = `the zip cannot be read (${err instanceof Error ? err.message : String(err)})`;
    }
    return this.problem;
  }

  end(): string | null {
    if (this.problem) return this.problem;
    try {
      this.unzip.push(new Uint8Array(0), true);
    } catch (err) {
      this.problem = `the zip cannot be read (${err instanceof Error ? err.message : String(err)})`;
    }
    if (!this.problem && this.images === 0) this.problem = 'the zip holds no JPEG or PNG file';
    return this.problem;
  }

  private entry(file: UnzipFile): void {
    if (this.problem || file.name.endsWith('/')) return;
    const name = JSON.stringify(file.name);
    if (!IMAGE_NAME.test(file.name)) {
      this.problem = `the zip holds ${name}: only .jpg, .jpeg and .png files may be in it`;
      return;
    }
    let head = Buffer.alloc(0);
    let judged = false;
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
      if (judged) return;
      head = Buffer.concat([head, data]);
      if (head.length < 8 && !final) return;
      judged = true;
      const kind = sniffMediaType(head);
      if (kind === 'image/jpeg' || kind === 'image/png') this.images++;
      else this.problem ??= `the zip entry ${name} is not a JPEG or PNG image`;
    };
    file.start();
  }
}

/** The same check on bytes already in memory (an image inline in an order). */
export function zipImagesProblem(bytes: Uint8Array, opts: ZipImagesCheckOptions = {}): string | null {
  const check = new ZipImagesCheck(opts);
  return check.push(bytes) ?? check.end();
}
