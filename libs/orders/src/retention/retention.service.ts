import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import { DataSource, type EntityManager } from 'typeorm';

const log = createLogger('retention');

/** Orders in these states are finished: nothing will read their patient data again but an admin. */
const FINISHED = `('completed', 'rejected', 'cancelled', 'failed')`;
/**
 * A finished order past the cutoff (`$1`) and not purged yet: ix_orders_retention's predicate, so what the
 * sweep and its preview read comes from that index.
 */
const PAST_RETENTION = `purged_at IS NULL AND status IN ${FINISHED} AND status_changed_at < $1`;
/** Orders per transaction: bounds the time their rows are locked. */
const DEFAULT_BATCH = 500;
const DAY_MS = 86_400_000;
/** Who the audit log names for the erasure, and its action. */
export const RETENTION_ACTOR = 'system:retention';
export const RETENTION_AUDIT_ACTION = 'retention.purge';
/** The audit rows' target: the policy itself (found through ix_audit_log_target, not a walk of the log). */
export const RETENTION_AUDIT_TARGET = { type: 'policy', id: 'retention' } as const;

export interface RetentionResult {
  /** Orders whose free-text notes were erased (and which are now counted as purged). */
  orders: number;
  /** Inbound messages (HL7 text, FHIR request bodies) erased with their stored ACKs. */
  inboundMessages: number;
  /** Patient identities erased (the proxy id stays). */
  patientIdentities: number;
}

/**
 * Erases patient data once it is older than `RETENTION_DAYS` and no longer needed: the hospital keeps the
 * record, we are only the way through. What goes, for an order finished (completed, rejected, cancelled or
 * failed) that many days ago:
 * - its free-text notes (HL7 NTE, FHIR `note`), which may name anyone, and its images' source URLs;
 * - the inbound message it came in (HL7 text or FHIR body, PID and all) and the ACK stored for it, once every
 *   order of that message is purged; a message that made no order (refused, or a cancellation) once it is
 *   that old;
 * - the patient's identity (identifiers, name, PID) once none of her orders is still open or unpurged. Her
 *   proxy id and lookup HMAC stay: she keeps her proxy when she comes back, and her next order stores her
 *   identity again.
 * What stays: the order (numbers, status, timeline), the report and its deliveries (no identifiers: Hemato.AI
 * only ever saw proxies), images (content-addressed smear pictures, no identifiers) and the audit log.
 * Each order's timeline records the purge. Safe beside running intake: rows are taken with SKIP LOCKED.
 */
@Injectable()
export class RetentionService {
  constructor(
    private readonly ds: DataSource,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
  ) {}

  /**
   * One sweep: everything older than the retention period, in batches. `days` overrides RETENTION_DAYS (the
   * CLI); `now` is for tests.
   */
  async purge(opts: { now?: Date; batchSize?: number; days?: number } = {}): Promise<RetentionResult> {
    const total: RetentionResult = { orders: 0, inboundMessages: 0, patientIdentities: 0 };
    const days = opts.days ?? this.config.orders.RETENTION_DAYS;
    if (days <= 0) return total;
    const cutoff = new Date((opts.now ?? new Date()).getTime() - days * DAY_MS);
    const batchSize = opts.batchSize ?? DEFAULT_BATCH;
    for (;;) {
      const r = await this.ds.transaction((m) => this.purgeOrderBatch(m, cutoff, days, batchSize));
      add(total, r);
      if (r.orders < batchSize) break;
    }
    add(total, await this.sweepOrderlessMessages(cutoff, batchSize));
    if (total.orders + total.inboundMessages + total.patientIdentities > 0) {
      log.info({ ...total, retentionDays: days }, 'retention: patient data erased');
      // Erasing patient data is an act on it like any other: the audit log says when, how much, and under what
      // policy (counts only). The health page shows the latest.
      await this.ds.query(
        `INSERT INTO audit_log (user_id, user_email, action, target_type, target_id, outcome, detail)
         VALUES (NULL, $1, $2, $3, $4, 'ok', $5)`,
        [
          RETENTION_ACTOR,
          RETENTION_AUDIT_ACTION,
          RETENTION_AUDIT_TARGET.type,
          RETENTION_AUDIT_TARGET.id,
          JSON.stringify({ ...total, retentionDays: days }),
        ],
      );
    }
    return total;
  }

  /**
   * What a sweep with `days` would erase now, counted without erasing anything (`npm run retention -- --check`):
   * to see what a RETENTION_DAYS would do before setting it.
   */
  async preview(days: number, now = new Date()): Promise<RetentionResult> {
    const cutoff = new Date(now.getTime() - days * DAY_MS);
    // An order is gone after the sweep when it is purged already or finished before the cutoff.
    const goneOrder = (o: string) =>
      `(${o}.purged_at IS NOT NULL OR (${o}.status IN ${FINISHED} AND ${o}.status_changed_at < $1))`;
    const [orders, messages, patients]: Array<Array<{ n: string }>> = await Promise.all([
      this.ds.query(`SELECT count(*) AS n FROM orders WHERE ${PAST_RETENTION}`, [cutoff]),
      this.ds.query(
        `SELECT count(*) AS n FROM inbound_messages im
          WHERE im.purged_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.inbound_message_id = im.id AND NOT ${goneOrder('o')})
            -- A message goes with its last order, or, having none, by its own age.
            AND (im.received_at < $1 OR EXISTS (SELECT 1 FROM orders o WHERE o.inbound_message_id = im.id))`,
        [cutoff],
      ),
      this.ds.query(
        `SELECT count(*) AS n FROM patient_proxies p
          WHERE p.purged_at IS NULL AND p.updated_at < $1
            AND EXISTS (SELECT 1 FROM orders o WHERE o.patient_proxy_id = p.id AND o.purged_at IS NULL AND ${goneOrder('o')})
            AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.patient_proxy_id = p.id AND NOT ${goneOrder('o')})`,
        [cutoff],
      ),
    ]);
    return {
      orders: Number(orders[0]!.n),
      inboundMessages: Number(messages[0]!.n),
      patientIdentities: Number(patients[0]!.n),
    };
  }

