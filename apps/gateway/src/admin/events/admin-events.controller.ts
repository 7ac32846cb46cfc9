import { Controller, Sse, UseGuards, type MessageEvent } from '@nestjs/common';
import { ApiCookieAuth, ApiTags } from '@nestjs/swagger';
import { bufferTime, filter, interval, map, merge, type Observable } from 'rxjs';
import { AdminAuthGuard } from '../auth/admin-auth.guard';
import { SESSION_COOKIE } from '../auth/admin-auth.service';
import { OrderChangeListener } from './order-change-listener';

/**
 * Server-sent events: `orders` carries the ids of orders that changed in the last half second
 * (created, moved, new timeline line or delivery); the page re-reads what it shows. `ping` keeps
 * proxies from closing an idle stream.
 */
@ApiTags('admin: events')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin')
@UseGuards(AdminAuthGuard)
export class AdminEventsController {
  constructor(private readonly listener: OrderChangeListener) {}

  @Sse('events')
  events(): Observable<MessageEvent> {
    const changes = this.listener.changes.pipe(
      bufferTime(500),
      filter((ids) => ids.length > 0),
      map((ids): MessageEvent => ({ type: 'orders', data: { ids: [...new Set(ids)] } })),
    );
    const pings = interval(15_000).pipe(map((): MessageEvent => ({ type: 'ping', data: {} })));
    return merge(changes, pings);
  }
}
