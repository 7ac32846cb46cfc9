import { Injectable } from '@nestjs/common';
import { RETENTION_AUDIT_ACTION, RETENTION_AUDIT_TARGET } from '@hemato/orders';
import { MessageSealer } from '@hemato/privacy';
import { DataSource } from 'typeorm';
import { SUBSCRIPTION_SENDER } from '../../fhir/subscription-notification.service';

export interface OrderListFilter {
  statuses?: string[];
  channels?: string[];
  from?: Date;
  to?: Date;
  /** Placer or filler order number, or patient proxy id: exact or prefix. */
  q?: string;
}

export interface OrderListRow {
  id: string;
  fillerOrderNumber: string;
  placerOrderNumber: string | null;
  status: string;
  sourceChannel: string;
  proxyId: string | null;
  testCode: string | null;
  testDisplay: string | null;
  hematoProgress: number | null;
  failedStep: string | null;
  failureReason: string | null;
  createdAt: string;
  statusChangedAt: string;
}

export interface Cursor {
  /** created_at as PostgreSQL prints it (microseconds kept: a JS Date would drop them and skip rows). */
  createdAt: string;
  id: string;
}

function likePrefix(q: string): string {
  return q.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
}

/** The dashboard's reads of orders. Every query here is shaped for an index (see the admin-dashboard migration). */
@Injectable()
export class AdminOrdersRepository {
  constructor(
    private readonly ds: DataSource,
    private readonly sealer: MessageSealer,
  ) {}

