import { Inject, Injectable, NotFoundException } from '@nestjs/common';
import { FILE_STORE, type FileStore } from '@hemato/orders';
import { PatientIdentityReader, type PatientIdentity } from '@hemato/privacy';
import type { Readable } from 'node:stream';
import { DataSource } from 'typeorm';
import { AdminOrdersRepository, type Cursor, type OrderListFilter, type OrderListRow } from './admin-orders.repository';
import { forDisplay, maskedPatient, maskInbound, type MaskedPatient } from './phi-mask';

export interface HeatSpot {
  finding: string;
  x: number;
  y: number;
  r: number;
}

export interface OrderDetail {
  order: Record<string, unknown>;
  patient: MaskedPatient | null;
  timeline: Array<Record<string, unknown>>;
  images: Array<Record<string, unknown> & { id: string; url: string; spots: HeatSpot[] }>;
  report: { id: string; version: number; studyId: string; fetchedAt: string; results: Record<string, any> } | null;
  reportVersions: number[];
  deliveries: Array<Record<string, unknown>>;
  inbound: (Record<string, unknown> & { rawMasked: string }) | null;
}

/** An inbound message as staff see it: the body and the ACK with the patient masked. */
function masked(inbound: Record<string, any>): Record<string, unknown> & { rawMasked: string } {
  const { raw, ...rest } = inbound;
  // An enhanced-mode ACK (ORR^O02/ORL^O22) repeats the PID: masked like the message.
  const ack = typeof rest.ack === 'string' ? maskInbound(inbound.channel as string, rest.ack) : rest.ack;
  return { ...rest, ack, rawMasked: maskInbound(inbound.channel as string, raw as string) };
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

export function encodeCursor(c: Cursor): string {
  return Buffer.from(`${c.createdAt}|${c.id}`).toString('base64url');
}

export function decodeCursor(s: string | undefined): Cursor | undefined {
  if (!s) return undefined;
  const [createdAt, id] = Buffer.from(s, 'base64url').toString().split('|');
  // PostgreSQL's own text form (`2026-11-27 21:05:52.834123+00`), passed back as is.
  if (
    !createdAt ||
    !id ||
    !/^[0-9a-f-]{36}$/i.test(id) ||
    !/^\d{4}-\d{2}-\d{2}[ T][\d:.]+([+-]\d{2}(:?\d{2})?)?$/.test(createdAt)
  )
    return undefined;
  return { createdAt, id };
}

/**
 * Heat-map spots of the report, placed on the image they belong to: by Hemato.AI file id
 * (`sha224-i-<content hash>`); a spot without a file id goes on the only image, if there is one.
 */
export function placeSpots(
  results: Record<string, any> | undefined,
  images: Array<{ id: string; content_hash: string | null; hemato_file_id: string | null }>,
): Map<string, HeatSpot[]> {
  const out = new Map<string, HeatSpot[]>(images.map((i) => [i.id, []]));
  const findings = (results?.morphological_findings ?? {}) as Record<string, { heat_map?: unknown }>;
  for (const [finding, f] of Object.entries(findings)) {
    if (!Array.isArray(f?.heat_map)) continue;
    for (const spot of f.heat_map as Array<Record<string, any>>) {
      const c = spot?.center;
      if (!Array.isArray(c) || c.length < 2) continue;
      const fileId = typeof spot.file_id === 'string' ? spot.file_id : undefined;
      const image = fileId
        ? images.find((i) => i.hemato_file_id === fileId || (i.content_hash && `sha224-i-${i.content_hash}` === fileId))
        : images.length === 1
          ? images[0]
          : undefined;
      const x = num(c[0]);
      const y = num(c[1]);
      const r = num(spot.radius);
      if (image && Number.isFinite(x) && Number.isFinite(y) && Number.isFinite(r))
        out.get(image.id)?.push({ finding, x, y, r });
    }
  }
  return out;
}

/** Builds what the dashboard shows of orders; patient identity only through {@link reveal}. */
@Injectable()
export class AdminOrdersService {
  constructor(
    private readonly repo: AdminOrdersRepository,
    private readonly ds: DataSource,
    private readonly identities: PatientIdentityReader,
    @Inject(FILE_STORE) private readonly files: FileStore,
  ) {}

  async list(
    f: OrderListFilter,
    limit: number,
    cursor?: string,
  ): Promise<{ items: OrderListRow[]; nextCursor: string | null }> {
    const { rows, next } = await this.repo.list(f, limit, decodeCursor(cursor));
    return { items: rows, nextCursor: next ? encodeCursor(next) : null };
  }

  counts(f: OrderListFilter): Promise<Record<string, number>> {
    return this.repo.countByStatus(f);
  }

  async detail(id: string, reportVersion?: number): Promise<OrderDetail> {
    const order = await this.repo.order(id);
    if (!order) throw new NotFoundException('No such order');
    const [timeline, images, reports, deliveries, inbound] = await Promise.all([
      this.repo.timeline(id),
      this.repo.images(id),
      this.repo.reports(id),
      this.repo.deliveries(id),
      order.inbound_message_id ? this.repo.inbound(order.inbound_message_id as string) : Promise.resolve(null),
    ]);
    const report = (reportVersion ? reports.find((r) => r.version === reportVersion) : undefined) ?? reports[0];
    const spots = placeSpots(
      report?.raw,
      images as Array<{ id: string; content_hash: string | null; hemato_file_id: string | null }>,
    );
    const identity = order.patient_proxy_id
      ? await this.identities.read(this.ds.manager, order.patient_proxy_id as string)
      : null;
    const { patient_proxy_id: _pp, storage_key: _sk, ...orderView } = order;
    return {
      order: orderView,
      patient: maskedPatient(identity),
      timeline,
      images: images.map(({ storage_key: _k, ...img }) => ({
        ...img,
        id: img.id as string,
        url: `/api/admin/orders/${id}/images/${img.id as string}`,
        spots: spots.get(img.id as string) ?? [],
      })),
      report: report
        ? {
            id: report.id as string,
            version: report.version as number,
            studyId: report.hemato_study_id as string,
            fetchedAt: report.fetched_at as string,
            results: report.raw as Record<string, any>,
          }
        : null,
      reportVersions: reports.map((r) => r.version as number),
      deliveries,
      inbound: inbound ? masked(inbound) : null,
    };
  }

  /** Inbound messages by control id, any status (the list shows no body: open one to see it masked). */
  findInbound(controlId: string): Promise<Array<Record<string, any>>> {
    return this.repo.findInbound(controlId, 50);
  }

  /** One inbound message (e.g. a refused one, which has no order page), patient data masked. */
  async inboundMessage(id: string): Promise<Record<string, unknown> & { rawMasked: string }> {
    const inbound = await this.repo.inbound(id);
    if (!inbound) throw new NotFoundException('No such inbound message');
    return masked(inbound);
  }

  /** The patient's identity and the raw inbound message in clear. The caller audits first. */
  async reveal(id: string): Promise<{ identity: PatientIdentity | null; rawInbound: string | null }> {
    const order = await this.repo.order(id);
    if (!order) throw new NotFoundException('No such order');
    const identity = order.patient_proxy_id
      ? await this.identities.read(this.ds.manager, order.patient_proxy_id as string)
      : null;
    const inbound = order.inbound_message_id ? await this.repo.inbound(order.inbound_message_id as string) : null;
    const raw = inbound?.raw as string | undefined;
    return { identity, rawInbound: raw === undefined ? null : forDisplay(raw) };
  }

  async openImage(orderId: string, imageId: string): Promise<{ stream: Readable; mediaType: string }> {
    const img = await this.repo.image(orderId, imageId);
    if (!img?.storage_key) throw new NotFoundException('No such image, or its bytes are not stored yet');
    return { stream: await this.files.open(img.storage_key), mediaType: img.media_type ?? 'application/octet-stream' };
  }

  exists(id: string): Promise<boolean> {
    return this.repo.order(id).then((o) => o !== null);
  }
}
