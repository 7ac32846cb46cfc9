import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `image_files.declared_size` / `declared_sha1`: what the order said an image fetched by URL would be (FHIR
 * Attachment.size, and Attachment.hash as hex SHA-1), checked against the bytes when the worker fetches them.
 * Null when the order did not say (HL7 RP, FHIR without them): nothing to check.
 */
export class ImageDeclaredContent1764380000000 implements MigrationInterface {
  name = 'ImageDeclaredContent1764380000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE image_files ADD COLUMN declared_size bigint, ADD COLUMN declared_sha1 text`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE image_files DROP COLUMN declared_size, DROP COLUMN declared_sha1`);
  }
}