  private async where(f: OrderListFilter, params: unknown[]): Promise<string[] | null> {
    const conds: string[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (f.statuses?.length) conds.push(`o.status = ANY(${p(f.statuses)}::text[])`);
    if (f.channels?.length) conds.push(`o.source_channel = ANY(${p(f.channels)}::text[])`);
    if (f.from) conds.push(`o.created_at >= ${p(f.from)}`);
    if (f.to) conds.push(`o.created_at < ${p(f.to)}`);
    if (f.q) {
      // Proxy ids first, on their own index, so the order search is one BitmapOr over three indexes.
      const proxies: Array<{ id: string }> = await this.ds.query(
        `SELECT id FROM patient_proxies WHERE proxy_id LIKE $1 ORDER BY proxy_id LIMIT 100`,
        [likePrefix(f.q)],
      );
      const like = p(likePrefix(f.q));
      const alts = [`o.placer_order_number LIKE ${like}`, `o.filler_order_number LIKE ${like}`];
      if (proxies.length) alts.push(`o.patient_proxy_id = ANY(${p(proxies.map((r) => r.id))}::uuid[])`);
      conds.push(`(${alts.join(' OR ')})`);
    }
    return conds;
  }

  /** One page, newest first, by keyset (`cursor` = the last row of the previous page). */
  async list(
    f: OrderListFilter,
    limit: number,
    cursor?: Cursor,
  ): Promise<{ rows: OrderListRow[]; next: Cursor | null }> {
    const params: unknown[] = [];
    const conds = (await this.where(f, params)) ?? [];
    if (cursor) {
      params.push(cursor.createdAt, cursor.id);
      conds.push(`(o.created_at, o.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(limit + 1);
    const rows: Array<OrderListRow & { cursor_at: string }> = await this.ds.query(
      `SELECT o.id, o.filler_order_number AS "fillerOrderNumber", o.placer_order_number AS "placerOrderNumber",
              o.status, o.source_channel AS "sourceChannel", pp.proxy_id AS "proxyId",
              o.test_code AS "testCode", o.test_display AS "testDisplay", o.hemato_progress AS "hematoProgress",
              o.failed_step AS "failedStep", o.failure_reason AS "failureReason",
              o.created_at AS "createdAt", o.status_changed_at AS "statusChangedAt",
              o.created_at::text AS cursor_at
         FROM orders o LEFT JOIN patient_proxies pp ON pp.id = o.patient_proxy_id
        ${conds.length ? 'WHERE ' + conds.join(' AND ') : ''}
        ORDER BY o.created_at DESC, o.id DESC
        LIMIT $${params.length}`,
      params,
    );
    const more = rows.length > limit;
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      rows: page.map(({ cursor_at: _c, ...r }) => r),
      next: more && last ? { createdAt: last.cursor_at, id: last.id } : null,
    };
  }

  /** Orders per status under the same filters (except status itself): the chips above the table. */
  async countByStatus(f: OrderListFilter): Promise<Record<string, number>> {
    const params: unknown[] = [];
    const conds = (await this.where({ ...f, statuses: undefined }, params)) ?? [];
    const rows: Array<{ status: string; n: string }> = await this.ds.query(
      `SELECT o.status, count(*) AS n FROM orders o ${conds.length ? 'WHERE ' + conds.join(' AND ') : ''} GROUP BY o.status`,
      params,
    );
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  async order(id: string): Promise<Record<string, any> | null> {
    const rows: Array<Record<string, any>> = await this.ds.query(
      `SELECT o.*, pp.proxy_id FROM orders o LEFT JOIN patient_proxies pp ON pp.id = o.patient_proxy_id WHERE o.id = $1`,
      [id],
    );
    return rows[0] ?? null;
  }

  timeline(orderId: string): Promise<Array<Record<string, any>>> {
    return this.ds.query(
      `SELECT id, at, type, from_status, to_status, actor, detail FROM order_events WHERE order_id = $1 ORDER BY id`,
      [orderId],
    );
  }

  images(orderId: string): Promise<Array<Record<string, any>>> {
    return this.ds.query(
      `SELECT id, name, source, status, content_hash, size_bytes, media_type, storage_key, hemato_file_id, error, created_at
         FROM image_files WHERE order_id = $1 ORDER BY created_at, name`,
      [orderId],
    );
  }

  async image(
    orderId: string,
    imageId: string,
  ): Promise<{ storage_key: string | null; media_type: string | null } | null> {
    const rows: Array<{ storage_key: string | null; media_type: string | null }> = await this.ds.query(
      `SELECT storage_key, media_type FROM image_files WHERE order_id = $1 AND id = $2`,
      [orderId, imageId],
    );
    return rows[0] ?? null;
  }

  reports(orderId: string): Promise<Array<Record<string, any>>> {
    return this.ds.query(
      `SELECT id, version, hemato_study_id, raw, fetched_at FROM reports WHERE order_id = $1 ORDER BY version DESC`,
      [orderId],
    );
  }

  deliveries(orderId: string): Promise<Array<Record<string, any>>> {
    return this.ds.query(
      `SELECT d.id, d.report_id, r.version AS report_version, d.target, d.status, d.attempts, d.last_attempt_at,
              d.outcome, d.response, d.control_id, d.destination, d.error, d.created_at, d.updated_at
         FROM deliveries d JOIN reports r ON r.id = d.report_id WHERE d.order_id = $1 ORDER BY d.created_at, d.target`,
      [orderId],
    );
  }

  /** An inbound message with its body and ACK in clear (both are sealed at rest): mask before showing. */
  async inbound(id: string): Promise<Record<string, any> | null> {
    const rows: Array<Record<string, any>> = await this.ds.query(
      `SELECT id, channel, sender, control_id, message_type, raw, status, ack_code, ack, error, received_at, purged_at
         FROM inbound_messages WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      ...row,
      raw: this.sealer.open(row.raw as string),
      ack: this.sealer.openNullable(row.ack as string | null),
    };
  }

  /**
   * Inbound messages with this control id (MSH-10, a FHIR request's id), newest first: no body, no ACK. For
   * `ServiceRequest/<id>`, also every version of it the Subscription path kept (`ServiceRequest/<id>/_history/…`,
   * `…@<lastUpdated>`, `…#<digest>`): staff know the ServiceRequest, not the version the EHR was at.
   */
  findInbound(controlId: string, limit: number): Promise<Array<Record<string, any>>> {
    // A FHIR id has no LIKE wildcard (`[A-Za-z0-9-.]`): the prefix patterns match it literally.
    const serviceRequest = /^ServiceRequest\/[A-Za-z0-9\-.]{1,64}$/.test(controlId);
    return this.ds.query(
      `SELECT id, channel, sender, control_id, message_type, status, ack_code, error, received_at
         FROM inbound_messages
        WHERE control_id = $1
           OR ($3 AND sender = $4
               AND (control_id LIKE $1 || '/\\_history/%' OR control_id LIKE $1 || '@%' OR control_id LIKE $1 || '#%'))
        ORDER BY received_at DESC LIMIT $2`,
      [controlId, limit, serviceRequest, SUBSCRIPTION_SENDER],
    );
  }

  /** The latest failures, for the health page. */
  /** The latest erasure by retention (from the audit log): when, and how much. */
  async lastRetentionPurge(): Promise<{ at: string; detail: Record<string, number> } | null> {
    const rows: Array<{ at: Date; detail: Record<string, number> }> = await this.ds.query(
      // Through ix_audit_log_target (one row per sweep that erased something), not a walk of the whole log.
      `SELECT at, detail FROM audit_log
        WHERE target_type = $1 AND target_id = $2 AND action = $3 ORDER BY id DESC LIMIT 1`,
      [RETENTION_AUDIT_TARGET.type, RETENTION_AUDIT_TARGET.id, RETENTION_AUDIT_ACTION],
    );
    return rows[0] ? { at: rows[0].at.toISOString(), detail: rows[0].detail } : null;
  }

  async lastErrors(limit: number) {
    const [orders, deliveries, inbound] = await Promise.all([
      this.ds.query(
        `SELECT id, filler_order_number, failed_step, failure_reason, status_changed_at
           FROM orders WHERE status = 'failed' ORDER BY status_changed_at DESC LIMIT $1`,
        [limit],
      ),
      this.ds.query(
        `SELECT d.id, d.order_id, o.filler_order_number, d.target, d.attempts, d.outcome, d.error, d.updated_at
           FROM deliveries d JOIN orders o ON o.id = d.order_id
          WHERE d.status = 'failed' ORDER BY d.updated_at DESC LIMIT $1`,
        [limit],
      ),
      this.ds.query(
        `SELECT id, channel, sender, control_id, message_type, status, ack_code, error, received_at
           FROM inbound_messages WHERE status <> 'accepted' ORDER BY received_at DESC LIMIT $1`,
        [limit],
      ),
    ]);
    return { orders, deliveries, inbound } as {
      orders: Array<Record<string, any>>;
      deliveries: Array<Record<string, any>>;
      inbound: Array<Record<string, any>>;
    };
  }
}
