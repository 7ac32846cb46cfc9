import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The `hb_order_changed` NOTIFY (live dashboard updates) fired once per row: a group commit of 200 HL7
 * orders ran 400 PL/pgSQL trigger calls and queued 200 notifications, each read and parsed by every
 * listening gateway. Now one trigger call per statement, reading the statement's transition table, and
 * one notification per 100 distinct order ids (payload: the ids joined by commas, ~3.7 KB, under
 * NOTIFY's 8,000-byte limit). Transition tables allow one event per trigger, hence INSERT and UPDATE apart.
 */
export class StatementLevelOrderNotify1764320000000 implements MigrationInterface {
  name = 'StatementLevelOrderNotify1764320000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER orders_notify_changed ON orders`);
    await q.query(`DROP TRIGGER order_events_notify_changed ON order_events`);
    await q.query(`DROP TRIGGER deliveries_notify_changed ON deliveries`);
    // `changed_rows` holds each changed row's order id as `order_ref` (orders: its id; others: order_id).
    await q.query(`CREATE FUNCTION hb_notify_orders_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_TABLE_NAME = 'orders' THEN
          PERFORM pg_notify('hb_order_changed', string_agg(ref, ','))
             FROM (SELECT ref, (row_number() OVER ()) / 100 AS chunk
                     FROM (SELECT DISTINCT id::text AS ref FROM changed_rows) d) c
            GROUP BY chunk;
        ELSE
          PERFORM pg_notify('hb_order_changed', string_agg(ref, ','))
             FROM (SELECT ref, (row_number() OVER ()) / 100 AS chunk
                     FROM (SELECT DISTINCT order_id::text AS ref FROM changed_rows) d) c
            GROUP BY chunk;
        END IF;
        RETURN NULL;
      END $$`);
    for (const [table, name, events] of [
      ['orders', 'orders_notify_inserted', 'INSERT'],
      ['orders', 'orders_notify_updated', 'UPDATE'],
      ['order_events', 'order_events_notify_inserted', 'INSERT'],
      ['deliveries', 'deliveries_notify_inserted', 'INSERT'],
      ['deliveries', 'deliveries_notify_updated', 'UPDATE'],
    ] as const) {
      await q.query(`CREATE TRIGGER ${name} AFTER ${events} ON ${table}
        REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION hb_notify_orders_changed()`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const [table, name] of [
      ['orders', 'orders_notify_inserted'],
      ['orders', 'orders_notify_updated'],
      ['order_events', 'order_events_notify_inserted'],
      ['deliveries', 'deliveries_notify_inserted'],
      ['deliveries', 'deliveries_notify_updated'],
    ] as const) {
      await q.query(`DROP TRIGGER ${name} ON ${table}`);
    }
    await q.query(`DROP FUNCTION hb_notify_orders_changed()`);
    // hb_notify_order_changed() (the per-row function) was never dropped: the old triggers come back on it.
    await q.query(`CREATE TRIGGER orders_notify_changed AFTER INSERT OR UPDATE ON orders
      FOR EACH ROW EXECUTE FUNCTION hb_notify_order_changed()`);
    await q.query(`CREATE TRIGGER order_events_notify_changed AFTER INSERT ON order_events
      FOR EACH ROW EXECUTE FUNCTION hb_notify_order_changed()`);
    await q.query(`CREATE TRIGGER deliveries_notify_changed AFTER INSERT OR UPDATE ON deliveries
      FOR EACH ROW EXECUTE FUNCTION hb_notify_order_changed()`);
  }
}
