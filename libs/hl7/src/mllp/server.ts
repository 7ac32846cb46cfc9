import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { createLogger } from '@hemato/common';
import { MllpDecoder, encodeFrame } from './framing';

const log = createLogger('mllp-server');

export interface MllpTlsOptions {
  certFile: string;
  keyFile: string;
  /** CA bundle for client certificates (mutual TLS). */
  caFile?: string;
  /** Refuse clients without a certificate signed by `caFile`. */
  requireClientCert?: boolean;
  /**
   * How often the files are checked for a renewal (ms; 0 = never). A renewed, valid set serves new
   * connections at once, without a restart; open connections keep theirs.
   */
  reloadMs?: number;
}

/** What is shown of the served certificate: no key material. */
export interface MllpServedCertificate {
  subject: string;
  /** SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it: tells which file is served. */
  fingerprint256: string;
  /** ISO time the certificate expires. */
  validTo: string;
  /** ISO time it was (re)loaded. */
  loadedAt: string;
}

export interface MllpServerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  maxMessageBytes: number;
  /** Close a connection that sent nothing for this long (0 = never). */
  idleTimeoutMs: number;
  maxConnections: number;
  tls?: MllpTlsOptions | null;
  /** TCP keep-alive probe delay (default 60 s), so dead peers are noticed on long-lived connections. */
  keepAliveMs?: number;
  /** Frames a connection may have in progress before reading from it pauses (default 64). */
  maxInFlightPerConnection?: number;
  /**
   * Bytes of complete frames being handled, across all connections, beyond which a connection that
   * already has a frame in progress is not read from until some are answered (default 128 MiB).
   */
  maxInFlightBytes?: number;
  /**
   * Bytes held by frames whose end has not arrived yet, across all connections, beyond which only the
   * connection holding the largest such frame is read on; the others wait (in TCP) until frames complete
   * or connections close (default 256 MiB). Connections between frames are always read.
   */
  maxBufferedBytes?: number;
  /**
   * While connections wait for that budget, the one read on is closed when, over this long (default
   * 30 s), it neither completes a frame nor sends `partialMinBytes`: a stuck, trickling or malicious peer
   * does not hold the others back (its frame got no ACK, so its sender sends it again).
   */
  partialStallMs?: number;
  /**
   * Bytes the connection read on must send per `partialStallMs` while others wait for the buffer budget
   * (default 64 KiB, about 2 KiB/s over 30 s: far below any real link, far above a slow-loris trickle).
   */
  partialMinBytes?: number;
}

/** Default of `maxInFlightBytes` (`MLLP_MAX_INFLIGHT_BYTES`). */
export const DEFAULT_MLLP_MAX_INFLIGHT_BYTES = 128 * 1024 * 1024;
/** Default of `maxBufferedBytes` (`MLLP_MAX_BUFFERED_BYTES`). */
export const DEFAULT_MLLP_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;
const DEFAULT_PARTIAL_STALL_MS = 30_000;
const DEFAULT_PARTIAL_MIN_BYTES = 64 * 1024;

/** A connection as the partial-frame budget sees it. */
interface Receiving {
  id: number;
  socket: net.Socket;
  decoder: MllpDecoder;
  /** Bytes its decoder holds for the frame in progress, as last counted in `bufferedBytes`. */
  held: number;
  /** Bytes received so far (tells a stalled or trickling peer). */
  received: number;
  /** Frames completed so far (a completed frame is progress, however few bytes it took). */
  frames: number;
  /** Not read from now, for any reason. */
  paused: boolean;
  /** Decides again whether to read from it. */
  flow(): void;
}

export interface MllpConnectionInfo {
  id: number;
  remoteAddress: string;
  /** Subject CN of the client certificate (mutual TLS). */
  clientCertSubject?: string;
  /** Closes this connection (e.g. a handler that refuses the peer). */
  close(): void;
}

/** Encoded replies to one frame; each is sent as its own MLLP frame, in order. */
export type MllpReply = Buffer[];

export interface MllpHandlers {
  /** One complete message. Replies go out in the order the frames came in. Must not throw. */
  onMessage(frame: Buffer, conn: MllpConnectionInfo): Promise<MllpReply>;
  /** A complete frame over the size limit (its first bytes only). */
  onOversize(head: Buffer, size: number, conn: MllpConnectionInfo): MllpReply;
  /** The handler threw: the reply for the frame anyway (never silence a complete frame). */
  onHandlerError(frame: Buffer, err: unknown, conn: MllpConnectionInfo): MllpReply;
}

