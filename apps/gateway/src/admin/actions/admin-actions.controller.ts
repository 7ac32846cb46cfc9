import { Body, Controller, HttpCode, Inject, Param, ParseUUIDPipe, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBody, ApiCookieAuth, ApiProperty, ApiTags } from '@nestjs/swagger';
import { createLogger, DomainError } from '@hemato/common';
import type { Request, Response } from 'express';
import { AuditService } from '../audit/audit.service';
import { AdminAuthGuard, clientIp, CurrentUser, RequireRole } from '../auth/admin-auth.guard';
import { SESSION_COOKIE } from '../auth/admin-auth.service';
import type { SessionUser } from '../auth/admin-users.repository';
import { ORDER_ACTIONS, type ActionOutcome, type OrderActionsPort } from './order-actions.port';

const log = createLogger('admin-actions');

export class CancelBody {
  @ApiProperty({ example: 'Duplicate order, placed again as 12345' })
  reason!: string;
}

export class HoldBody {
  @ApiProperty({ example: 'Specimen label to be checked by the ward' })
  reason!: string;
}

/** The reason an action asks for (trimmed, at most 500 characters); without one, a 400 is sent and null returned. */
function reasonOf(body: { reason?: unknown } | undefined, res: Response, action: 'cancel' | 'hold'): string | null {
  const reason = typeof body?.reason === 'string' ? body.reason.trim().slice(0, 500) : '';
  if (reason) return reason;
  res.status(400).json({ ok: false, message: `A reason is required to ${action} an order` });
  return null;
}

export class ActionOutcomeDto {
  @ApiProperty() ok!: boolean;
  @ApiProperty() message!: string;
}

/**
 * Admin actions: retry the failed step, resend a result, cancel, hold and release, replay an inbound message. Each
 * is audited with its outcome; the order's own timeline records it too (actor `admin:<email>`).
 */
@ApiTags('admin: actions')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin')
@UseGuards(AdminAuthGuard)
@RequireRole('admin')
export class AdminActionsController {
  constructor(
    @Inject(ORDER_ACTIONS) private readonly actions: OrderActionsPort,
    private readonly audit: AuditService,
  ) {}

  @Post('orders/:id/actions/retry')
  @HttpCode(200)
  retry(
    @Param('id', new ParseUUIDPipe()) id: string,
    @CurrentUser() u: SessionUser,
    @Req() req: Request,
    @Res() res: Response,
  ) {
    return this.run('order.retry', 'order', id, u, req, res, (a, actor) => a.retry(id, actor));
  }

  @Post('orders/:id/actions/resend')
  @HttpCode(200)
  resend(
    @Param('id', new ParseUUIDPipe()) id: string,
    @CurrentUser() u: SessionUser,
    @Req() req: Request,
    @Res() res: Response,
  ) {
    return this.run('order.resend', 'order', id, u, req, res, (a, actor) => a.resend(id, actor));
  }

  @Post('orders/:id/actions/cancel')
  @HttpCode(200)
  @ApiBody({ type: CancelBody })
  cancel(
    @Param('id', new ParseUUIDPipe()) id: string,
    @Body() body: Partial<CancelBody> | undefined,
    @CurrentUser() u: SessionUser,
    @Req() req: Request,
    @Res() res: Response,
  ) {
    const reason = reasonOf(body, res, 'cancel');
    if (!reason) return;
    return this.run('order.cancel', 'order', id, u, req, res, (a, actor) => a.cancel(id, actor, reason), { reason });
  }

  /** Holds an order nothing of which is at Hemato.AI yet: no step runs until it is released. */
  @Post('orders/:id/actions/hold')
  @HttpCode(200)
  @ApiBody({ type: HoldBody })
  hold(
    @Param('id', new ParseUUIDPipe()) id: string,
    @Body() body: Partial<HoldBody> | undefined,
    @CurrentUser() u: SessionUser,
    @Req() req: Request,
    @Res() res: Response,
  ) {
    const reason = reasonOf(body, res, 'hold');
    if (!reason) return;
    return this.run('order.hold', 'order', id, u, req, res, (a, actor) => a.hold(id, actor, reason), { reason });
  }

  @Post('orders/:id/actions/release')
  @HttpCode(200)
  release(
    @Param('id', new ParseUUIDPipe()) id: string,
    @CurrentUser() u: SessionUser,
    @Req() req: Request,
    @Res() res: Response,
  ) {
    return this.run('order.release', 'order', id, u, req, res, (a, actor) => a.release(id, actor));
  }

  @Post('inbound/:id/replay')
  @HttpCode(200)
  replay(
    @Param('id', new ParseUUIDPipe()) id: string,
    @CurrentUser() u: SessionUser,
    @Req() req: Request,
    @Res() res: Response,
  ) {
    return this.run('inbound.replay', 'inbound_message', id, u, req, res, (a, actor) => a.replayInbound(id, actor));
  }

  private async run(
    action: string,
    targetType: string,
    targetId: string,
    user: SessionUser,
    req: Request,
    res: Response,
    fn: (a: OrderActionsPort, actor: string) => Promise<ActionOutcome>,
    detail: Record<string, unknown> = {},
  ): Promise<void> {
    const ip = clientIp(req);
    let outcome: ActionOutcome;
    try {
      outcome = await fn(this.actions, `admin:${user.email}`);
    } catch (err) {
      // Domain errors (not found, conflict) are meant for people; anything else is logged, not shown.
      const message = err instanceof DomainError ? err.message : 'The action failed; see the gateway log';
      if (!(err instanceof DomainError)) log.error({ err, action, targetId }, 'admin action failed');
      outcome = { ok: false, message };
    }
    await this.audit.record({
      userId: user.userId,
      userEmail: user.email,
      action,
      targetType,
      targetId,
      outcome: outcome.ok ? 'ok' : 'failed',
      detail: { ...detail, message: outcome.message },
      ip,
    });
    res.status(200).json(outcome);
  }
}
