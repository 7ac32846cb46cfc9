import { timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import type { Request } from 'express';

/** Whether two secrets are equal, compared in constant time. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `Authorization: Bearer <key>` (or `X-API-Key`) with one of API_KEYS, compared in constant time. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(@Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'security'>) {}

  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<Request>();
    const header = req.headers.authorization ?? '';
    const key = header.startsWith('Bearer ') ? header.slice(7).trim() : String(req.headers['x-api-key'] ?? '');
    if (key && this.config.security.API_KEYS.some((k) => sameSecret(k, key))) return true;
    throw new UnauthorizedException('A valid API key is required (Authorization: Bearer <key>)');
  }
}
