import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The admin dashboard: its users (scrypt hashes, lock-out counters), their sessions, the audit log,
 * the indexes its order list and search need, and a NOTIFY on order changes for live updates.
 */
export class AdminDashboard1764280000000 implements MigrationInterface {
  name = 'AdminDashboard1764280000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE admin_users (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      email text NOT NULL,
      role text NOT NULL CHECK (role IN ('admin', 'viewer')),
      password_hash text NOT NULL,
      failed_attempts int NOT NULL DEFAULT 0,
      locked_until timestamptz,
      last_login_at timestamptz,
      disabled boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
    // E-mail addresses are compared case-insensitively: one account per person.
    await q.query(`CREATE UNIQUE INDEX uq_admin_users_email ON admin_users (lower(email))`);

    // Only a hash of the session token is stored: a database dump does not sign anyone in.
    await q.query(`CREATE TABLE admin_sessions (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id uuid NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
      token_hash text NOT NULL UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now(),
      last_seen_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      ip text,
      user_agent text
    )`);
    await q.query(`CREATE INDEX ix_admin_sessions_user ON admin_sessions (user_id)`);

    await q.query(`CREATE TABLE audit_log (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL DEFAULT clock_timestamp(),
      user_id uuid,
      user_email text NOT NULL,
      action text NOT NULL,
      target_type text,
      target_id text,
      outcome text NOT NULL DEFAULT 'ok',
      detail jsonb NOT NULL DEFAULT '{}',
      ip text
    )`);
    await q.query(`CREATE INDEX ix_audit_log_at ON audit_log (at DESC)`);
    await q.query(`CREATE INDEX ix_audit_log_target ON audit_log (target_type, target_id)`);
    // Like the order timeline, the audit log is append-only at the database.
    await q.query(`CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$`);
    await q.query(`CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
      FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()`);

    // Keyset pagination of the order list: newest first, ties broken by id, with and without a status filter.
    await q.query(`CREATE INDEX ix_orders_created_id ON orders (created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX ix_orders_status_created_id ON orders (status, created_at DESC, id DESC)`);
    // Prefix search by order number (exact match uses these too).
    await q.query(`CREATE INDEX ix_orders_placer_prefix ON orders (placer_order_number text_pattern_ops)`);
    await q.query(`CREATE INDEX ix_orders_filler_prefix ON orders (filler_order_number text_pattern_ops)`);
    await q.query(`CREATE INDEX ix_patient_proxies_proxy_prefix ON patient_proxies (proxy_id text_pattern_ops)`);

    // Live updates: the dashboard LISTENs on hb_order_changed; the payload is the order id only (no PHI).
    await q.query(`CREATE FUNCTION hb_notify_order_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_TABLE_NAME = 'orders' THEN
          PERFORM pg_notify('hb_order_changed', NEW.id::text);
        ELSE
          PERFORM pg_notify('hb_order_changed', NEW.order_id::text);
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER orders_notify_changed AFTER INSERT OR UPDATE ON orders
      FOR EACH ROW EXECUTE FUNCTION hb_notify_order_changed()`);
    await q.query(`CREATE TRIGGER order_events_notify_changed AFTER INSERT ON order_events
      FOR EACH ROW EXECUTE FUNCTION hb_notify_order_changed()`);
    await q.query(`CREATE TRIGGER deliveries_notify_changed AFTER INSERT OR UPDATE ON deliveries
      FOR EACH ROW EXECUTE FUNCTION hb_notify_order_changed()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER deliveries_notify_changed ON deliveries`);
    await q.query(`DROP TRIGGER order_events_notify_changed ON order_events`);
    await q.query(`DROP TRIGGER orders_notify_changed ON orders`);
    await q.query(`DROP FUNCTION hb_notify_order_changed()`);
    await q.query(`DROP INDEX ix_patient_proxies_proxy_prefix`);
    await q.query(`DROP INDEX ix_orders_filler_prefix`);
    await q.query(`DROP INDEX ix_orders_placer_prefix`);
    await q.query(`DROP INDEX ix_orders_status_created_id`);
    await q.query(`DROP INDEX ix_orders_created_id`);
    await q.query(`DROP TRIGGER audit_log_no_update ON audit_log`);
    await q.query(`DROP TABLE audit_log`);
    await q.query(`DROP FUNCTION audit_log_append_only()`);
    await q.query(`DROP TABLE admin_sessions`);
    await q.query(`DROP TABLE admin_users`);
  }
}
