import { DomainError, DomainErrorCode, OrderStatus } from '@hemato/common';

const S = OrderStatus;

/**
 * Every allowed move of an order, in one table. Anything not listed is refused by `assertTransition`,
 * whichever handler asks. `failed` can go back to the step that failed (retry); `completed` can go
 * back to `report_ready` (a revision) or `delivering` (a resend).
 */
export const TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  [S.Received]: [S.AwaitingImages, S.Ready, S.Rejected, S.Cancelled, S.Failed],
  [S.AwaitingImages]: [S.Ready, S.Cancelled, S.Failed],
  [S.Ready]: [S.StudyCreated, S.Cancelled, S.Failed],
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
    S.ReportReady,
    S.Delivering,
    S.Cancelled,
  ],
  [S.Rejected]: [],
  [S.Cancelled]: [],
};

export function canTransition(from: OrderStatus, to: OrderStatus): boolean {
  return TRANSITIONS[from]?.includes(to) ?? false;
}

/** Throws a Conflict DomainError when `from → to` is not an allowed move. */
export function assertTransition(from: OrderStatus, to: OrderStatus): void {
  if (!canTransition(from, to)) {
    throw new DomainError(DomainErrorCode.Conflict, `Order cannot move from ${from} to ${to}`);
  }
}
