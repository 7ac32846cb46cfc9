import {
  createParamDecorator,
  ForbiddenException,
  Injectable,
  SetMetadata,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { AdminRole } from '@hemato/persistence';
import type { Request } from 'express';
import { AuditService } from '../audit/audit.service';
import { AdminAuthService, SESSION_COOKIE } from './admin-auth.service';
import type { SessionUser } from './admin-users.repository';

const ROLE_KEY = 'hb:admin-role';
const PUBLIC_KEY = 'hb:admin-public';

/** Only this role may call the route (default: any signed-in user, `admin` or `viewer`). */
export const RequireRole = (role: AdminRole) => SetMetadata(ROLE_KEY, role);
/** No session needed (sign-in itself). */
export const PublicRoute = () => SetMetadata(PUBLIC_KEY, true);

export type AdminRequest = Request & { adminUser?: SessionUser };

/** The signed-in user of this request (set by {@link AdminAuthGuard}). */
export const CurrentUser = createParamDecorator((_: unknown, ctx: ExecutionContext): SessionUser => {
  const user = ctx.switchToHttp().getRequest<AdminRequest>().adminUser;
  if (!user) throw new UnauthorizedException('Sign in first');
  return user;
});

/** Reads one cookie from the header (no cookie-parser: the gateway's other routes need none). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export function clientIp(req: Request): string | null {
  return req.ip ?? req.socket.remoteAddress ?? null;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a state-changing request may come from where its headers say. `Origin` must name this host;
 * `Origin: null` (a sandboxed iframe, a data: page, a cross-site redirect) is refused. Without an Origin
 * (older browsers, some privacy settings) `Sec-Fetch-Site` must be same-origin (or none: typed by the
 * user) and a `Referer` must name this host. A client sending none of them (curl, a script) is no
 * browser an attacker could drive, and passes.
 */
export function sameOriginRequest(req: Request): boolean {
  const host = req.headers.host;
  const origin = req.headers.origin;
  if (origin !== undefined) return origin !== 'null' && hostOf(origin) === host;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const referer = req.headers.referer;
  if (referer !== undefined && hostOf(referer) !== host) return false;
  return true;
}

/**
 * Session cookie → user; role check; and for state-changing requests an Origin / Referer /
 * Sec-Fetch-Site check ({@link sameOriginRequest}) on top of SameSite=Strict, so a cross-site form cannot
 * act with an admin's session.
 */
@Injectable()
export class AdminAuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AdminAuthService,
    private readonly audit: AuditService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<AdminRequest>();
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (!SAFE_METHODS.has(req.method) && !sameOriginRequest(req)) {
      throw new ForbiddenException('Cross-origin request refused');
    }
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const user = await this.auth.authenticate(readCookie(req.headers.cookie, SESSION_COOKIE));
    if (!user) throw new UnauthorizedException('Sign in first');
    req.adminUser = user;
    const role = this.reflector.getAllAndOverride<AdminRole | undefined>(ROLE_KEY, targets);
    if (role === 'admin' && user.role !== 'admin') {
      await this.audit.record({
        userId: user.userId,
        userEmail: user.email,
        action: 'access.denied',
        outcome: 'denied',
        detail: { method: req.method, path: req.path },
        ip: clientIp(req),
      });
      throw new ForbiddenException('This needs the admin role');
    }
    return true;
  }
}
