/** MLLP release 1 framing: `<VT> message <FS><CR>`. */
export const VT = 0x0b;
export const FS = 0x1c;
export const CR = 0x0d;

/** Wraps one HL7 message in an MLLP frame. */
export function encodeFrame(message: Buffer | string, encoding: BufferEncoding = 'utf8'): Buffer {
  const body = typeof message === 'string' ? Buffer.from(message, encoding) : message;
  const out = Buffer.allocUnsafe(body.length + 3);
  out[0] = VT;
  body.copy(out, 1);
  out[body.length + 1] = FS;
  out[body.length + 2] = CR;
  return out;
}

/** What the decoder found in the byte stream. */
export type FrameEvent =
  /** A complete message (without the framing bytes). */
  | { kind: 'frame'; data: Buffer }
  /** A complete frame that was over the size limit: its bytes were dropped, `head` keeps the first ones (for the MSH). */
  | { kind: 'oversize'; head: Buffer; size: number };

/** Bytes of an oversized frame kept to read its MSH (so the AR can still name the message). */
const HEAD_BYTES = 4096;

/**
 * Incremental MLLP decoder: any chunking (a frame split over many reads, many frames in one read).
 * Bytes outside a frame are noise and skipped; a new start block inside a frame means the previous
 * frame was truncated, it is dropped. A frame over `maxBytes` is not buffered: it is counted and
 * reported as `oversize` when its end arrives, so memory stays bounded and the connection stays usable.
 */
export class MllpDecoder {
  private chunks: Buffer[] = [];
  private size = 0;
  private inFrame = false;
  private oversize = false;
  private head: Buffer | null = null;
  /** The previous chunk ended with FS: a CR at the start of the next one belongs to that trailer. */
  private skipCr = false;

  constructor(private readonly maxBytes: number) {}

  /** Feeds received bytes; returns the events completed by them, in order. */
  push(data: Buffer): FrameEvent[] {
    const events: FrameEvent[] = [];
    let i = 0;
    if (this.skipCr && data.length > 0) {
      if (data[0] === CR) i = 1;
      this.skipCr = false;
    }
    while (i < data.length) {
      if (!this.inFrame) {
        const start = data.indexOf(VT, i);
        if (start < 0) return events; // noise between frames
        this.beginFrame();
        i = start + 1;
        continue;
      }
      // Inside a frame: look for its end, or a new start (the previous frame was truncated).
      let end = -1;
      let restart = -1;
      for (let j = i; j < data.length; j++) {
        const b = data[j];
        if (b === FS) {
          end = j;
          break;
        }
        if (b === VT) {
          restart = j;
          break;
        }
      }
      const stop = end >= 0 ? end : restart >= 0 ? restart : data.length;
      this.append(data.subarray(i, stop));
      if (restart >= 0) {
        this.beginFrame();
        i = restart + 1;
        continue;
      }
      if (end < 0) return events;
      events.push(this.finishFrame());
      i = end + 1;
      if (i < data.length) {
        if (data[i] === CR) i++;
      } else {
        this.skipCr = true;
      }
    }
    return events;
  }

  /** Bytes held for the frame in progress (0 between frames). */
  get pendingBytes(): number {
    return this.inFrame ? this.size : 0;
  }

  private beginFrame(): void {
    this.chunks = [];
    this.size = 0;
    this.inFrame = true;
    this.oversize = false;
    this.head = null;
  }

  private append(part: Buffer): void {
    if (part.length === 0) return;
    const newSize = this.size + part.length;
    if (!this.oversize && newSize > this.maxBytes) {
      this.oversize = true;
      this.head = Buffer.concat([...this.chunks, part]).subarray(0, HEAD_BYTES);
      this.chunks = [];
    }
    if (!this.oversize) this.chunks.push(Buffer.from(part)); // copy: the socket may reuse its buffer
    this.size = newSize;
  }

  private finishFrame(): FrameEvent {
    this.inFrame = false;
    const ev: FrameEvent = this.oversize
      ? { kind: 'oversize', head: Buffer.from(this.head ?? Buffer.alloc(0)), size: this.size }
      : { kind: 'frame', data: this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size) };
    this.chunks = [];
    this.head = null;
    this.size = 0;
    this.oversize = false;
    return ev;
  }
}
