import { Injectable } from '@nestjs/common';
import { DeliveryStatus, JobName, OrderStatus, createLogger } from '@hemato/common';
import { DeliveryEntity, OrderEntity, ReportEntity } from '@hemato/persistence';
import { DataSource, In } from 'typeorm';
import { currentDelivery } from './delivery-supersession';
import { OrderTransitions } from './order-transitions.service';

const log = createLogger('delivery-completion');

/**
 * Closes an order once the deliveries of its latest report are settled: all acknowledged →
 * `completed`; one failed for good → `failed` at the delivery step (an admin can resend).
 */
@Injectable()
export class DeliveryCompletion {
  constructor(
    private readonly ds: DataSource,
    private readonly transitions: OrderTransitions,
  ) {}

  async check(orderId: string): Promise<OrderStatus | null> {
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order || order.status !== OrderStatus.Delivering) return order?.status ?? null;
    const report = await this.ds.manager.findOne(ReportEntity, { where: { orderId }, order: { version: 'DESC' } });
    if (!report) return order.status;
    const deliveries = await this.ds.manager.find(DeliveryEntity, { where: { reportId: report.id } });
    if (deliveries.length === 0) return order.status;
    const failed = deliveries.find((d) => d.status === DeliveryStatus.Failed);
    if (failed) {
      const reason = `Delivery to ${failed.target} failed: ${failed.error ?? failed.outcome ?? 'no acknowledgement'}`;
      await this.transitions.move(orderId, OrderStatus.Failed, {
        actor: 'worker',
        expectFrom: [OrderStatus.Delivering],
        patch: {
          failureReason: reason,
          failedStep: failed.target === 'hl7' ? JobName.DeliverHl7 : JobName.DeliverFhir,
        },
        detail: { step: 'deliver', target: failed.target, reason },
      });
      log.warn({ orderId, deliveryId: failed.id }, 'delivery failed');
      return OrderStatus.Failed;
    }
    if (deliveries.every((d) => d.status === DeliveryStatus.Acknowledged)) {
      await this.transitions.move(orderId, OrderStatus.Completed, {
        actor: 'worker',
        expectFrom: [OrderStatus.Delivering],
        detail: { version: report.version, targets: deliveries.map((d) => `${d.target}:${d.outcome ?? 'ok'}`) },
      });
      return OrderStatus.Completed;
    }
    return order.status;
  }

  /**
   * A delivery job gave up (its attempts are spent): the row it was sending says so (that of the
   * newest report version, which the job switches to), then the order is settled.
   */
  async markExhausted(deliveryId: string, reason: string): Promise<void> {
    const asked = await this.ds.manager.findOne(DeliveryEntity, { where: { id: deliveryId } });
    const current = asked ? await currentDelivery(this.ds.manager, asked) : null;
    if (!current) return;
    await this.ds.manager.update(
      DeliveryEntity,
      { id: current.id, status: In([DeliveryStatus.Pending, DeliveryStatus.Sending]) },
      { status: DeliveryStatus.Failed, error: reason },
    );
  }
}
