/** The outcome of an admin action, shown to the user as is. */
export interface ActionOutcome {
  ok: boolean;
  message: string;
}

/** What the dashboard asks of the order lifecycle (implemented by `OrderActionsService` in @hemato/orders). */
export interface OrderActionsPort {
  retry(orderId: string, actor: string): Promise<ActionOutcome>;
  resend(orderId: string, actor: string): Promise<ActionOutcome>;
  cancel(orderId: string, actor: string, reason: string): Promise<ActionOutcome>;
  hold(orderId: string, actor: string, reason: string): Promise<ActionOutcome>;
  release(orderId: string, actor: string): Promise<ActionOutcome>;
  replayInbound(inboundMessageId: string, actor: string): Promise<ActionOutcome>;
}

/** Provider token for the {@link OrderActionsPort} the admin API calls. */
export const ORDER_ACTIONS = Symbol.for('hemato.order-actions');
