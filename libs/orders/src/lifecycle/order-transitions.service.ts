import { Injectable } from '@nestjs/common';
import { DomainError, DomainErrorCode, OrderStatus, createLogger } from '@hemato/common';
import { OrderEntity } from '@hemato/persistence';
import { DataSource, type EntityManager } from 'typeorm';
import { assertTransition } from './order-state-machine';

const log = createLogger('order-transitions');

export interface TimelineEntry {
  orderId: string;
  type: string;
  actor: string;
  fromStatus?: string | null;
  toStatus?: string | null;
  detail?: Record<string, unknown>;
}

/** Appends one line to an order's timeline (append-only table). */
export async function appendEvent(manager: EntityManager, e: TimelineEntry): Promise<void> {
  await manager.query(
    `INSERT INTO order_events (order_id, type, actor, from_status, to_status, detail) VALUES ($1, $2, $3, $4, $5, $6)`,
    [e.orderId, e.type, e.actor, e.fromStatus ?? null, e.toStatus ?? null, JSON.stringify(e.detail ?? {})],
  );
}

export interface MoveOptions {
  actor: string;
  detail?: Record<string, unknown>;
  /** Only move if the order is in one of these states now (else: Conflict, nothing changes). */
  expectFrom?: readonly OrderStatus[];
  /** Columns to set in the same update. */
  patch?: Partial<Omit<OrderEntity, 'id' | 'status' | 'version'>>;
  /** Deadline for leaving the new state (the reconciler acts after it). */
  deadlineMs?: number | null;
  /** Run inside the caller's transaction. */
  manager?: EntityManager;
}

/**
 * Moves orders between states: row locked, transition checked against the one table, status and
 * timeline written in one transaction. Every state change in the system goes through here.
 */
@Injectable()
export class OrderTransitions {
  constructor(private readonly ds: DataSource) {}

  async move(orderId: string, to: OrderStatus, opts: MoveOptions): Promise<OrderEntity> {
    const run = async (m: EntityManager) => {
      const order = await m.findOne(OrderEntity, { where: { id: orderId }, lock: { mode: 'pessimistic_write' } });
      if (!order) throw new DomainError(DomainErrorCode.NotFound, `Order ${orderId} not found`);
      if (opts.expectFrom && !opts.expectFrom.includes(order.status)) {
        throw new DomainError(
          DomainErrorCode.Conflict,
          `Order is ${order.status}, expected ${opts.expectFrom.join('|')}`,
        );
      }
      const from = order.status;
      assertTransition(order, to);
      // A failure code describes the failure it came with: a later failure sets its own, any other move clears it.
      const failureCode = to === OrderStatus.Failed ? (opts.patch?.failureCode ?? null) : null;
      const deadline =
        opts.deadlineMs === undefined || opts.deadlineMs === null ? null : new Date(Date.now() + opts.deadlineMs);
      await m.update(
        OrderEntity,
        { id: orderId },
        {
          ...opts.patch,
          failureCode,
          status: to,
          statusChangedAt: new Date(),
          stateDeadlineAt: deadline,
          version: order.version + 1,
        },
      );
      await appendEvent(m, {
        orderId,
        type: 'status_changed',
        fromStatus: from,
        toStatus: to,
        actor: opts.actor,
        detail: opts.detail,
      });
      log.info({ orderId, from, to, actor: opts.actor }, 'order status changed');
      return {
        ...order,
        ...opts.patch,
        failureCode,
        status: to,
        version: order.version + 1,
        stateDeadlineAt: deadline,
      } as OrderEntity;
    };
    return opts.manager ? run(opts.manager) : this.ds.transaction(run);
  }

  /** Adds a line to the timeline without changing the state. */
  async note(
    orderId: string,
    type: string,
    actor: string,
    detail: Record<string, unknown> = {},
    manager?: EntityManager,
  ) {
    await appendEvent(manager ?? this.ds.manager, { orderId, type, actor, detail });
  }
}
