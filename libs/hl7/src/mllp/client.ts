import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { readAck } from '../ack';
import { encodingFor, readHeader } from '../header';
import { MllpDecoder, encodeFrame } from './framing';

export interface MllpClientOptions {
  host: string;
  port: number;
  /** Wait this long for the ACK whose MSA-2 names our message. */
  ackTimeoutMs: number;
  connectTimeoutMs?: number;
  tls?: { caFile?: string; certFile?: string; keyFile?: string; servername?: string } | null;
  maxMessageBytes?: number;
  /** Bytes of the messages sent and of the ACKs read (the receiver's character set; default UTF-8). */
  encoding?: BufferEncoding;
}

export interface MllpAck {
  /** MSA-1: AA/AE/AR (or CA/CE/CR). */
  code: string;
  /** The ACK as received (its first 4 KiB when it was over `maxMessageBytes`; a NUL byte as U+FFFD). */
  raw: string;
}

/** Why a send produced no usable ACK: retry these. */
export class MllpTransportError extends Error {
  constructor(
    message: string,
    readonly reason: 'timeout' | 'connection',
  ) {
    super(message);
    this.name = 'MllpTransportError';
  }
}

/**
 * MLLP sender with one message in flight per connection: `send` waits for the ACK matched by MSA-2
 * (frames naming other messages are ignored), with a timeout. A timeout or a lost connection closes
 * the socket (a late ACK must not be taken for the next message) and rejects with MllpTransportError.
 */
export class MllpClient {
  private socket: net.Socket | null = null;
  private decoder: MllpDecoder;
  private waiter: { controlId: string; resolve: (a: MllpAck) => void; reject: (e: Error) => void } | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: MllpClientOptions) {
    this.decoder = new MllpDecoder(opts.maxMessageBytes ?? 1024 * 1024);
  }

  /** Sends one message (serialised with other sends on this client) and resolves with its ACK. */
  send(message: string, controlId: string): Promise<MllpAck> {
    const run = this.queue.then(() => this.sendNow(message, controlId));
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }

  private async connect(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return this.socket;
    this.decoder = new MllpDecoder(this.opts.maxMessageBytes ?? 1024 * 1024);
    const t = this.opts.tls;
    const socket: net.Socket = t
      ? tls.connect({
          host: this.opts.host,
          port: this.opts.port,
          servername: t.servername ?? (net.isIP(this.opts.host) ? undefined : this.opts.host),
          ...(t.caFile ? { ca: readFileSync(t.caFile) } : {}),
          ...(t.certFile ? { cert: readFileSync(t.certFile) } : {}),
          ...(t.keyFile ? { key: readFileSync(t.keyFile) } : {}),
        })
      : net.connect({ host: this.opts.host, port: this.opts.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MllpTransportError('connect timeout', 'timeout'));
      }, this.opts.connectTimeoutMs ?? 10_000);
      socket.once(t ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new MllpTransportError(`connect failed: ${err.message}`, 'connection'));
      });
    });
    socket.on('data', (chunk: Buffer) => {
      for (const ev of this.decoder.push(chunk)) {
        if (!this.waiter) continue;
        // An ACK over maxMessageBytes (a receiver echoing a lot after its MSA) is read from its first bytes,
        // which hold its MSH and MSA: dropping it made the accepted message time out and go again, forever.
        const bytes = ev.kind === 'frame' ? ev.data : ev.head;
        // A NUL byte (a broken receiver's) becomes U+FFFD: the ACK is kept in PostgreSQL text, which cannot hold
        // U+0000 (the attempt could not be recorded, and an AR never failed the delivery).
        // eslint-disable-next-line no-control-regex -- U+0000 is what it replaces
        const raw = bytes.toString(ackEncoding(bytes, this.opts.encoding ?? 'utf8')).replace(/\u0000/g, '\ufffd');
        const ack = readAck(raw);
        // A commit ACK (CA) only says the receiver stored the message: our messages ask for the application
        // ACK (MSH-16 AL), so a CA is passed over and the AA/AE/AR that follows decides (within the timeout).
        if (ack && ack.ackedControlId === this.waiter.controlId && ack.code !== 'CA') {
          const w = this.waiter;
          this.waiter = null;
          w.resolve({ code: ack.code, raw });
        }
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w.reject(new MllpTransportError('connection closed before the ACK', 'connection'));
      }
    });
    this.socket = socket;
    return socket;
  }

  private async sendNow(message: string, controlId: string): Promise<MllpAck> {
    const socket = await this.connect();
    return new Promise<MllpAck>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        socket.destroy();
        reject(new MllpTransportError(`no ACK within ${this.opts.ackTimeoutMs} ms`, 'timeout'));
      }, this.opts.ackTimeoutMs);
      this.waiter = {
        controlId,
        resolve: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      socket.write(encodeFrame(message, this.opts.encoding ?? 'utf8'));
    });
  }
}

/**
 * How to read an ACK's bytes: in the character set its MSH-18 names (a receiver may answer in 8859/1 whatever
 * we sent), else in ours; with MSH-18 empty, bytes that are not UTF-8 are Latin-1. Its MSA-3 / ERR text is
 * kept in the delivery row as the receiver wrote it.
 */
