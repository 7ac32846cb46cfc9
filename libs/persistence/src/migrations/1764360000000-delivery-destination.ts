import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `deliveries.destination`: where a result was sent (`mllp://host:port`, `mllps://…`), so an admin sees which
 * interface engine a result went to when HL7_RESULT_ROUTES sends results to several. Older rows: null.
 */
export class DeliveryDestination1764360000000 implements MigrationInterface {
  name = 'DeliveryDestination1764360000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries ADD COLUMN destination text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries DROP COLUMN destination`);
  }
}
