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
}

/** Default of `maxInFlightBytes` (`MLLP_MAX_INFLIGHT_BYTES`). */
export const DEFAULT_MLLP_MAX_INFLIGHT_BYTES = 128 * 1024 * 1024;

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
  private budgetWarnedAt = 0;
  lastMessageAt: Date | null = null;

  constructor(
    private readonly opts: MllpServerOptions,
    private readonly handlers: MllpHandlers,
  ) {}

  get connections(): number {
    return this.sockets.size;
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
  private wakeBudgetWaiters(budget: number): void {
    if (this.budgetWaiters.size === 0 || this.inFlightBytes >= budget) return;
    for (const flow of [...this.budgetWaiters]) flow();
  }

  private warnBudget(connId: number, budget: number): void {
    const now = Date.now();
    if (now - this.budgetWarnedAt < 60_000) return;
    this.budgetWarnedAt = now;
    log.warn(
      { conn: connId, inFlightBytes: this.inFlightBytes, limit: budget },
      'MLLP in-flight byte budget reached: reading paused on connections with messages in progress',
    );
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
    const budget = this.opts.maxInFlightBytes ?? DEFAULT_MLLP_MAX_INFLIGHT_BYTES;
    let inFlight = 0;
    let tail: Promise<void> = Promise.resolve();
    let paused = false;
    /** Replies are queued in the socket beyond its high-water mark: the peer is not reading its ACKs. */
    let unread = false;

    // Reading pauses while too many frames are in progress, while the peer does not read its replies
    // (a half-open or stuck sender), or while the frames being handled everywhere hold the byte budget:
    // what it sends then waits in TCP buffers, not in our memory. The budget never holds back a
    // connection with nothing in progress, so a sender waiting for each ACK (as engines do) is served
    // whatever another one pushes.
    const flow = () => {
      const overBudget = inFlight > 0 && this.inFlightBytes >= budget;
      if (overBudget) this.budgetWaiters.add(flow);
      else this.budgetWaiters.delete(flow);
      const hold = unread || inFlight >= maxInFlight || overBudget;
      if (hold && !paused) {
        paused = true;
        socket.pause();
        if (overBudget) this.warnBudget(conn.id, budget);
      } else if (paused && !unread && inFlight < maxInFlight / 2 && !overBudget) {
        paused = false;
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
      for (const ev of events) {
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
            this.wakeBudgetWaiters(budget);
          });
      }
      flow();
    });
    socket.on('error', (err) => log.debug({ conn: conn.id, err: err.message }, 'connection error'));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.budgetWaiters.delete(flow);
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
