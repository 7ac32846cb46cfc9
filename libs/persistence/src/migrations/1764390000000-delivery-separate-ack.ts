import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `deliveries.separate_ack` / `separate_ack_at`: an application ACK for one of our ORUs that the receiver sent on a
 * connection of its own, to our MLLP listener (enhanced mode, two-socket engines), kept for the sending worker to
 * take as the answer it did not get on its connection. Looked up by our control id (MSA-2).
 */
export class DeliverySeparateAck1764390000000 implements MigrationInterface {
  name = 'DeliverySeparateAck1764390000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries ADD COLUMN separate_ack text, ADD COLUMN separate_ack_at timestamptz`);
    await q.query(`CREATE INDEX ix_deliveries_hl7_control_id ON deliveries (control_id) WHERE target = 'hl7'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX ix_deliveries_hl7_control_id`);
    await q.query(`ALTER TABLE deliveries DROP COLUMN separate_ack, DROP COLUMN separate_ack_at`);
  }
}
