import { Injectable } from '@nestjs/common';
import { DomainError, DomainErrorCode, JobName, OrderStatus, createLogger } from '@hemato/common';
import { OrderEntity } from '@hemato/persistence';
import { DataSource, type EntityManager } from 'typeorm';
import { LifecycleQueue } from '../lifecycle/lifecycle-queue';
import { OrderTransitions } from '../lifecycle/order-transitions.service';

const log = createLogger('order-holds');

/**
 * Where a hold can still be placed: nothing of the order is at Hemato.AI yet. Once a study exists there, the
 * analysis cannot be paused (only cancelled).
 */
export const HOLDABLE: readonly OrderStatus[] = [OrderStatus.Received, OrderStatus.AwaitingImages, OrderStatus.Ready];

/** What a hold or release ends in; `message` says it in words (for an ACK's ERR, an OperationOutcome, the dashboard). */
export interface HoldOutcome {
  result: 'held' | 'already_held' | 'too_late' | 'released' | 'not_held';
  order: OrderEntity;
  message: string;
}

export interface HoldOptions {
  /** Who asked (`hl7:<sender>`, `fhir:<client>`, `admin:<email>`). */
  actor: string;
  /** Why, as the asker put it (kept on the timeline). */
  reason: string;
  /** The caller's transaction (intake): then the caller starts the released order with `resume` after commit. */
  manager?: EntityManager;
}

/**
 * Holding an order and releasing it: FHIR ServiceRequest `on-hold` / `active` again, HL7 ORC-1 `HD` / `RL`, the
 * dashboard. A held order runs no step (each step finds it not in the state it moves on from) and is not
 * re-driven by the reconciler; it still takes images. Released, it goes back to `received`: the first step
 * fetches what is still pending and moves on as far as its images allow (`ready` when complete).
 */
@Injectable()
export class OrderHolds {
  constructor(
    private readonly ds: DataSource,
    private readonly transitions: OrderTransitions,
    private readonly queue: LifecycleQueue,
  ) {}

  async hold(orderId: string, opts: HoldOptions): Promise<HoldOutcome> {
    return this.locked(orderId, opts.manager, async (m, order) => {
      if (order.status === OrderStatus.OnHold) {
        return { result: 'already_held', order, message: 'The order is already on hold' };
      }
      if (!HOLDABLE.includes(order.status)) {
        return { result: 'too_late', order, message: tooLateToHold(order.status) };
      }
      // The study is being created right now (the create-study step holds its claim to ask): it will be at
      // Hemato.AI in a moment, and in workflow 2 its analysis starts with it.
      const asking = (order.details?.hematoAsking as Record<string, { until?: string }> | undefined)?.create_study;
      if (asking?.until && Date.parse(asking.until) > Date.now()) {
        return {
          result: 'too_late',
          order,
          message: 'The order is being sent to Hemato.AI right now: it cannot be held',
        };
      }
      const moved = await this.transitions.move(orderId, OrderStatus.OnHold, {
        actor: opts.actor,
        manager: m,
        expectFrom: HOLDABLE,
        detail: { action: 'hold', reason: opts.reason, heldAt: order.status },
        deadlineMs: null,
      });
      log.info({ orderId, actor: opts.actor }, 'order held');
      return { result: 'held', order: moved, message: 'Order on hold: no step runs until it is released' };
    });
  }

  /** Releases a held order; without `opts.manager` it also starts it again (else: `resume` after commit). */
  async release(orderId: string, opts: HoldOptions): Promise<HoldOutcome> {
    const outcome = await this.locked(orderId, opts.manager, async (m, order): Promise<HoldOutcome> => {
      if (order.status !== OrderStatus.OnHold) {
        return { result: 'not_held', order, message: `The order is not on hold (it is ${order.status})` };
      }
      const moved = await this.transitions.move(orderId, OrderStatus.Received, {
        actor: opts.actor,
        manager: m,
        expectFrom: [OrderStatus.OnHold],
        detail: { action: 'release', reason: opts.reason },
      });
      log.info({ orderId, actor: opts.actor }, 'order released');
      return { result: 'released', order: moved, message: 'Order released: it goes on from its first step' };
    });
    if (outcome.result === 'released' && !opts.manager) await this.resume(outcome.order);
    return outcome;
  }

  /**
   * Starts a released order (after the release committed). If this is lost, the order is `received` and the
   * reconciler starts it once it is stale.
   */
  async resume(order: { id: string; version: number }): Promise<void> {
    await this.queue.step(JobName.OrderStart, order);
  }

  private async locked(
    orderId: string,
    manager: EntityManager | undefined,
    fn: (m: EntityManager, order: OrderEntity) => Promise<HoldOutcome>,
  ): Promise<HoldOutcome> {
    const run = async (m: EntityManager) => {
      const order = await m.findOne(OrderEntity, { where: { id: orderId }, lock: { mode: 'pessimistic_write' } });
      if (!order) throw new DomainError(DomainErrorCode.NotFound, `Order ${orderId} not found`);
      return fn(m, order);
    };
    return manager ? run(manager) : this.ds.transaction(run);
  }
}

/** Why an order in `status` cannot be held any more. */
export function tooLateToHold(status: OrderStatus): string {
  if (status === OrderStatus.Cancelled || status === OrderStatus.Rejected || status === OrderStatus.Completed) {
    return `The order is ${status}: there is nothing to hold`;
  }
  if (status === OrderStatus.Failed) return 'The order has failed: there is nothing running to hold';
  return `The order is ${status}: its study is already at Hemato.AI and cannot be paused (it can be cancelled)`;
}
