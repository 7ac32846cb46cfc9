import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `orders.source_client`: which client of its channel placed the order (FHIR: the API key's client,
 * `jwt:<id>`, or `ehr-subscription`), so a FHIR client sees and cancels only its own orders. Filled for
 * existing FHIR orders from the sender of the request that created them (inbound_messages.sender, which
 * every FHIR intake has recorded). No index: orders are found by id, identifier or ServiceRequest and
 * only then checked for their client.
 */
export class OrderSourceClient1764310000000 implements MigrationInterface {
  name = 'OrderSourceClient1764310000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE orders ADD COLUMN source_client text`);
    await q.query(
      `UPDATE orders o SET source_client = m.sender
         FROM inbound_messages m
        WHERE m.id = o.inbound_message_id AND o.source_channel = 'fhir' AND m.channel = 'fhir'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE orders DROP COLUMN source_client`);
  }
}