/**
 * MLLP listener (release 1 framing) over TCP or TLS. Frames are handed to `onMessage` as they
 * complete and may be processed concurrently (so a batching handler can group them), but the
 * replies of one connection are written strictly in arrival order. Garbage, truncated frames,
 * socket errors and slow or half-open peers only affect their own connection.
 */
export class MllpServer {
  private server: net.Server | null = null;
  private readonly sockets = new Map<net.Socket, { remote: string; since: string; messages: number }>();
  private nextId = 0;
  /** The certificate files as last looked at (mtime, size, inode each), and the timer that looks again. */
  private tlsStamp = '';
  private tlsTimer: NodeJS.Timeout | null = null;
  /** The certificate the listener serves (for the health page and metrics: its expiry is worth watching). */
  tlsCertificate: MllpServedCertificate | null = null;
  /** Complete frames received since start. */
  messagesTotal = 0;
  /** Bytes of complete frames handed to the handler and not yet answered, across connections. */
  inFlightBytes = 0;
  /** Connections not read from because the in-flight byte budget is spent: woken as it frees up. */
  private readonly budgetWaiters = new Set<() => void>();
  private buffered = 0;
  /** Connections in the middle of a frame. */
  private readonly partials = new Set<Receiving>();
  /** Connections not read from because partial frames hold the buffer budget. */
  private readonly bufferWaiters = new Set<Receiving>();
  private stallTimer: NodeJS.Timeout | null = null;
  /** The connection read on while others wait for the buffer budget: its counts when its window began. */
  private stallWatch: { rx: Receiving; read: number; frames: number; since: number } | null = null;
  /** When each budget's warning was last logged (at most one a minute each). */
  private readonly warnedAt = { inFlight: 0, buffer: 0 };
  lastMessageAt: Date | null = null;

  constructor(
    private readonly opts: MllpServerOptions,
    private readonly handlers: MllpHandlers,
  ) {}

  get connections(): number {
    return this.sockets.size;
  }

  /** Bytes held by frames whose end has not arrived yet, across connections (see `maxBufferedBytes`). */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Open connections: peer address, since when, frames received. */
  peers(): Array<{ remote: string; since: string; messages: number }> {
    return [...this.sockets.values()].map((p) => ({ ...p }));
  }

  /** Starts listening; resolves with the bound port. */
  async listen(): Promise<number> {
    const onConnection = (socket: net.Socket) => this.accept(socket);
    let server: net.Server;
    if (this.opts.tls) {
      const t = this.opts.tls;
      this.tlsStamp = tlsStamp(t);
      const options = tlsContextOptions(t);
      server = tls.createServer(
        {
          ...options,
          requestCert: !!t.requireClientCert,
          rejectUnauthorized: !!t.requireClientCert,
          allowHalfOpen: true,
        },
        onConnection,
      );
      server.on('tlsClientError', (err) => log.warn({ err: err.message }, 'TLS handshake failed'));
      this.tlsCertificate = servedCertificate(options);
      if (t.reloadMs && t.reloadMs > 0) {
        this.tlsTimer = setInterval(() => this.reloadTls(), t.reloadMs);
        this.tlsTimer.unref();
      }
    } else {
      // allowHalfOpen: a sender that half-closes (sends, then FIN) still reads the ACKs it is owed; the
      // 'end' handler below closes our side once they are written.
      server = net.createServer({ allowHalfOpen: true }, onConnection);
    }
    // Beyond the limit Node closes new sockets at once: the listener keeps serving those it has.
    server.maxConnections = this.opts.maxConnections;
    server.on('drop', () => log.warn({ limit: this.opts.maxConnections }, 'connection refused: limit reached'));
    server.on('error', (err) => log.error({ err: err.message }, 'MLLP server error'));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: this.opts.port, host: this.opts.host, backlog: 2048 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.port;
  }

