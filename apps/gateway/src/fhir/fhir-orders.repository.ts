import { Injectable } from '@nestjs/common';
import { DeliveryStatus, DeliveryTarget } from '@hemato/common';
import { DeliveryEntity, InboundMessageEntity, OrderEntity, ReportEntity } from '@hemato/persistence';
import { MessageSealer } from '@hemato/privacy';
import { DataSource, type EntityManager, type SelectQueryBuilder } from 'typeorm';
import type { SearchCursor } from '@hemato/fhir';
import type { OrderCaller } from './fhir-auth.guard';

/** A row's place in search order: its created_at (as PostgreSQL prints it, to the microsecond) and id. */
export type SearchKey = Pick<SearchCursor, 'at' | 'id'>;

/** A page of a search, the keys of its first and last rows, and whether matches lie before or after it. */
export interface SearchPage {
  orders: OrderEntity[];
  total: number;
  first?: SearchKey;
  last?: SearchKey;
  hasBefore: boolean;
  hasAfter: boolean;
}

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
   * (AND), one of a group's values (OR). A reference (or a bare id, taken as `ServiceRequest/<id>`) is ours (`ServiceRequest/<order id>`, any channel) or the
   * EHR's (a FHIR order's ServiceRequest). `fhirOnly`: FHIR orders only (Tasks); `withReport`: only orders
   * with a report (DiagnosticReports). Oldest first (then by id): at most `limit` from `offset`, or after or
   * before a cursor's row (keyset: matches that appear or vanish meanwhile shift nothing), with the sort
   * keys of the page's first and last rows, whether matches lie beyond either, and how many match in all.
   */
  async searchOrders(
    c: { ids: string[][]; refs: string[][]; fhirOnly: boolean; withReport: boolean },
    caller: OrderCaller,
    page: { limit: number; offset?: number; cursor?: SearchCursor },
  ): Promise<SearchPage> {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
    const none: SearchPage = { orders: [], total: 0, hasBefore: false, hasAfter: false };
    const q = this.ds.manager.createQueryBuilder(OrderEntity, 'o').where('TRUE');
    let n = 0;
    for (const group of c.ids) {
      const ids = group.filter((id) => uuid.test(id));
      if (ids.length === 0) return none;
      q.andWhere(`o.id IN (:...ids${n++})`, { [`ids${n - 1}`]: ids });
    }
    for (const group of c.refs) {
      const alternatives = group.map((value) => {
        // A bare id is a local reference to the only type focus/based-on name here (search.html: [parameter]=[id]).
        const ref = value.includes('/') ? value : `ServiceRequest/${value}`;
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
    const total = await q.clone().getCount();
    if (page.limit === 0) return { ...none, total };

    // (created_at, id) compared as a row, as ix_orders_created_id orders them; the key as text keeps microseconds.
    const beyond = (op: '>' | '<', key: SearchKey, name: string) =>
      q.clone().andWhere(`(o.created_at, o.id) ${op} (CAST(:${name}At AS timestamptz), CAST(:${name}Id AS uuid))`, {
        [`${name}At`]: key.at,
        [`${name}Id`]: key.id,
      });
    const backwards = page.cursor?.direction === 'before';
    const pageQuery = page.cursor ? beyond(backwards ? '<' : '>', page.cursor, 'cursor') : q.clone();
    const dir = backwards ? 'DESC' : 'ASC';
    // One row more than the page tells whether there are more in the direction of travel.
    const { entities, raw } = await pageQuery
      .addSelect(`to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`, 'key_at')
      .orderBy('o.created_at', dir)
      .addOrderBy('o.id', dir)
      .offset(page.cursor ? 0 : (page.offset ?? 0))
      .limit(page.limit + 1)
      .getRawAndEntities<{ key_at: string }>();
    const more = entities.length > page.limit;
    const rows = entities
      .slice(0, page.limit)
      .map((order, i) => ({ order, key: { at: raw[i]!.key_at, id: order.id } }));
    if (backwards) rows.reverse();
    const first = rows[0]?.key;
    const last = rows.at(-1)?.key;
    const exists = async (op: '>' | '<', key: SearchKey | undefined) =>
      !!key && (await beyond(op, key, 'edge').select('1').limit(1).getRawOne()) !== undefined;
    return {
      orders: rows.map((r) => r.order),
      total,
      first,
      last,
      hasBefore: backwards ? more : !page.cursor && !page.offset ? false : await exists('<', first),
      hasAfter: backwards ? await exists('>', last) : more,
    };
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

  /**
   * Keeps a ServiceRequest the Subscription path refused (channel `fhir`, status `rejected`), once per
   * `(sender, controlId)`: a catch-up meeting the same version again finds it kept and only refreshes the
   * error (today's settings may refuse it for another reason). A row accepted meanwhile (replayed) is left as is.
   */
  async recordRefused(m: {
    sender: string;
    controlId: string;
    type: string;
    raw: string;
    error: string;
  }): Promise<void> {
    await this.ds.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, message_type, raw, status, error)
       VALUES ('fhir', $1, $2, $3, $4, 'rejected', $5)
       ON CONFLICT (sender, control_id) DO UPDATE SET error = EXCLUDED.error
        WHERE inbound_messages.status = 'rejected'`,
      // The ServiceRequest names its patient (and may contain it): sealed at rest like every inbound body.
      [m.sender, m.controlId, m.type, this.sealer.seal(m.raw), m.error],
    );
  }

  /** A replayed refused message refused again: the new error (a row accepted meanwhile is left as is). */
  async refusedAgain(inboundMessageId: string, error: string): Promise<void> {
    await this.ds.query(`UPDATE inbound_messages SET error = $2 WHERE id = $1 AND status = 'rejected'`, [
      inboundMessageId,
      error,
    ]);
  }
}