function ackEncoding(bytes: Buffer, ours: BufferEncoding): BufferEncoding {
  const declared = readHeader(bytes)?.characterSet ?? '';
  if (declared) return encodingFor(declared) ?? ours;
  return ours === 'latin1' ? 'latin1' : (encodingFor('', bytes) ?? ours);
}

export interface RetryPolicy {
  /** Sends in total (first + retries). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface SendOutcome {
  /**
   * `accepted` (AA), `rejected` (AR/CR: do not resend), `gave_up` (retries exhausted on AE/timeout/
   * connection), `withdrawn` (`stillWanted` said no before a resend).
   */
  result: 'accepted' | 'rejected' | 'gave_up' | 'withdrawn';
  attempts: number;
  ack: MllpAck | null;
  lastError: string | null;
}

export interface SendHooks {
  /** After each attempt, with its ACK or why there was none (to record it). */
  onAttempt?: (n: number, outcome: { ack: MllpAck | null; error: string | null }) => void | Promise<void>;
  /**
   * Asked before each resend: false stops it, when the message is no longer the one to send (a newer version of
   * the result was stored meanwhile).
   */
  stillWanted?: () => Promise<boolean>;
  /**
   * The ACK the receiver sent another way (to our listener, on a connection of its own), if it did: asked every
   * `elsewherePollMs` while an attempt waits for its ACK, and once more when the connection gave none. It then
   * counts as that attempt's answer (the connection is dropped: a late ACK on it must not count for the next send).
   */
  answeredElsewhere?: () => Promise<MllpAck | null>;
  /** How often `answeredElsewhere` is asked while an attempt waits (default 1000 ms). */
  elsewherePollMs?: number;
}

/**
 * One attempt's answer: the ACK on the connection, or one that came another way meanwhile (`answeredElsewhere`,
 * looked for every `pollMs` while the connection is silent, and once more if it fails).
 */
async function answerOf(
  client: MllpClient,
  message: string,
  controlId: string,
  answeredElsewhere: (() => Promise<MllpAck | null>) | undefined,
  pollMs: number,
): Promise<MllpAck> {
  const onConnection = client.send(message, controlId);
  if (!answeredElsewhere) return onConnection;
  const stop = new AbortController();
  const polling = (async (): Promise<MllpAck | null> => {
    while (!stop.signal.aborted) {
      try {
        await sleep(pollMs, undefined, { signal: stop.signal });
      } catch {
        return null; // stopped while waiting
      }
      // A failed look (the database away a moment) is not the attempt's failure: the connection may still answer.
      const ack = await answeredElsewhere().catch(() => null);
      if (ack) return ack;
    }
    return null;
  })();
  try {
    const first = await Promise.race([
      onConnection.then((ack) => ({ ack, elsewhere: false })),
      polling.then((ack) => (ack ? { ack, elsewhere: true } : new Promise<never>(() => undefined))),
    ]);
    if (first.elsewhere) {
      onConnection.catch(() => undefined);
      client.close();
    }
    return first.ack;
  } catch (err) {
    // The connection gave none: what the polling may be taking right now, else one last look.
    stop.abort();
    const ack = (await polling) ?? (await answeredElsewhere());
    if (ack) return ack;
    throw err;
  } finally {
    stop.abort();
  }
}

/**
 * Sends until the receiver accepts: AE, a timeout or a lost connection are retried with exponential
 * backoff (the same control id, so the receiver can drop the duplicate); AR stops at once. See
 * {@link SendHooks} for what the caller is asked along the way.
 */
export async function sendWithRetry(
  client: MllpClient,
  message: string,
  controlId: string,
  policy: RetryPolicy,
  hooks: SendHooks = {},
): Promise<SendOutcome> {
  const { onAttempt, stillWanted, answeredElsewhere, elsewherePollMs = 1000 } = hooks;
  let lastAck: MllpAck | null = null;
  let lastError: string | null = null;
  for (let n = 1; n <= policy.attempts; n++) {
    if (n > 1 && stillWanted && !(await stillWanted())) {
      return { result: 'withdrawn', attempts: n - 1, ack: lastAck, lastError };
    }
    try {
      lastAck = await answerOf(client, message, controlId, answeredElsewhere, elsewherePollMs);
      lastError = null;
    } catch (err) {
      lastAck = null;
      lastError = err instanceof Error ? err.message : String(err);
    }
    await onAttempt?.(n, { ack: lastAck, error: lastError });
    if (lastAck && lastAck.code === 'AA') {
      return { result: 'accepted', attempts: n, ack: lastAck, lastError: null };
    }
    if (lastAck && (lastAck.code === 'AR' || lastAck.code === 'CR')) {
      return { result: 'rejected', attempts: n, ack: lastAck, lastError: `receiver answered ${lastAck.code}` };
    }
    if (lastAck) lastError = `receiver answered ${lastAck.code || '(no MSA-1)'}`;
    if (n < policy.attempts) {
      const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  return { result: 'gave_up', attempts: policy.attempts, ack: lastAck, lastError };
}
