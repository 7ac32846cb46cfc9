import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Retention (`RETENTION_DAYS`): `purged_at` on orders, inbound messages and patient proxies says when their
 * patient data was erased. `ix_orders_retention` holds only finished orders not yet purged: orders are
 * inserted as `received`, so intake writes no entry in it, and a purged order leaves it. `ix_orders_inbound`
 * finds the orders of an inbound message (is every one of them purged?); it is also the index the foreign key
 * lacked. `retention_state` keeps how far the sweep of inbound messages without orders has gone (arrival time, id).
 */
export class Retention1764370000000 implements MigrationInterface {
  name = 'Retention1764370000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE orders ADD COLUMN purged_at timestamptz`);
    await q.query(`ALTER TABLE inbound_messages ADD COLUMN purged_at timestamptz`);
    await q.query(`ALTER TABLE patient_proxies ADD COLUMN purged_at timestamptz`);
    await q.query(
      `CREATE INDEX ix_orders_retention ON orders (status_changed_at)
        WHERE purged_at IS NULL AND status IN ('completed', 'rejected', 'cancelled', 'failed')`,
    );
    await q.query(`CREATE INDEX ix_orders_inbound ON orders (inbound_message_id)`);
    await q.query(
      `CREATE TABLE retention_state (name text PRIMARY KEY, swept_to timestamptz NOT NULL, swept_id uuid NOT NULL)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE retention_state`);
    await q.query(`DROP INDEX ix_orders_inbound`);
    await q.query(`DROP INDEX ix_orders_retention`);
    await q.query(`ALTER TABLE patient_proxies DROP COLUMN purged_at`);
    await q.query(`ALTER TABLE inbound_messages DROP COLUMN purged_at`);
    await q.query(`ALTER TABLE orders DROP COLUMN purged_at`);
  }
}
