import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Inbound messages by control id alone (MSH-10, or a FHIR request's id): "did you get MSG00123?" is the
 * first question of an interface engineer, who may not know how we spell the sender. The unique key
 * (sender, control_id) cannot serve a lookup without the sender.
 */
export class InboundControlIdIndex1764340000000 implements MigrationInterface {
  name = 'InboundControlIdIndex1764340000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX ix_inbound_control_id ON inbound_messages (control_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS ix_inbound_control_id`);
  }
}
