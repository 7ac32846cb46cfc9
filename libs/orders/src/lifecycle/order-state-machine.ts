import { DomainError, DomainErrorCode, OrderFailureCode, OrderStatus } from '@hemato/common';

const S = OrderStatus;

/**
 * Every allowed move of an order, in one table. Anything not listed is refused by `assertTransition`,
 * whichever handler asks. An order can be held (`on_hold`) only while nothing of it is at Hemato.AI. `failed` can go back to the step that failed (retry); `completed` can go
 * back to `report_ready` (a revision) or `delivering` (a resend). `failed → report_ready` depends on why
 * the order failed: see `isLateReport`.
 */
export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  [S.Received]: [S.AwaitingImages, S.Ready, S.Rejected, S.Cancelled, S.Failed, S.OnHold],
  [S.AwaitingImages]: [S.Ready, S.Cancelled, S.Failed, S.OnHold],
  [S.Ready]: [S.StudyCreated, S.Cancelled, S.Failed, S.OnHold],
  // Released: back to the first step, which fetches what is pending and moves on as the images allow.
  // Failed: an image fetch that was under way when the hold came failed (the order says so, held or not).
  [S.OnHold]: [S.Received, S.Cancelled, S.Failed],
  [S.StudyCreated]: [S.Uploading, S.TasksRequested, S.Processing, S.Cancelled, S.Failed],
  [S.Uploading]: [S.TasksRequested, S.Cancelled, S.Failed],
  [S.TasksRequested]: [S.Processing, S.ReportReady, S.Cancelled, S.Failed],
  [S.Processing]: [S.ReportReady, S.Cancelled, S.Failed],
  [S.ReportReady]: [S.Delivering, S.Cancelled, S.Failed],
  [S.Delivering]: [S.Completed, S.Failed],
  [S.Completed]: [S.ReportReady, S.Delivering],
  [S.Failed]: [
    S.Received,
    S.AwaitingImages,
    S.Ready,
    S.StudyCreated,
    S.Uploading,
    S.TasksRequested,
    S.Processing,
    S.Delivering,
    S.Cancelled,
  ],
  [S.Rejected]: [],
  [S.Cancelled]: [],
};

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return TRANSITIONS[from]?.includes(to) ?? false;
}

/**
 * `failed → report_ready`: Hemato.AI finished after all, and its report is taken up. Only for an order
 * that failed on the poll deadline: one cancelled, or failed for any other reason (Hemato.AI's own
 * failure, a refused image, a step that gave up), never moves on by itself.
 */
export function isLateReport(
  order: { status: OrderStatus; failureCode?: OrderFailureCode | null },
  to: OrderStatus = S.ReportReady,
): boolean {
  return order.status === S.Failed && order.failureCode === OrderFailureCode.PollDeadline && to === S.ReportReady;
}

/** Throws a Conflict DomainError when the order may not move to `to` (the table, or `isLateReport`). */
export function assertTransition(
  order: { status: OrderStatus; failureCode?: OrderFailureCode | null },
  to: OrderStatus,
): void {
  if (!canTransition(order.status, to) && !isLateReport(order, to)) {
    throw new DomainError(DomainErrorCode.Conflict, `Order cannot move from ${order.status} to ${to}`);
  }
}
