import { Injectable } from '@nestjs/common';
import { DeliveryStatus, DeliveryTarget, DomainError, JobName, OrderStatus, createLogger } from '@hemato/common';
import { DeliveryEntity, ImageFileEntity, InboundMessageEntity, OrderEntity, ReportEntity } from '@hemato/persistence';
import { MessageSealer } from '@hemato/privacy';
import { DataSource } from 'typeorm';
import { OrderHolds } from '../holds/order-holds.service';
import { LifecycleQueue } from '../lifecycle/lifecycle-queue';
import { canTransition } from '../lifecycle/order-state-machine';
import { OrderTransitions } from '../lifecycle/order-transitions.service';
import { RETRY_FROM } from '../lifecycle/step-failure.service';

const log = createLogger('order-actions');

export interface ActionResult {
  ok: boolean;
  message: string;
}

/** Re-processes a stored inbound message (registered by the channel that understands it). */
export type InboundReplayer = (message: InboundMessageEntity, actor: string) => Promise<ActionResult>;

/**
 * What staff can do to an order from the dashboard: retry the failed step, resend the result,
 * cancel, hold and release, replay the inbound message. Each answers in words, and each lands on the order's timeline.
 */
@Injectable()
export class OrderActionsService {
  private readonly replayers = new Map<
    string,
    { replay: InboundReplayer; accepts?: (message: InboundMessageEntity) => boolean }
  >();

  constructor(
    private readonly ds: DataSource,
    private readonly transitions: OrderTransitions,
    private readonly queue: LifecycleQueue,
    private readonly sealer: MessageSealer,
    private readonly holds: OrderHolds,
  ) {}

  /**
   * Channels register how to replay their inbound messages (HL7: through the same intake as MLLP); `accepts`
   * narrows it to some of the channel's messages (FHIR: the ServiceRequests the Subscription path refused).
   */
  registerReplayer(
    channel: string,
    replayer: InboundReplayer,
    accepts?: (message: InboundMessageEntity) => boolean,
  ): void {
    this.replayers.set(channel, { replay: replayer, accepts });
  }

