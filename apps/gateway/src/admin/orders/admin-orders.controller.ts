import {
  BadRequestException,
  Controller,
  Get,
  Param,
  ParseUUIDPipe,
  Post,
  Query,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import { ApiCookieAuth, ApiQuery, ApiTags } from '@nestjs/swagger';
import { OrderStatus, SourceChannel } from '@hemato/common';
import type { Request, Response } from 'express';
import { AuditService } from '../audit/audit.service';
import { AdminAuthGuard, clientIp, CurrentUser, RequireRole } from '../auth/admin-auth.guard';
import { SESSION_COOKIE } from '../auth/admin-auth.service';
import type { SessionUser } from '../auth/admin-users.repository';
import type { OrderListFilter } from './admin-orders.repository';
import { AdminOrdersService } from './admin-orders.service';

const STATUSES = new Set<string>(Object.values(OrderStatus));
const CHANNELS = new Set<string>(Object.values(SourceChannel));

function csv(v: unknown, allowed: Set<string>, name: string): string[] | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = items.filter((s) => !allowed.has(s));
  if (bad.length) throw new BadRequestException(`Unknown ${name}: ${bad.join(', ')}`);
  return items;
}

function date(v: unknown, name: string): Date | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new BadRequestException(`${name} must be an ISO date or date-time`);
  return d;
}

function filterFrom(q: Record<string, unknown>): OrderListFilter {
  const search = typeof q.q === 'string' ? q.q.trim().slice(0, 100) : '';
  return {
    statuses: csv(q.status, STATUSES, 'status'),
    channels: csv(q.channel, CHANNELS, 'channel'),
    from: date(q.from, 'from'),
    to: date(q.to, 'to'),
    q: search || undefined,
  };
}

/**
 * A page left open re-reads its order on every live update: one `order.view` entry per session and
 * order per window is enough to say who looked at what and when, without burying the log.
 */
const VIEW_AUDIT_WINDOW_MS = 10 * 60_000;
const recentViews = new Map<string, number>();
function viewRecentlyAudited(key: string): boolean {
  const last = recentViews.get(key);
  return last !== undefined && Date.now() - last < VIEW_AUDIT_WINDOW_MS;
}
function rememberView(key: string): void {
  if (recentViews.size >= 10_000) recentViews.clear();
  recentViews.set(key, Date.now());
}

/** Orders: list, counts, one order, its images, and the audited reveal of the patient. */
@ApiTags('admin: orders')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin/orders')
@UseGuards(AdminAuthGuard)
export class AdminOrdersController {
  constructor(
    private readonly orders: AdminOrdersService,
    private readonly audit: AuditService,
  ) {}

  /** Newest first, keyset-paginated: pass `nextCursor` back as `cursor` for the next page. */
  @Get()
  @ApiQuery({ name: 'status', required: false, description: 'comma-separated statuses' })
  @ApiQuery({ name: 'channel', required: false, description: 'hl7, fhir, api (comma-separated)' })
  @ApiQuery({ name: 'from', required: false, description: 'created at or after (ISO)' })
  @ApiQuery({ name: 'to', required: false, description: 'created before (ISO)' })
  @ApiQuery({
    name: 'q',
    required: false,
    description: 'placer / filler order number or patient proxy id (exact or prefix)',
  })
  @ApiQuery({ name: 'cursor', required: false })
  @ApiQuery({ name: 'limit', required: false, description: '1..200, default 50' })
  list(@Query() q: Record<string, unknown>) {
    const limit = Math.min(200, Math.max(1, Number(q.limit ?? 50) || 50));
    return this.orders.list(filterFrom(q), limit, typeof q.cursor === 'string' ? q.cursor : undefined);
  }

  /** Orders per status under the same channel / date / search filters. */
  @Get('counts')
  async counts(@Query() q: Record<string, unknown>) {
    const counts = await this.orders.counts(filterFrom(q));
    return { counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
  }

  /** One order: timeline, images with heat-map spots, report, deliveries, inbound message (patient masked). */
  @Get(':id')
  async detail(
    @Param('id', new ParseUUIDPipe()) id: string,
    @Query('reportVersion') reportVersion: string | undefined,
    @CurrentUser() user: SessionUser,
    @Req() req: Request,
  ) {
    const detail = await this.orders.detail(id, reportVersion ? Number(reportVersion) : undefined);
    const key = `${user.sessionId}:${id}`;
    if (!viewRecentlyAudited(key)) {
      await this.audit.record({
        userId: user.userId,
        userEmail: user.email,
        action: 'order.view',
        targetType: 'order',
        targetId: id,
        ip: clientIp(req),
      });
      rememberView(key);
    }
    return detail;
  }

  /** The image bytes (the page shows them as thumbnails with the heat map drawn over). */
  @Get(':id/images/:imageId')
  async image(
    @Param('id', new ParseUUIDPipe()) id: string,
    @Param('imageId', new ParseUUIDPipe()) imageId: string,
    @CurrentUser() user: SessionUser,
    @Req() req: Request,
    @Res() res: Response,
  ) {
    const { stream, mediaType } = await this.orders.openImage(id, imageId);
    await this.audit.record({
      userId: user.userId,
      userEmail: user.email,
      action: 'image.view',
      targetType: 'order',
      targetId: id,
      detail: { imageId },
      ip: clientIp(req),
    });
    res.setHeader('Content-Type', mediaType);
    res.setHeader('Cache-Control', 'private, no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  /** Admin only: the patient's name and identifiers and the raw inbound message in clear. Audited before it answers. */
  @Post(':id/reveal')
  @RequireRole('admin')
  async reveal(@Param('id', new ParseUUIDPipe()) id: string, @CurrentUser() user: SessionUser, @Req() req: Request) {
    if (!(await this.orders.exists(id))) throw new BadRequestException('No such order');
    await this.audit.record({
      userId: user.userId,
      userEmail: user.email,
      action: 'patient.reveal',
      targetType: 'order',
      targetId: id,
      ip: clientIp(req),
    });
    return this.orders.reveal(id);
  }
}

/** Inbound messages by id: a refused message has no order to show it on. */
@ApiTags('admin: orders')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin/inbound')
@UseGuards(AdminAuthGuard)
export class AdminInboundController {
  constructor(
    private readonly orders: AdminOrdersService,
    private readonly audit: AuditService,
  ) {}

  /** Messages with this control id (MSH-10 of an HL7 message, a FHIR request's id), newest first. */
  @Get()
  @ApiQuery({
    name: 'controlId',
    required: true,
    description: 'exact control id; ServiceRequest/<id> also finds the versions of it refused on the Subscription path',
  })
  async find(@Query('controlId') controlId: unknown) {
    const id = typeof controlId === 'string' ? controlId.trim() : '';
    if (!id || id.length > 200 || id.includes('\0'))
      throw new BadRequestException('controlId is required: the exact MSH-10 or request id, at most 200 characters');
    return { messages: await this.orders.findInbound(id) };
  }

  /** The message and the ACK it got, patient data masked (audited as a view, like an order). */
  @Get(':id')
  async message(@Param('id', new ParseUUIDPipe()) id: string, @CurrentUser() user: SessionUser, @Req() req: Request) {
    const message = await this.orders.inboundMessage(id);
    await this.audit.record({
      userId: user.userId,
      userEmail: user.email,
      action: 'inbound.view',
      targetType: 'inbound_message',
      targetId: id,
      ip: clientIp(req),
    });
    return message;
  }
}