  /** A batch of finished orders past the cutoff, then their messages and patients when nothing holds them. */
  private async purgeOrderBatch(
    m: EntityManager,
    cutoff: Date,
    days: number,
    batchSize: number,
  ): Promise<RetentionResult> {
    // (A CTE around the UPDATE: TypeORM answers a bare UPDATE … RETURNING with [rows, count].)
    const orders: Array<{ id: string; inbound_message_id: string | null; patient_proxy_id: string | null }> =
      await m.query(
        `WITH picked AS (
           SELECT id FROM orders WHERE ${PAST_RETENTION}
            ORDER BY status_changed_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ), purged AS (
           UPDATE orders o
              SET purged_at = now(), updated_at = now(), version = o.version + 1,
                  details = (o.details - 'notes') #- '{fhir,note}'
             FROM picked WHERE o.id = picked.id
           RETURNING o.id, o.inbound_message_id, o.patient_proxy_id
         )
         SELECT * FROM purged`,
        [cutoff, batchSize],
      );
    if (orders.length === 0) return { orders: 0, inboundMessages: 0, patientIdentities: 0 };
    await m.query(
      `INSERT INTO order_events (order_id, type, actor, detail)
       SELECT id, 'purged', 'retention', $2::jsonb FROM unnest($1::uuid[]) AS id`,
      [orders.map((o) => o.id), JSON.stringify({ retentionDays: days })],
    );
    // An image's source URL may carry identifiers (`…/image?mrn=…`, a signed link naming the patient).
    await m.query(
      `UPDATE image_files SET source_url = NULL WHERE order_id = ANY($1::uuid[]) AND source_url IS NOT NULL`,
      [orders.map((o) => o.id)],
    );
    const inboundIds = unique(orders.map((o) => o.inbound_message_id));
    const patientIds = unique(orders.map((o) => o.patient_proxy_id));
    const inboundMessages = await this.purgeMessages(m, inboundIds);
    // A patient with an order still open, or not yet old enough, keeps her identity: results are addressed
    // with it, and the dashboard reveals it.
    const patients: Array<{ id: string }> = await m.query(
      `WITH purged AS (
         UPDATE patient_proxies p SET identity_enc = '', purged_at = now()
          WHERE p.id = ANY($1::uuid[]) AND p.purged_at IS NULL AND p.updated_at < $2
            AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.patient_proxy_id = p.id AND o.purged_at IS NULL)
         RETURNING p.id
       )
       SELECT id FROM purged`,
      [patientIds, cutoff],
    );
    return { orders: orders.length, inboundMessages, patientIdentities: patients.length };
  }

  /** Erases these inbound messages (and their stored ACKs) where no order of theirs is left unpurged. */
  private async purgeMessages(m: EntityManager, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const rows: Array<{ id: string }> = await m.query(
      `WITH purged AS (
         UPDATE inbound_messages im SET raw = '', ack = NULL, purged_at = now()
          WHERE im.id = ANY($1::uuid[]) AND im.purged_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.inbound_message_id = im.id AND o.purged_at IS NULL)
         RETURNING im.id
       )
       SELECT id FROM purged`,
      [ids],
    );
    return rows.length;
  }

  /**
   * Messages that made no order (refused ones, cancellations) are not reached through an order: they are
   * swept by arrival time, from where the last sweep stopped (`retention_state`) to the cutoff. A message
   * in that window whose orders are not all purged yet is erased later, with its last order.
   */
  private async sweepOrderlessMessages(cutoff: Date, batchSize: number): Promise<RetentionResult> {
    let erased = 0;
    for (;;) {
      const step = await this.ds.transaction(async (m) => {
        // One sweep at a time (the row is locked); timestamps stay in SQL, where they keep their microseconds.
        await m.query(
          `INSERT INTO retention_state (name, swept_to, swept_id)
           VALUES ('inbound', '-infinity', '00000000-0000-0000-0000-000000000000') ON CONFLICT (name) DO NOTHING`,
        );
        // Keyset (arrival time, id): a group commit gives every message of its batch the same time.
        const page: Array<{ id: string }> = await m.query(
          `WITH s AS (SELECT swept_to, swept_id FROM retention_state WHERE name = 'inbound' FOR UPDATE)
           SELECT im.id FROM inbound_messages im, s
            WHERE (im.received_at, im.id) > (s.swept_to, s.swept_id) AND im.received_at < $1
            ORDER BY im.received_at, im.id LIMIT $2`,
          [cutoff, batchSize],
        );
        if (page.length === 0) return { erased: 0, done: true };
        const n = await this.purgeMessages(
          m,
          page.map((r) => r.id),
        );
        await m.query(
          `UPDATE retention_state r SET swept_to = im.received_at, swept_id = im.id
             FROM inbound_messages im WHERE r.name = 'inbound' AND im.id = $1`,
          [page[page.length - 1]!.id],
        );
        return { erased: n, done: page.length < batchSize };
      });
      erased += step.erased;
      if (step.done) break;
    }
    return { orders: 0, inboundMessages: erased, patientIdentities: 0 };
  }
}

function add(into: RetentionResult, r: RetentionResult): void {
  into.orders += r.orders;
  into.inboundMessages += r.inboundMessages;
  into.patientIdentities += r.patientIdentities;
}

function unique(ids: Array<string | null>): string[] {
  return [...new Set(ids.filter((id): id is string => id !== null))];
}
