/**
 * What the health page shows of the MLLP listener. The listener (apps/gateway/src/hl7) provides it
 * under {@link MLLP_STATS}; until it does, the page says the listener reports no statistics.
 */
export interface MllpStats {
  listening: boolean;
  host: string;
  port: number;
  tls: boolean;
  connections: Array<{ remote: string; since: string; messages: number }>;
  messagesTotal?: number;
  lastMessageAt?: string | null;
}

export interface MllpStatsSource {
  mllpStats(): MllpStats;
}

/** Provider token: `{ provide: MLLP_STATS, useExisting: <the listener service> }`. */
export const MLLP_STATS = Symbol.for('hemato.mllp-stats');
