import { DeliveryStatus, type DeliveryTarget } from '@hemato/common';
import { DeliveryEntity, ReportEntity } from '@hemato/persistence';
import type { EntityManager } from 'typeorm';

/**
 * Which delivery a delivery job sends: that of the order's newest report for the job's target.
 *
 * A report can be revised while the delivery of the previous version is still retrying (receiver
 * down, EHR slow). Sending the older version after the correction would leave the receiver with
 * the wrong result: an ORU with OBR-25 F after the C, or a conditional update that overwrites the
 * corrected DiagnosticReport with the older one. So one job per (order, target) sends at a time
 * (see LifecycleQueue.delivery) and, whichever delivery it was started for, it sends the newest:
 * older deliveries not yet acknowledged are marked `superseded` and never sent again.
 *
 * Returns null when the newest report has no delivery row for the target yet (fetch-report is
 * creating it and will ask for its job, which BullMQ starts once this one ends).
 */
export async function currentDelivery(m: EntityManager, delivery: DeliveryEntity): Promise<DeliveryEntity | null> {
  const newest = await newestReport(m, delivery.orderId);
  if (!newest || newest.id === delivery.reportId) return delivery;
  await supersedeOlder(m, delivery.orderId, delivery.target, newest.version);
  return m.findOne(DeliveryEntity, { where: { reportId: newest.id, target: delivery.target } });
}

function newestReport(m: EntityManager, orderId: string): Promise<Pick<ReportEntity, 'id' | 'version'> | null> {
  return m.findOne(ReportEntity, {
    where: { orderId },
    order: { version: 'DESC' },
    select: { id: true, version: true },
  });
}

/** The id of the order's newest report version: a sender asks it before each resend. */
export async function newestReportId(m: EntityManager, orderId: string): Promise<string | null> {
  return (await newestReport(m, orderId))?.id ?? null;
}

/** Marks superseded the unsettled deliveries to `target` of the order's reports older than `version`. */
async function supersedeOlder(
  m: EntityManager,
  orderId: string,
  target: DeliveryTarget,
  version: number,
): Promise<void> {
  await m.query(
    `UPDATE deliveries d SET status = $1, error = $2, updated_at = now()
       FROM reports r
      WHERE r.id = d.report_id AND d.order_id = $3 AND d.target = $4 AND r.version < $5
        AND d.status IN ($6, $7)`,
    [
      DeliveryStatus.Superseded,
      `superseded by report version ${version}`,
      orderId,
      target,
      version,
      DeliveryStatus.Pending,
      DeliveryStatus.Sending,
    ],
  );
}

/**
 * True when the receiver has acknowledged an earlier version of this delivery's report: the result
 * it sends is then a correction (HL7 OBR-25 `C`); otherwise the receiver has never had one and it
 * goes as final, whatever its version number.
 */
export async function earlierVersionAcknowledged(m: EntityManager, delivery: DeliveryEntity): Promise<boolean> {
  const rows: Array<{ one: number }> = await m.query(
    `SELECT 1 AS one FROM deliveries d
       JOIN reports r ON r.id = d.report_id
       JOIN reports cur ON cur.id = $1
      WHERE d.order_id = $2 AND d.target = $3 AND d.status = $4 AND r.version < cur.version
      LIMIT 1`,
    [delivery.reportId, delivery.orderId, delivery.target, DeliveryStatus.Acknowledged],
  );
  return rows.length > 0;
}
