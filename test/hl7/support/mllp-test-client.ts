import net from 'node:net';
import tls from 'node:tls';
import { MllpDecoder, encodeFrame, readAck } from '@hemato/hl7';

/**
 * A raw MLLP peer for tests: writes whatever bytes the test wants (whole frames, pieces, noise) and
 * collects every reply frame in order.
 */
export class RawMllpConnection {
  readonly replies: string[] = [];
  private readonly decoder = new MllpDecoder(64 * 1024 * 1024);
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const ev of this.decoder.push(chunk)) {
        if (ev.kind === 'frame') this.replies.push(ev.data.toString('latin1'));
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static async open(port: number, tlsOpts?: tls.ConnectionOptions): Promise<RawMllpConnection> {
    const socket: net.Socket = tlsOpts
      ? tls.connect({ port, host: '127.0.0.1', ...tlsOpts })
      : net.connect({ port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      socket.once(tlsOpts ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawMllpConnection(socket);
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
  }

  send(message: string, encoding: BufferEncoding = 'utf8'): void {
    this.socket.write(encodeFrame(message, encoding));
  }

  /** Waits until `n` replies in total have arrived (or the connection closed / timeout). */
  async waitFor(n: number, timeoutMs = 20_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length < n && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.replies.slice(0, n);
  }

  /** Sends one message and returns its first reply. */
  async request(message: string, encoding: BufferEncoding = 'utf8'): Promise<string> {
    const before = this.replies.length;
    this.send(message, encoding);
    const got = await this.waitFor(before + 1);
    if (got.length <= before) throw new Error('no reply');
    return got[before]!;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** MSA-1 / MSA-2 of a reply. */
export function ackOf(reply: string): { code: string; acked: string; controlId: string; errors: string[] } {
  const a = readAck(reply);
  if (!a) throw new Error(`not an ACK: ${reply.slice(0, 40)}`);
  return { code: a.code, acked: a.ackedControlId, controlId: a.controlId, errors: a.errors };
}
