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
 * A frame spread over many reads is copied into blocks of this size at most (from 4 KiB, growing with the
 * frame): a peer sending one byte per read costs a few blocks, not one Buffer object (~100 bytes of heap)
 * per read, and a connection held back after one more read holds at most one block more.
 */
const BLOCK_MIN = 4096;
const BLOCK_MAX = 64 * 1024;

/**
 * Incremental MLLP decoder: any chunking (a frame split over many reads, many frames in one read).
 * Bytes outside a frame are noise and skipped; a new start block inside a frame means the previous
 * frame was truncated, it is dropped. A frame over `maxBytes` is not buffered: it is counted and
 * reported as `oversize` when its end arrives, so memory stays bounded and the connection stays usable.
 */
export class MllpDecoder {
  /** Full blocks of the frame in progress, then the block being filled. */
  private blocks: Buffer[] = [];
  private block: Buffer | null = null;
  private blockUsed = 0;
  /** Bytes allocated for the frame in progress (blocks, or the head of an oversize frame). */
  private held = 0;
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
      if (end >= 0 && this.size === 0 && end - i <= this.maxBytes) {
        // The whole frame is in this read (the usual case): one copy, no blocks.
        this.inFrame = false;
        events.push({ kind: 'frame', data: Buffer.from(data.subarray(i, end)) }); // copy: the socket may reuse its buffer
      } else {
        const stop = end >= 0 ? end : restart >= 0 ? restart : data.length;
        this.append(data.subarray(i, stop));
        if (restart >= 0) {
          this.beginFrame();
          i = restart + 1;
          continue;
        }
        if (end < 0) return events;
        events.push(this.finishFrame());
      }
      i = end + 1;
      if (i < data.length) {
        if (data[i] === CR) i++;
      } else {
        this.skipCr = true;
      }
    }
    return events;
  }

  /** Bytes received for the frame in progress (0 between frames), including those dropped when oversize. */
  get pendingBytes(): number {
    return this.inFrame ? this.size : 0;
  }

  /** Memory held for the frame in progress (0 between frames): its blocks, or only the head when oversize. */
  get heldBytes(): number {
    return this.inFrame ? this.held : 0;
  }

  /** A frame is in progress and buffered: more bytes of it take more memory (not so once it is oversize). */
  get growing(): boolean {
    return this.inFrame && !this.oversize;
  }

  private beginFrame(): void {
    this.release();
    this.inFrame = true;
    this.oversize = false;
  }

  private release(): void {
    this.blocks = [];
    this.block = null;
    this.blockUsed = 0;
    this.held = 0;
    this.size = 0;
    this.head = null;
  }

  private append(part: Buffer): void {
    if (part.length === 0) return;
    const newSize = this.size + part.length;
    if (!this.oversize && newSize > this.maxBytes) {
      this.oversize = true;
      // A copy of the first bytes only: a view would keep the whole received frame alive.
      const head = Buffer.alloc(Math.min(HEAD_BYTES, newSize));
      let at = 0;
      for (const b of [...this.blocks, ...(this.block ? [this.block.subarray(0, this.blockUsed)] : []), part]) {
        if (at >= head.length) break;
        at += b.copy(head, at, 0, Math.min(b.length, head.length - at));
      }
      this.release();
      this.head = head;
      this.held = head.length;
    }
    if (!this.oversize) this.copyIn(part); // copy: the socket may reuse its buffer
    this.size = newSize;
  }

  private copyIn(part: Buffer): void {
    let from = 0;
    if (this.block) {
      from = part.copy(this.block, this.blockUsed);
      this.blockUsed += from;
      if (from === part.length) return;
      this.blocks.push(this.block);
    }
    const rest = part.length - from;
    const frameSoFar = this.size + from;
    const cap = Math.max(rest, Math.min(BLOCK_MAX, Math.max(BLOCK_MIN, frameSoFar), this.maxBytes - frameSoFar));
    this.block = Buffer.allocUnsafe(cap);
    this.blockUsed = part.copy(this.block, 0, from);
    this.held += cap;
  }

  private finishFrame(): FrameEvent {
    this.inFrame = false;
    let ev: FrameEvent;
    if (this.oversize) {
      ev = { kind: 'oversize', head: this.head ?? Buffer.alloc(0), size: this.size };
    } else if (this.blocks.length === 0 && this.block && this.blockUsed === this.block.length) {
      ev = { kind: 'frame', data: this.block };
    } else {
      const parts = this.block ? [...this.blocks, this.block.subarray(0, this.blockUsed)] : this.blocks;
      ev = { kind: 'frame', data: Buffer.concat(parts, this.size) };
    }
    this.release();
    this.oversize = false;
    return ev;
  }
}
