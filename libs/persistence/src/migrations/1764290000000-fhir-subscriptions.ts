import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * FHIR Subscription bookkeeping: the event numbers seen per subscription (a repeat is a duplicate,
 * a jump is a gap to catch up on) and each subscription's last known state.
 */
export class FhirSubscriptions1764290000000 implements MigrationInterface {
  name = 'FhirSubscriptions1764290000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE fhir_subscription_events (
      subscription text NOT NULL,
      event_number bigint NOT NULL,
      focus text,
      received_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (subscription, event_number)
    )`);
    await q.query(`CREATE TABLE fhir_subscription_state (
      subscription text PRIMARY KEY,
      last_event_number bigint NOT NULL DEFAULT 0,
      handshake_at timestamptz,
      heartbeat_at timestamptz,
      gaps_detected int NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL DEFAULT now()
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE fhir_subscription_state`);
    await q.query(`DROP TABLE fhir_subscription_events`);
  }
}
