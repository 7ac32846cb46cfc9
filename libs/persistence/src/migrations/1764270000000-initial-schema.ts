import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The first schema: orders and their timeline, inbound messages, patient proxies, images, reports, deliveries. */
export class InitialSchema1764270000000 implements MigrationInterface {
  name = 'InitialSchema1764270000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE patient_proxies (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      proxy_id text NOT NULL UNIQUE,
      lookup_hmac text NOT NULL UNIQUE,
      identity_enc text NOT NULL,
      key_id text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);

    await q.query(`CREATE TABLE inbound_messages (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      channel text NOT NULL,
      sender text NOT NULL,
      control_id text NOT NULL,
      message_type text,
      raw text NOT NULL,
      status text NOT NULL DEFAULT 'accepted',
      ack_code text,
      ack text,
      error text,
      received_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT uq_inbound_sender_control UNIQUE (sender, control_id)
    )`);
    await q.query(`CREATE INDEX ix_inbound_received ON inbound_messages (received_at DESC)`);

    // Filler order numbers: ours, short enough to read out on the phone.
    await q.query(`CREATE SEQUENCE filler_number_seq`);
    await q.query(`CREATE TABLE orders (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      status text NOT NULL,
      source_channel text NOT NULL,
      placer_order_number text,
      filler_order_number text NOT NULL UNIQUE,
      external_key text UNIQUE,
      patient_proxy_id uuid REFERENCES patient_proxies(id),
      inbound_message_id uuid REFERENCES inbound_messages(id),
      test_system text,
      test_code text,
      test_display text,
      tasks text[] NOT NULL DEFAULT '{}',
      hemato_study_id text,
      hemato_report_status text,
      hemato_progress real,
      hemato_user_message text,
      failure_reason text,
      failed_step text,
      expected_image_count int,
      images_complete boolean NOT NULL DEFAULT false,
      state_deadline_at timestamptz,
      details jsonb NOT NULL DEFAULT '{}',
      status_changed_at timestamptz NOT NULL DEFAULT now(),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      version int NOT NULL DEFAULT 1
    )`);
    await q.query(`CREATE INDEX ix_orders_status_created ON orders (status, created_at DESC)`);
    await q.query(`CREATE INDEX ix_orders_created ON orders (created_at DESC)`);
    await q.query(`CREATE INDEX ix_orders_placer ON orders (placer_order_number)`);
    await q.query(`CREATE INDEX ix_orders_patient_proxy ON orders (patient_proxy_id)`);
    await q.query(`CREATE INDEX ix_orders_study ON orders (hemato_study_id) WHERE hemato_study_id IS NOT NULL`);
    await q.query(
      `CREATE INDEX ix_orders_deadline ON orders (state_deadline_at) WHERE status NOT IN ('completed','rejected','cancelled')`,
    );

    await q.query(`CREATE TABLE order_events (
      id bigserial PRIMARY KEY,
      order_id uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
      at timestamptz NOT NULL DEFAULT clock_timestamp(),
      type text NOT NULL,
      from_status text,
      to_status text,
      actor text NOT NULL,
      detail jsonb NOT NULL DEFAULT '{}'
    )`);
    await q.query(`CREATE INDEX ix_order_events_order ON order_events (order_id, id)`);
    // The timeline is append-only: refuse UPDATE at the database, not just by convention.
    await q.query(`CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'order_events is append-only'; END $$`);
    await q.query(`CREATE TRIGGER order_events_no_update BEFORE UPDATE ON order_events
      FOR EACH ROW EXECUTE FUNCTION order_events_append_only()`);

    await q.query(`CREATE TABLE image_files (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      order_id uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
      name text NOT NULL,
      source text NOT NULL,
      source_url text,
      status text NOT NULL DEFAULT 'stored',
      content_hash text,
      size_bytes bigint,
      media_type text,
      storage_key text,
      hemato_file_id text,
      error text,
      created_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT uq_image_order_name UNIQUE (order_id, name)
    )`);
    await q.query(`CREATE INDEX ix_image_files_order ON image_files (order_id)`);

    await q.query(`CREATE TABLE reports (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      order_id uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
      version int NOT NULL,
      hemato_study_id text NOT NULL,
      raw jsonb NOT NULL,
      fetched_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT uq_report_order_version UNIQUE (order_id, version)
    )`);

    await q.query(`CREATE TABLE deliveries (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      order_id uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
      report_id uuid NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
      target text NOT NULL,
      status text NOT NULL DEFAULT 'pending',
      attempts int NOT NULL DEFAULT 0,
      last_attempt_at timestamptz,
      outcome text,
      response text,
      control_id text,
      error text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT uq_delivery_report_target UNIQUE (report_id, target)
    )`);
    await q.query(`CREATE INDEX ix_deliveries_order ON deliveries (order_id)`);
    await q.query(`CREATE INDEX ix_deliveries_status ON deliveries (status, updated_at DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE deliveries`);
    await q.query(`DROP TABLE reports`);
    await q.query(`DROP TABLE image_files`);
    await q.query(`DROP TRIGGER order_events_no_update ON order_events`);
    await q.query(`DROP TABLE order_events`);
    await q.query(`DROP FUNCTION order_events_append_only()`);
    await q.query(`DROP TABLE orders`);
    await q.query(`DROP SEQUENCE filler_number_seq`);
    await q.query(`DROP TABLE inbound_messages`);
    await q.query(`DROP TABLE patient_proxies`);
  }
}
