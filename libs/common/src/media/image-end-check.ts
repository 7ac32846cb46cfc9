/**
 * Whether a JPEG or PNG is whole: it reaches its end (a JPEG's end-of-image marker outside any segment,
 * a PNG's IEND chunk), followed its structure as the bytes go by, never holding them. A file cut short
 * (a transfer broken off, an interface engine truncating a long field, a scanner still writing) has the
 * right first bytes and would be taken, then fail at Hemato.AI, which decodes it. Bytes after the end
 * are allowed (some cameras append data).
 */
export class ImageEndCheck {
  private done = false;
  /** Bytes still to skip (a segment's or a chunk's body). */
  private skip = 0;
  private state: 'start' | 'marker' | 'code' | 'length' | 'entropy' | 'entropy-ff' | 'chunk' | 'iend' = 'start';
  /** Bytes gathered for a fixed-size field (signature, segment length, chunk header). */
  private field: number[] = [];
  private code = 0;

  constructor(private readonly type: 'image/jpeg' | 'image/png') {}

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.done) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      i = this.type === 'image/jpeg' ? this.jpeg(chunk, i) : this.png(chunk, i);
    }
  }

  /** What is wrong at the end, or null. */
  end(): string | null {
    // A PNG ends with its IEND chunk's CRC.
    if (this.done || (this.state === 'iend' && this.skip === 0)) return null;
    return this.type === 'image/jpeg'
      ? 'the JPEG is cut short (it ends before its end-of-image marker)'
      : 'the PNG is cut short (it ends before its IEND chunk)';
  }

  /** One step of the JPEG markers: returns where to go on from. */
  private jpeg(b: Uint8Array, i: number): number {
    switch (this.state) {
      case 'start': // SOI (FF D8), checked by the sniffing already
        this.skip = 2;
        this.state = 'marker';
        return i;
      case 'marker': {
        // A marker starts with FF; anything else between segments is passed over to the next FF.
        const ff = indexOfFF(b, i);
        if (ff < 0) return b.length;
        this.state = 'code';
        return ff + 1;
      }
      case 'code': {
        const c = b[i]!;
        if (c === 0xff) return i + 1; // fill bytes
        if (c === 0xd9) {
          this.done = true;
          return i + 1;
        }
        // Standalone markers (TEM, RSTn) carry no length.
        if (c === 0x01 || (c >= 0xd0 && c <= 0xd7)) {
          this.state = 'marker';
          return i + 1;
        }
        this.code = c;
        this.field = [];
        this.state = 'length';
        return i + 1;
      }
      case 'length': {
        this.field.push(b[i]!);
        if (this.field.length < 2) return i + 1;
        this.skip = Math.max(0, ((this.field[0]! << 8) | this.field[1]!) - 2);
        // After a scan's header come its entropy-coded bytes, up to the next marker.
        this.state = this.code === 0xda ? 'entropy' : 'marker';
        return i + 1;
      }
      case 'entropy': {
        const ff = indexOfFF(b, i);
        if (ff < 0) return b.length;
        this.state = 'entropy-ff';
        return ff + 1;
      }
      case 'entropy-ff': {
        const c = b[i]!;
        if (c === 0xff) return i + 1;
        // FF 00 is a data byte, RSTn a restart inside the scan: the scan goes on.
        if (c === 0x00 || (c >= 0xd0 && c <= 0xd7)) {
          this.state = 'entropy';
          return i + 1;
        }
        this.state = 'code';
        return i;
      }
      case 'chunk':
      case 'iend': // PNG states: never reached for a JPEG
        return b.length;
    }
  }

  /** One step of the PNG chunks: signature, then (length, type, data, CRC) until IEND. */
  private png(b: Uint8Array, i: number): number {
    if (this.state === 'iend') {
      this.done = true;
      return b.length;
    }
    if (this.state === 'start') {
      this.skip = 8;
      this.state = 'chunk';
      this.field = [];
      return i;
    }
    const take = Math.min(8 - this.field.length, b.length - i);
    for (let k = 0; k < take; k++) this.field.push(b[i + k]!);
    if (this.field.length < 8) return i + take;
    const f = this.field;
    const length = ((f[0]! << 24) | (f[1]! << 16) | (f[2]! << 8) | f[3]!) >>> 0;
    const type = String.fromCharCode(f[4]!, f[5]!, f[6]!, f[7]!);
    this.field = [];
    this.skip = length + 4;
    if (type === 'IEND') this.state = 'iend';
    return i + take;
  }
}

function indexOfFF(b: Uint8Array, from: number): number {
  return b.indexOf(0xff, from);
}

/** The same check on bytes already in memory (an image inline in an order): what is wrong, or null. */
export function imageEndProblem(bytes: Uint8Array, type: 'image/jpeg' | 'image/png'): string | null {
  const check = new ImageEndCheck(type);
  check.push(bytes);
  return check.end();
}
