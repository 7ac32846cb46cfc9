import { DomainError, OrderFailureCode, OrderStatus } from '@hemato/common';
import { assertTransition, isLateReport } from './order-state-machine';

describe('a report Hemato.AI finishes after the order failed', () => {
  const deadline = { status: OrderStatus.Failed, failureCode: OrderFailureCode.PollDeadline };

  it('is taken up (failed → report_ready) only when the order failed on the poll deadline', () => {
    expect(isLateReport(deadline)).toBe(true);
    expect(() => assertTransition(deadline, OrderStatus.ReportReady)).not.toThrow();
    // Failed for another reason (Hemato.AI's own failure, a refused image, a step that gave up): no code.
    expect(isLateReport({ status: OrderStatus.Failed, failureCode: null })).toBe(false);
    expect(() => assertTransition({ status: OrderStatus.Failed, failureCode: null }, OrderStatus.ReportReady)).toThrow(
      DomainError,
    );
  });

  it('never moves a cancelled order, and opens no other move for a deadline failure', () => {
    const cancelled = { status: OrderStatus.Cancelled, failureCode: OrderFailureCode.PollDeadline };
    expect(isLateReport(cancelled)).toBe(false);
    expect(() => assertTransition(cancelled, OrderStatus.ReportReady)).toThrow('cannot move from cancelled');
    expect(() => assertTransition(deadline, OrderStatus.Completed)).toThrow('cannot move from failed to completed');
    expect(() => assertTransition(deadline, OrderStatus.Processing)).not.toThrow();
  });
});
