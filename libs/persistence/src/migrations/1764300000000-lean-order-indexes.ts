import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Drops three orders indexes that later ones cover: (created_at DESC) and (status, created_at DESC) are
 * prefixes of the dashboard's keyset indexes (…, id DESC), and placer_order_number equality is served by
 * its text_pattern_ops index. Every order insert, and every status change (not a HOT update: status is
 * indexed), wrote all eleven; now eight.
 */
export class LeanOrderIndexes1764300000000 implements MigrationInterface {
  name = 'LeanOrderIndexes1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS ix_orders_created`);
    await q.query(`DROP INDEX IF EXISTS ix_orders_status_created`);
    await q.query(`DROP INDEX IF EXISTS ix_orders_placer`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX ix_orders_placer ON orders (placer_order_number)`);
    await q.query(`CREATE INDEX ix_orders_status_created ON orders (status, created_at DESC)`);
    await q.query(`CREATE INDEX ix_orders_created ON orders (created_at DESC)`);
  }
}
