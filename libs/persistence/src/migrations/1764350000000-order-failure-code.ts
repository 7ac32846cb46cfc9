import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `orders.failure_code`: why a failed order failed, where the system acts on the cause (`poll_deadline`:
 * Hemato.AI's report, called back after POLL_DEADLINE_MS, is still taken up). Orders failed on the deadline
 * before this column existed get the code from their timeline (the move to failed names the step
 * `wait_for_report`), so their late reports are taken up too.
 */
export class OrderFailureCode1764350000000 implements MigrationInterface {
  name = 'OrderFailureCode1764350000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE orders ADD COLUMN failure_code text`);
    await q.query(
      `UPDATE orders o SET failure_code = 'poll_deadline'
        WHERE o.status = 'failed'
          AND (SELECT e.detail->>'step' FROM order_events e
                WHERE e.order_id = o.id AND e.type = 'status_changed' AND e.to_status = 'failed'
                ORDER BY e.id DESC LIMIT 1) = 'wait_for_report'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE orders DROP COLUMN failure_code`);
  }
}
