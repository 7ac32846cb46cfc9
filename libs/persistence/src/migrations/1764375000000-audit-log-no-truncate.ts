import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit log refused UPDATE and DELETE row by row, but TRUNCATE fires no row trigger: one statement
 * with the application's credentials emptied it. A statement trigger refuses TRUNCATE too.
 */
export class AuditLogNoTruncate1764375000000 implements MigrationInterface {
  name = 'AuditLogNoTruncate1764375000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
      FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER audit_log_no_truncate ON audit_log`);
  }
}
