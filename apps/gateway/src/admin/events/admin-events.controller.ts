import { Controller, Sse, UseGuards, type MessageEvent } from '@nestjs/common';
import { ApiCookieAuth, ApiTags } from '@nestjs/swagger';
import { bufferTime, filter, from, interval, map, merge, mergeMap, takeUntil, type Observable } from 'rxjs';
import { AdminAuthGuard, CurrentUser } from '../auth/admin-auth.guard';
import { AdminAuthService, SESSION_COOKIE } from '../auth/admin-auth.service';
import type { SessionUser } from '../auth/admin-users.repository';
import { OrderChangeListener } from './order-change-listener';

/** How often an open stream checks that its session still signs its user in. */
const SESSION_CHECK_MS = 15_000;

/**
 * Server-sent events: `orders` carries the ids of orders that changed in the last half second
 * (created, moved, new timeline line or delivery); the page re-reads what it shows. `ping` keeps
 * proxies from closing an idle stream. The stream ends with its session: at once when it signs out here,
 * otherwise at the next ping after it expired, its user was disabled or its password reset.
 */
@ApiTags('admin: events')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin')
@UseGuards(AdminAuthGuard)
export class AdminEventsController {
  constructor(
    private readonly listener: OrderChangeListener,
    private readonly auth: AdminAuthService,
  ) {}

  @Sse('events')
  events(@CurrentUser() user: SessionUser): Observable<MessageEvent> {
    const changes = this.listener.changes.pipe(
      bufferTime(500),
      filter((ids) => ids.length > 0),
      map((ids): MessageEvent => ({ type: 'orders', data: { ids: [...new Set(ids)] } })),
    );
    const pings = interval(15_000).pipe(map((): MessageEvent => ({ type: 'ping', data: {} })));
    const ended = merge(
      this.auth.signedOut.pipe(filter((id) => id === user.sessionId)),
      interval(SESSION_CHECK_MS).pipe(
        mergeMap(() => from(this.auth.sessionValid(user.sessionId).catch(() => true))),
        filter((valid) => !valid),
      ),
    );
    return merge(changes, pings).pipe(takeUntil(ended));
  }
}