  async retry(orderId: string, actor: string): Promise<ActionResult> {
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order) return { ok: false, message: 'Order not found' };
    if (order.status !== OrderStatus.Failed)
      return { ok: false, message: `Only a failed order can be retried (this one is ${order.status})` };
    const step = (order.failedStep ?? JobName.OrderStart) as JobName;
    let back = RETRY_FROM[step] ?? OrderStatus.Received;
    if (back === OrderStatus.Uploading && !order.hematoStudyId) back = OrderStatus.Ready;
    if (step === JobName.OrderStart) {
      await this.ds.manager.update(ImageFileEntity, { orderId, status: 'failed' }, { status: 'pending', error: null });
    }
    if (step === JobName.DeliverHl7 || step === JobName.DeliverFhir) return this.redeliver(order, actor, 'retry');
    const moved = await this.transitions.move(orderId, back, {
      actor,
      expectFrom: [OrderStatus.Failed],
      patch: { failureReason: null, failedStep: null },
      detail: { action: 'retry', step },
      deadlineMs: 5 * 60_000,
    });
    const job =
      step === JobName.OrderRequestTasks || step === JobName.OrderFetchReport || step === JobName.OrderCheckStatus
        ? step
        : null;
    await this.queue.step(job ?? (back === OrderStatus.Ready ? JobName.OrderCreateStudy : step), moved, {
      tag: `retry${Date.now()}`,
      poll: 1,
    });
    log.info({ orderId, step, actor }, 'retry requested');
    return { ok: true, message: `Retrying ${step}: the order is ${back} again` };
  }

  /** Sends the latest report again to every target (a new attempt on each delivery). */
  async resend(orderId: string, actor: string): Promise<ActionResult> {
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order) return { ok: false, message: 'Order not found' };
    if (
      order.status !== OrderStatus.Completed &&
      !(order.status === OrderStatus.Failed && order.failedStep?.startsWith('deliveries.'))
    ) {
      return {
        ok: false,
        message: `A result can be resent once delivered or when its delivery failed (this order is ${order.status})`,
      };
    }
    return this.redeliver(order, actor, 'resend');
  }

  async cancel(orderId: string, actor: string, reason: string): Promise<ActionResult> {
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order) return { ok: false, message: 'Order not found' };
    if (!canTransition(order.status, OrderStatus.Cancelled))
      return { ok: false, message: `An order that is ${order.status} cannot be cancelled` };
    await this.transitions.move(orderId, OrderStatus.Cancelled, { actor, detail: { action: 'cancel', reason } });
    return { ok: true, message: 'Order cancelled: no further step will run' };
  }

  async hold(orderId: string, actor: string, reason: string): Promise<ActionResult> {
    const outcome = await this.holds.hold(orderId, { actor, reason });
    return { ok: outcome.result === 'held', message: outcome.message };
  }

  async release(orderId: string, actor: string): Promise<ActionResult> {
    const outcome = await this.holds.release(orderId, { actor, reason: 'released from the dashboard' });
    return { ok: outcome.result === 'released', message: outcome.message };
  }

  async replayInbound(inboundMessageId: string, actor: string): Promise<ActionResult> {
    const message = await this.ds.manager.findOne(InboundMessageEntity, { where: { id: inboundMessageId } });
    if (!message) return { ok: false, message: 'Inbound message not found' };
    if (message.purgedAt)
      return {
        ok: false,
        message: 'This message was erased under the retention policy (RETENTION_DAYS): nothing to replay',
      };
    const replayer = this.replayers.get(message.channel);
    if (!replayer || (replayer.accepts && !replayer.accepts(message))) {
      // A FHIR request a client made was answered (201 or an OperationOutcome) while it waited: it sends it again.
      // (Those the Subscription path read from the EHR and refused were answered to no one: they are replayed.)
      const why =
        message.channel === 'fhir'
          ? 'a FHIR request is answered when it is made; the EHR sends it again once the cause is fixed'
          : `no replay is registered for ${message.channel}`;
      return { ok: false, message: `This message cannot be replayed: ${why}` };
    }
    try {
      // Replayers read the message as received: its body and ACK are sealed at rest.
      const opened = Object.assign(new InboundMessageEntity(), message, {
        raw: this.sealer.open(message.raw),
        ack: this.sealer.openNullable(message.ack),
      });
      return await replayer.replay(opened, actor);
    } catch (err) {
      return { ok: false, message: err instanceof DomainError || err instanceof Error ? err.message : String(err) };
    }
  }

  private async redeliver(order: OrderEntity, actor: string, action: 'retry' | 'resend'): Promise<ActionResult> {
    const report = await this.ds.manager.findOne(ReportEntity, {
      where: { orderId: order.id },
      order: { version: 'DESC' },
    });
    if (!report) return { ok: false, message: 'The order has no report to send' };
    const deliveries = await this.ds.manager.find(DeliveryEntity, { where: { reportId: report.id } });
    if (deliveries.length === 0) return { ok: false, message: 'The order has no delivery target' };
    const again = action === 'resend' ? deliveries : deliveries.filter((d) => d.status !== DeliveryStatus.Acknowledged);
    await this.ds.transaction(async (m) => {
      for (const d of again)
        await m.update(DeliveryEntity, { id: d.id }, { status: DeliveryStatus.Pending, error: null });
      await this.transitions.move(order.id, OrderStatus.Delivering, {
        actor,
        manager: m,
        expectFrom: [OrderStatus.Completed, OrderStatus.Failed],
        patch: { failureReason: null, failedStep: null },
        detail: { action, version: report.version, targets: again.map((d) => d.target) },
        deadlineMs: 5 * 60_000,
      });
    });
    for (const d of again) {
      await this.queue.delivery(
        d.target === DeliveryTarget.Hl7 ? JobName.DeliverHl7 : JobName.DeliverFhir,
        order.id,
        d.id,
      );
    }
    return {
      ok: true,
      message: `${action === 'resend' ? 'Resending' : 'Retrying'} report v${report.version} to ${again.map((d) => d.target).join(' and ')}`,
    };
  }
}
