import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An index on the identifier value of FHIR order keys (`fhir:<system>|<value>`: the text after the first
 * `|`), for conditional creates that name no system (`If-None-Exist: identifier=<value>`), which match
 * the value under any system. That lookup scanned every order (a suffix match on external_key). An
 * expression index: existing orders are indexed as it is built, and nothing at intake writes it. Partial:
 * only FHIR keys with a system part (HL7 keys and keys made of an EHR ServiceRequest URL are left out).
 * The lookup (FhirOrdersRepository.identifierValueQuery) must use this exact expression and predicate.
 */
export class FhirIdentifierValueIndex1764330000000 implements MigrationInterface {
  name = 'FhirIdentifierValueIndex1764330000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX ix_orders_fhir_identifier_value ON orders ((substr(external_key, strpos(external_key, '|') + 1)))
        WHERE external_key LIKE 'fhir:%|%'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS ix_orders_fhir_identifier_value`);
  }
}
