import { randomUUID } from 'node:crypto';
import { createLogger } from '@hemato/common';
import { isHematoApiError, type HematoApiError } from '@hemato/hemato-client';
import type { OrderEntity } from '@hemato/persistence';
import type { EntityManager } from 'typeorm';

const log = createLogger('step:hemato-ask');

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

/** How long a claim to ask lasts unless renewed; the execution holding it renews it every third of that. */
export const ASK_LEASE_MS = 30_000;

/**
 * Runs `ask` (the check-and-ask of `work`, through recording its answer) unless another execution of the same
 * step for the same order is at it; false when it is (this one then leaves the order to it).
 *
 * Two executions of one step for one order can overlap: the reconciler re-drives a stale order under a job id
 * of its own (`~rc<time>`) while the step's own job waits for its retry or is still running, and BullMQ re-runs
 * a job whose lock it lost while the first run may still be going. Both would find nothing asked and both ask:
 * two studies (workflow 2: two runs), or the tasks twice. The claim is a lease on the order row
 * (`details.hematoAsking.<work>`), taken atomically, renewed while the ask runs and dropped once its answer is
 * recorded. It holds no connection or row lock during the call to Hemato.AI (held that long, a lock would starve
 * the pool and block the order's own status move). A worker that dies holding it leaves it to expire within
 * `leaseMs`; the reconciler re-drives the order then.
 */
export async function askAlone(
  manager: EntityManager,
  orderId: string,
  work: HematoWork,
  ask: () => Promise<void>,
  leaseMs = ASK_LEASE_MS,
): Promise<boolean> {
  const token = randomUUID();
  const lease = Math.ceil(leaseMs);
  const claimed: unknown[] = await manager.query(
    // (A CTE, because TypeORM answers a bare UPDATE ... RETURNING with [rows, count], not rows.)
    `WITH claimed AS (
       UPDATE orders
          SET details = jsonb_set(COALESCE(details, '{}'::jsonb), '{hematoAsking}',
                                  COALESCE(details->'hematoAsking', '{}'::jsonb) ||
                                  jsonb_build_object($2::text, jsonb_build_object(
                                    'by', $3::text, 'until', now() + $4::int * interval '1 millisecond'))),
              updated_at = now()
        WHERE id = $1
          AND (details->'hematoAsking'->$2::text IS NULL
               OR (details->'hematoAsking'->$2::text->>'until')::timestamptz <= now())
       RETURNING id)
     SELECT id FROM claimed`,
    [orderId, work, token, lease],
  );
  if (claimed.length === 0) return false;
  const renew = async () => {
    const renewed: unknown[] = await manager.query(
      `WITH renewed AS (
         UPDATE orders
            SET details = jsonb_set(details, ARRAY['hematoAsking', $2::text, 'until'],
                                    to_jsonb(now() + $4::int * interval '1 millisecond'))
          WHERE id = $1 AND details->'hematoAsking'->$2::text->>'by' = $3
         RETURNING id)
       SELECT id FROM renewed`,
      [orderId, work, token, lease],
    );
    if (renewed.length === 0) log.warn({ orderId, work }, 'the claim to ask Hemato.AI was lost before the answer');
  };
  const timer = setInterval(
    () => {
      renew().catch((err: unknown) =>
        log.warn({ orderId, work, err: err instanceof Error ? err.message : String(err) }, 'claim not renewed'),
      );
    },
    Math.max(1, Math.floor(lease / 3)),
  );
  timer.unref();
  try {
    await ask();
  } finally {
    clearInterval(timer);
    await manager.query(
      `UPDATE orders SET details = details #- ARRAY['hematoAsking', $2::text]
        WHERE id = $1 AND details->'hematoAsking'->$2::text->>'by' = $3`,
      [orderId, work, token],
    );
  }
  return true;
}
