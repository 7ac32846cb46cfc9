import { Injectable } from '@nestjs/common';
import { DeliveryStatus, DeliveryTarget } from '@hemato/common';
import { DeliveryEntity, InboundMessageEntity, OrderEntity, ReportEntity } from '@hemato/persistence';
import { MessageSealer } from '@hemato/privacy';
import { DataSource, type EntityManager, type SelectQueryBuilder } from 'typeorm';
import type { OrderCaller } from './fhir-auth.guard';

/** The FHIR channel's reads and writes of orders, reports, deliveries and inbound messages. */
@Injectable()
export class FhirOrdersRepository {
  constructor(
    private readonly ds: DataSource,
    private readonly sealer: MessageSealer,
  ) {}

  transaction<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(fn);
  }

  get manager(): EntityManager {
    return this.ds.manager;
  }

  findByExternalKey(key: string): Promise<OrderEntity | null> {
    return this.ds.manager.findOne(OrderEntity, { where: { externalKey: key } });
  }

  /**
   * The caller's orders (every order for an EHR-wide caller) keyed by a FHIR identifier with this value,
   * whatever its system (`fhir:<system>|<value>`: the text after the first `|`), oldest first, at most
   * `limit`. Served by ix_orders_fhir_identifier_value (migration FhirIdentifierValueIndex1764330000000):
   * the expression and the LIKE predicate must stay exactly as the index has them. Other clients' orders
   * are filtered here, so they neither take up the limit nor count as matches.
   */
  identifierValueQuery(value: string, caller: OrderCaller, limit = 2): SelectQueryBuilder<OrderEntity> {
    const q = this.ds.manager
      .createQueryBuilder(OrderEntity, 'o')
      .where(`o.external_key LIKE 'fhir:%|%'`)
      .andWhere(`substr(o.external_key, strpos(o.external_key, '|') + 1) = :value`, { value });
    if (!caller.allOrders) q.andWhere('o.source_client = :client', { client: caller.id });
    return q.orderBy('o.created_at', 'ASC').limit(limit);
  }

  findByIdentifierValue(value: string, caller: OrderCaller, limit = 2): Promise<OrderEntity[]> {
    return this.identifierValueQuery(value, caller, limit).getMany();
  }

  findById(id: string): Promise<OrderEntity | null> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return Promise.resolve(null);
    return this.ds.manager.findOne(OrderEntity, { where: { id } });
  }

  /**
   * A search of the caller's orders: each group of `ids` and of ServiceRequest references `refs` must match
   * (AND), one of a group's values (OR). A reference is ours (`ServiceRequest/<order id>`, any channel) or the
   * EHR's (a FHIR order's ServiceRequest). `fhirOnly`: FHIR orders only (Tasks); `withReport`: only orders
   * with a report (DiagnosticReports). Oldest first (then by id), at most `limit` from `offset`, and how many
   * match in all.
   */
  async searchOrders(
    c: { ids: string[][]; refs: string[][]; fhirOnly: boolean; withReport: boolean },
    caller: OrderCaller,
    page: { offset: number; limit: number },
  ): Promise<{ orders: OrderEntity[]; total: number }> {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    const q = this.ds.manager.createQueryBuilder(OrderEntity, 'o').where('TRUE');
    let n = 0;
    for (const group of c.ids) {
      const ids = group.filter((id) => uuid.test(id));
      if (ids.length === 0) return { orders: [], total: 0 };
      q.andWhere(`o.id IN (:...ids${n++})`, { [`ids${n - 1}`]: ids });
    }
    for (const group of c.refs) {
      const alternatives = group.map((ref) => {
        const ours = /^(?:.*\/)?ServiceRequest\/([0-9a-f-]{36})$/i.exec(ref)?.[1];
        const k = n++;
        q.setParameter(`ref${k}`, ref);
        const theirs = `(o.source_channel = 'fhir' AND (o.details->'fhir'->>'serviceRequest' = :ref${k} OR o.details->'fhir'->>'serviceRequestAbsolute' = :ref${k}))`;
        if (!ours || !uuid.test(ours)) return theirs;
        q.setParameter(`ours${k}`, ours);
        return `(o.id = :ours${k} OR ${theirs})`;
      });
      q.andWhere(`(${alternatives.join(' OR ')})`);
    }
    if (c.fhirOnly) q.andWhere(`o.source_channel = 'fhir'`);
    if (c.withReport) q.andWhere('EXISTS (SELECT 1 FROM reports r WHERE r.order_id = o.id)');
    if (!caller.allOrders) q.andWhere('o.source_client = :client', { client: caller.id });
    if (page.limit === 0) return { orders: [], total: await q.getCount() };
    const [orders, total] = await q
      .orderBy('o.created_at', 'ASC')
      .addOrderBy('o.id', 'ASC')
      .skip(page.offset)
      .take(page.limit)
      .getManyAndCount();
    return { orders, total };
  }

  /** The statuses the order went through, oldest first (its status_changed events). */
  async statusHistory(orderId: string): Promise<Array<{ status: string; at: Date }>> {
    const rows: Array<{ to_status: string; at: Date }> = await this.ds.query(
      `SELECT to_status, at FROM order_events WHERE order_id = $1 AND to_status IS NOT NULL ORDER BY id`,
      [orderId],
    );
    return rows.map((r) => ({ status: r.to_status, at: new Date(r.at) }));
  }

  latestReport(orderId: string): Promise<ReportEntity | null> {
    return this.ds.manager.findOne(ReportEntity, { where: { orderId }, order: { version: 'DESC' } });
  }

  /** True when a FHIR delivery of the order's latest report was acknowledged by the EHR. */
  async fhirDelivered(orderId: string, reportId: string): Promise<boolean> {
    const n = await this.ds.manager.count(DeliveryEntity, {
      where: { orderId, reportId, target: DeliveryTarget.Fhir, status: DeliveryStatus.Acknowledged },
    });
    return n > 0;
  }

  /** Records a FHIR request as received (channel `fhir`), inside the caller's transaction. */
  async recordInbound(
    manager: EntityManager,
    m: { sender: string; controlId: string; type: string; raw: string; status: string; error?: string | null },
  ): Promise<string> {
    const row = await manager.save(
      manager.create(InboundMessageEntity, {
        channel: 'fhir',
        sender: m.sender,
        controlId: m.controlId,
        messageType: m.type,
        // The request body (a Patient, a transaction Bundle) is PHI: sealed at rest.
        raw: this.sealer.seal(m.raw),
        status: m.status,
        error: m.error ?? null,
      }),
    );
    return row.id;
  }
}