  get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /** Stops accepting, closes every connection, resolves when the server is closed. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    if (this.tlsTimer) clearInterval(this.tlsTimer);
    this.tlsTimer = null;
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.stallTimer = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets.keys()) s.destroy();
    await closed;
  }

  /**
   * Reads the certificate files again when they changed (certificates are renewed in place: certbot, a
   * hospital PKI's agent). The new set is checked first (key matches certificate, PEM parses): while a
   * renewal is half written, or when it is broken, the current one keeps serving and the check repeats at
   * the next change. Returns whether the listener now serves the new set.
   */
  reloadTls(): boolean {
    const t = this.opts.tls;
    const server = this.server;
    if (!t || !(server instanceof tls.Server)) return false;
    let stamp: string;
    try {
      stamp = tlsStamp(t);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'TLS certificate files unreadable: the current certificate stays');
      return false;
    }
    if (stamp === this.tlsStamp) return false;
    this.tlsStamp = stamp;
    let options: tls.SecureContextOptions;
    try {
      options = tlsContextOptions(t);
      tls.createSecureContext(options); // throws on a key that does not match, or a PEM that does not parse
      server.setSecureContext(options);
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'TLS certificate files changed but do not load: the current ones stay');
      return false;
    }
    this.tlsCertificate = servedCertificate(options);
    log.info({ certFile: t.certFile, validTo: this.tlsCertificate?.validTo }, 'TLS certificate reloaded');
    return true;
  }

  /** Lets the connections held by the byte budget read again once frames were answered below it. */
  private wakeBudgetWaiters(): void {
    if (this.budgetWaiters.size === 0 || this.inFlightBytes >= this.inFlightBudget) return;
    for (const flow of [...this.budgetWaiters]) flow();
  }

  private get inFlightBudget(): number {
    return this.opts.maxInFlightBytes ?? DEFAULT_MLLP_MAX_INFLIGHT_BYTES;
  }

  private get bufferBudget(): number {
    return this.opts.maxBufferedBytes ?? DEFAULT_MLLP_MAX_BUFFERED_BYTES;
  }

  /**
   * Whether a connection in the middle of a frame must wait for the buffer budget: while partial frames
   * hold more than it, only the largest one (nearest its end, and bounded by the message size limit)
   * grows, so some frame always progresses and frees its bytes when it completes.
   */
  private waitsForBuffer(rx: Receiving): boolean {
    if (rx.held === 0 || this.buffered <= this.bufferBudget || !rx.decoder.growing) return false;
    return this.largestPartial() !== rx;
  }

  /** Looked up only while over the budget: a scan of the connections in the middle of a frame. */
  private largestPartial(): Receiving | null {
    let best: Receiving | null = null;
    for (const rx of this.partials) if (rx.decoder.growing && (!best || rx.held > best.held)) best = rx;
    return best;
  }

  /** Counts what a connection's decoder holds now; frees waiting connections when it shrank. */
  private heldChanged(rx: Receiving, held: number): void {
    const shrank = held < rx.held;
    this.buffered += held - rx.held;
    rx.held = held;
    if (held > 0) this.partials.add(rx);
    else this.partials.delete(rx);
    if (shrank) this.wakeBufferWaiters();
  }

  private wakeBufferWaiters(): void {
    if (this.bufferWaiters.size === 0) return;
    if (this.buffered <= this.bufferBudget) {
      for (const rx of [...this.bufferWaiters]) rx.flow();
      return;
    }
    const next = this.largestPartial();
    if (next && this.bufferWaiters.has(next)) next.flow();
  }

  private waitForBuffer(rx: Receiving): void {
    this.bufferWaiters.add(rx);
    this.warnOncePerMinute(
      'buffer',
      { conn: rx.id, bufferedBytes: this.buffered, limit: this.bufferBudget },
      'MLLP buffer budget reached: reading paused on connections in the middle of a frame but the largest',
    );
    if (this.stallTimer) return;
    const stallMs = this.opts.partialStallMs ?? DEFAULT_PARTIAL_STALL_MS;
    this.stallTimer = setInterval(() => this.checkStall(stallMs), Math.max(10, Math.floor(stallMs / 4)));
    this.stallTimer.unref();
  }

  /**
   * While others wait for the buffer budget, closes the connection read on when, over a window of
   * `stallMs` while we read it, its peer neither completed a frame nor sent `partialMinBytes`.
   *
   * Why a minimum and not just "sent something": the connection read on holds the only turn while the
   * others in the middle of a frame wait, so a peer that trickles (one byte every 29 s, a few bytes a
   * second) would keep that turn forever and every large frame behind it would wait indefinitely (a
   * slow-loris). The minimum is far below what any real link carries, so an honest sender of a large
   * frame is never closed by it; nor is a sender waiting for each ACK with small messages (each one
   * completes, and is rarely the largest), and connections between frames are never watched at all.
   */
  private checkStall(stallMs: number): void {
    if (this.bufferWaiters.size === 0) {
      if (this.stallTimer) clearInterval(this.stallTimer);
      this.stallTimer = null;
      this.stallWatch = null;
      return;
    }
    const rx = this.largestPartial();
    if (rx && this.bufferWaiters.has(rx)) rx.flow(); // its turn (it is woken as frames shrink; this is a safety net)
    if (!rx || rx.paused) {
      // Not read now (its replies are being made, or its peer does not read them): no stall of its
      // sending. A peer that never reads its ACKs is left to MLLP_IDLE_TIMEOUT_MS.
      this.stallWatch = null;
      return;
    }
    const now = Date.now();
    const w = this.stallWatch;
    if (!w || w.rx !== rx) {
      this.stallWatch = { rx, read: rx.received, frames: rx.frames, since: now };
      return;
    }
    if (now - w.since < stallMs) return;
    const sent = rx.received - w.read;
    const minBytes = this.opts.partialMinBytes ?? DEFAULT_PARTIAL_MIN_BYTES;
    if (rx.frames > w.frames || sent >= minBytes) {
      // Progress: a new window begins.
      this.stallWatch = { rx, read: rx.received, frames: rx.frames, since: now };
      return;
    }
    log.warn(
      { conn: rx.id, heldBytes: rx.held, sentBytes: sent, minBytes, waiting: this.bufferWaiters.size, stallMs },
      sent === 0
        ? 'MLLP connection closed: its unfinished frame stalled while others wait for the buffer budget'
        : 'MLLP connection closed: its unfinished frame trickled (too few bytes) while others wait for the buffer budget',
    );
    this.stallWatch = null;
    rx.socket.destroy();
  }

  /** A budget's warning, logged at most once a minute: under a flood it would otherwise repeat per read. */
  private warnOncePerMinute(budget: keyof MllpServer['warnedAt'], fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.warnedAt[budget] < 60_000) return;
    this.warnedAt[budget] = now;
    log.warn(fields, msg);
  }

  private accept(socket: net.Socket): void {
    const conn: MllpConnectionInfo = {
      id: ++this.nextId,
      remoteAddress: socket.remoteAddress ?? '',
      close: () => socket.destroy(),
    };
    if (socket instanceof tls.TLSSocket) {
      const cert = socket.getPeerCertificate();
      if (cert && cert.subject) conn.clientCertSubject = String(cert.subject.CN ?? '');
    }
    const peer = {
      remote: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`,
      since: new Date().toISOString(),
      messages: 0,
    };
    this.sockets.set(socket, peer);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.opts.keepAliveMs ?? 60_000);
    if (this.opts.idleTimeoutMs > 0) {
      socket.setTimeout(this.opts.idleTimeoutMs, () => {
        log.info({ conn: conn.id }, 'idle connection closed');
        socket.destroy();
      });
    }
    const decoder = new MllpDecoder(this.opts.maxMessageBytes);
    const maxInFlight = this.opts.maxInFlightPerConnection ?? 64;
    let inFlight = 0;
    let tail: Promise<void> = Promise.resolve();
    /** Replies are queued in the socket beyond its high-water mark: the peer is not reading its ACKs. */
    let unread = false;
    const rx: Receiving = {
      id: conn.id,
      socket,
      decoder,
      held: 0,
      received: 0,
      frames: 0,
      paused: false,
      flow: () => flow(),
    };

    // Reading pauses while too many frames are in progress, while the peer does not read its replies
    // (a half-open or stuck sender), or while the frames being handled everywhere hold the byte budget:
    // what it sends then waits in TCP buffers, not in our memory. The budget never holds back a
    // connection with nothing in progress, so a sender waiting for each ACK (as engines do) is served
    // whatever another one pushes. Likewise, while unfinished frames everywhere hold the buffer budget,
    // a connection in the middle of a frame waits unless its frame is the largest; one between frames
    // is always read (a small message arrives whole and is handled at once).
    const flow = () => {
      const overBudget = inFlight > 0 && this.inFlightBytes >= this.inFlightBudget;
      if (overBudget) this.budgetWaiters.add(flow);
      else this.budgetWaiters.delete(flow);
      const overBuffered = rx.held > 0 && this.waitsForBuffer(rx);
      if (overBuffered) this.waitForBuffer(rx);
      else if (this.bufferWaiters.size > 0) this.bufferWaiters.delete(rx);
      const hold = unread || inFlight >= maxInFlight || overBudget || overBuffered;
      if (hold && !rx.paused) {
        rx.paused = true;
        socket.pause();
        if (overBudget) {
          this.warnOncePerMinute(
            'inFlight',
            { conn: conn.id, inFlightBytes: this.inFlightBytes, limit: this.inFlightBudget },
            'MLLP in-flight byte budget reached: reading paused on connections with messages in progress',
          );
        }
        if (this.stallWatch?.rx === rx) this.stallWatch = null;
      } else if (rx.paused && !unread && inFlight < maxInFlight / 2 && !overBudget && !overBuffered) {
        rx.paused = false;
        socket.resume();
      }
    };
    socket.on('drain', () => {
      unread = false;
      flow();
    });

    const send = (replies: MllpReply) => {
      if (socket.destroyed || !socket.writable) return;
      for (const r of replies) if (!socket.write(encodeFrame(r))) unread = true;
    };

    socket.on('data', (chunk: Buffer) => {
      let events;
      try {
        events = decoder.push(chunk);
      } catch (err) {
        log.error({ conn: conn.id, err: (err as Error).message }, 'MLLP decoder failed');
        socket.destroy();
        return;
      }
      rx.received += chunk.length;
      const held = decoder.heldBytes;
      if (held !== rx.held) this.heldChanged(rx, held);
      for (const ev of events) {
        rx.frames++;
        peer.messages++;
        this.messagesTotal++;
        this.lastMessageAt = new Date();
        let reply: Promise<MllpReply>;
        const bytes = ev.kind === 'oversize' ? ev.head.length : ev.data.length;
        if (ev.kind === 'oversize') {
          log.warn({ conn: conn.id, size: ev.size, limit: this.opts.maxMessageBytes }, 'frame over size limit');
          reply = Promise.resolve(this.handlers.onOversize(ev.head, ev.size, conn));
        } else {
          const frame = ev.data;
          reply = this.handlers
            .onMessage(frame, conn)
            .catch((err: unknown) => this.handlers.onHandlerError(frame, err, conn));
        }
        inFlight++;
        this.inFlightBytes += bytes;
        tail = tail
          .then(() => reply)
          .then(send)
          .catch((err: unknown) => log.error({ conn: conn.id, err: (err as Error).message }, 'reply failed'))
          .finally(() => {
            inFlight--;
            this.inFlightBytes -= bytes;
            flow();
            this.wakeBudgetWaiters();
          });
      }
      flow();
    });
    socket.on('error', (err) => log.debug({ conn: conn.id, err: err.message }, 'connection error'));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.budgetWaiters.delete(flow);
      this.bufferWaiters.delete(rx);
      if (rx.held > 0) this.heldChanged(rx, 0);
    });
    // A peer that half-closes still gets the replies it is owed, then the socket ends.
    socket.on('end', () => {
      void tail.then(() => socket.end());
    });
  }
}

/** The listener's certificate, key and client CA, read from their files. */
function tlsContextOptions(t: MllpTlsOptions): tls.SecureContextOptions {
  return {
    cert: readFileSync(t.certFile),
    key: readFileSync(t.keyFile),
    ...(t.caFile ? { ca: readFileSync(t.caFile) } : {}),
    minVersion: 'TLSv1.2',
  };
}

/** Subject and expiry of the leaf certificate (the first of the PEM chain). */
function servedCertificate(options: tls.SecureContextOptions): MllpServedCertificate | null {
  try {
    const cert = new X509Certificate(options.cert as Buffer);
    return {
      subject: cert.subject.replace(/\n/g, ', '),
      fingerprint256: cert.fingerprint256,
      validTo: new Date(cert.validTo).toISOString(),
      loadedAt: new Date().toISOString(),
    };
  } catch {
    return null;
  }
}

/** What changes when a certificate file is replaced or rewritten. */
function tlsStamp(t: MllpTlsOptions): string {
  return [t.certFile, t.keyFile, t.caFile]
    .filter((f): f is string => !!f)
    .map((f) => {
      const st = statSync(f);
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    })
    .join('|');
}

/** TLS options from file paths in config, or null when TLS is off. */
export function tlsFromConfig(c: {
  MLLP_TLS_CERT_FILE?: string | undefined;
  MLLP_TLS_KEY_FILE?: string | undefined;
  MLLP_TLS_CA_FILE?: string | undefined;
  MLLP_TLS_REQUIRE_CLIENT_CERT: boolean;
  MLLP_TLS_RELOAD_MS?: number;
}): MllpTlsOptions | null {
  if (!c.MLLP_TLS_CERT_FILE || !c.MLLP_TLS_KEY_FILE) return null;
  return {
    certFile: c.MLLP_TLS_CERT_FILE,
    keyFile: c.MLLP_TLS_KEY_FILE,
    ...(c.MLLP_TLS_CA_FILE ? { caFile: c.MLLP_TLS_CA_FILE } : {}),
    requireClientCert: c.MLLP_TLS_REQUIRE_CLIENT_CERT,
    reloadMs: c.MLLP_TLS_RELOAD_MS ?? 0,
  };
}
