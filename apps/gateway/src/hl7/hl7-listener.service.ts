import { Inject, Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import { MllpServer, tlsFromConfig } from '@hemato/hl7';
import type { MllpStats, MllpStatsSource } from '../admin/health/mllp-stats';
import { Hl7IntakeService } from './hl7-intake.service';

const log = createLogger('hl7-listener');

/** The MLLP listener of the gateway: starts with the app (MLLP_PORT, 0 = any free port), stops before the database. */
@Injectable()
export class Hl7ListenerService implements OnModuleInit, BeforeApplicationShutdown, MllpStatsSource {
  private readonly server: MllpServer;
  /** ACKs sent since start, by MSA-1 code (for /metrics and the health page). */
  private readonly acks = new Map<string, number>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'hl7'>,
    intake: Hl7IntakeService,
  ) {
    const c = config.hl7;
    this.server = new MllpServer(
      {
        host: c.MLLP_HOST,
        port: c.MLLP_PORT,
        maxMessageBytes: c.MLLP_MAX_MESSAGE_BYTES,
        idleTimeoutMs: c.MLLP_IDLE_TIMEOUT_MS,
        maxConnections: c.MLLP_MAX_CONNECTIONS,
        maxInFlightBytes: c.MLLP_MAX_INFLIGHT_BYTES,
        maxBufferedBytes: c.MLLP_MAX_BUFFERED_BYTES,
        tls: tlsFromConfig(c),
      },
      {
        onMessage: (frame, conn) => intake.handleFrame(frame, conn.id).then((r) => this.counted(r)),
        onOversize: (head, size) => this.counted(intake.oversizeReply(head, size)),
        onHandlerError: (frame, err) => this.counted(intake.errorReply(frame, err)),
      },
    );
  }

  async onModuleInit(): Promise<void> {
    const port = await this.server.listen();
    log.info({ host: this.config.hl7.MLLP_HOST, port, tls: !!tlsFromConfig(this.config.hl7) }, 'MLLP listening');
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.server.close();
  }

  /** Counts each reply by its MSA-1 code (read from the bytes: the code is ASCII in every charset we speak). */
  private counted(replies: Buffer[]): Buffer[] {
    for (const reply of replies) {
      const at = reply.indexOf('\rMSA|');
      const code = at < 0 ? 'none' : reply.toString('latin1', at + 5, at + 7);
      this.acks.set(code, (this.acks.get(code) ?? 0) + 1);
    }
    return replies;
  }

  /** The bound port (useful with MLLP_PORT=0). */
  get port(): number {
    return this.server.port;
  }

  /** For the admin health page: address, open connections and message counts (no message content). */
  mllpStats(): MllpStats {
    return {
      listening: this.port > 0,
      host: this.config.hl7.MLLP_HOST,
      port: this.port,
      tls: !!tlsFromConfig(this.config.hl7),
      connections: this.server.connections,
      peers: this.server.peers(),
      messagesTotal: this.server.messagesTotal,
      lastMessageAt: this.server.lastMessageAt?.toISOString() ?? null,
      inFlightBytes: this.server.inFlightBytes,
      bufferedBytes: this.server.bufferedBytes,
      inFlightLimitBytes: this.config.hl7.MLLP_MAX_INFLIGHT_BYTES,
      bufferedLimitBytes: this.config.hl7.MLLP_MAX_BUFFERED_BYTES,
      acksSent: Object.fromEntries(this.acks),
      tlsCertificate: this.server.tlsCertificate,
    };
  }

  /** `mllp://host:port` (or `mllps://` with TLS) for the start banner. */
  url(): string {
    const host = this.config.hl7.MLLP_HOST === '0.0.0.0' ? '127.0.0.1' : this.config.hl7.MLLP_HOST;
    return `${tlsFromConfig(this.config.hl7) ? 'mllps' : 'mllp'}://${host}:${this.port}`;
  }
}
