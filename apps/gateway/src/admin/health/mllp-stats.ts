/**
 * What the health page shows of the MLLP listener. The listener (apps/gateway/src/hl7) provides it
 * under {@link MLLP_STATS}, e.g. in its module:
 * `{ provide: MLLP_STATS, useExisting: Hl7ListenerService }` with a `mllpStats()` method returning
 * `{ listening: port > 0, host, port, tls, connections: server.connections }`. Until then the page shows
 * the configured address and says the listener reports no statistics.
 */
export interface MllpStats {
  listening: boolean;
  host: string;
  port: number;
  tls: boolean;
  /** Open connections now. */
  connections: number;
  /** The open connections, when the listener tracks them. */
  peers?: Array<{ remote: string; since?: string; messages?: number }>;
  messagesTotal?: number;
  lastMessageAt?: string | null;
  /** Bytes of received messages being handled now (held against `MLLP_MAX_INFLIGHT_BYTES`). */
  inFlightBytes?: number;
  /** The limits those two are held against (MLLP_MAX_INFLIGHT_BYTES, MLLP_MAX_BUFFERED_BYTES). */
  inFlightLimitBytes?: number;
  bufferedLimitBytes?: number;
  /** Bytes held by messages still arriving, frames not finished yet (held against `MLLP_MAX_BUFFERED_BYTES`). */
  bufferedBytes?: number;
  /** Acknowledgements sent since start, by MSA-1 code (AA, AE, AR, CA, CE, CR). */
  acksSent?: Record<string, number>;
  /** The TLS certificate served (subject, expiry, when loaded), with TLS on. */
  tlsCertificate?: { subject: string; fingerprint256: string; validTo: string; loadedAt: string } | null;
}

export interface MllpStatsSource {
  mllpStats(): MllpStats;
}

/** Provider token for the {@link MllpStatsSource}. */
export const MLLP_STATS = Symbol.for('hemato.mllp-stats');
