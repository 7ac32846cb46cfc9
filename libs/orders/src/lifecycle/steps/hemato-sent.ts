import { isHematoApiError, type HematoApiError } from '@hemato/hemato-client';
import type { OrderEntity } from '@hemato/persistence';
import type { EntityManager } from 'typeorm';

/** Calls to Hemato.AI that do new work each time they are made (creating a study, requesting the tasks). */
export type HematoWork = 'create_study' | 'request_tasks';

/** The mark of one such call: when it was last sent, and for which study. */
export interface HematoSent {
  at: string;
  studyId?: string;
}

/**
 * Marks on the order (`details.hematoSent`) that such a call is about to be sent, before it is. A step that
 * finds its own mark knows an earlier attempt may have reached Hemato.AI though its answer never came back
 * (a dropped connection, a timeout after the work was done), and looks before asking again: asking blindly
 * would make an orphan study, or a second run whose report (version 2) reaches the hospital as a correction.
 */
export async function markSent(
  manager: EntityManager,
  orderId: string,
  work: HematoWork,
  mark: Omit<HematoSent, 'at'> = {},
): Promise<void> {
  const value: HematoSent = { at: new Date().toISOString(), ...mark };
  await manager.query(
    `UPDATE orders
        SET details = jsonb_set(details, '{hematoSent}',
                                COALESCE(details->'hematoSent', '{}'::jsonb) || jsonb_build_object($2::text, $3::jsonb)),
            updated_at = now()
      WHERE id = $1`,
    [orderId, work, JSON.stringify(value)],
  );
}

/** The earlier mark of `work` on this order (for this study, when one is given), if any. */
export function sentBefore(order: OrderEntity, work: HematoWork, studyId?: string): HematoSent | undefined {
  const sent = (order.details?.hematoSent as Partial<Record<HematoWork, HematoSent>> | undefined)?.[work];
  if (!sent || (studyId !== undefined && sent.studyId !== studyId)) return undefined;
  return sent;
}

/** True when a call ended without an answer: it may have reached Hemato.AI, which may have done the work. */
export function answerLost(err: unknown): err is HematoApiError {
  return isHematoApiError(err, 'network', 'timeout');
}
