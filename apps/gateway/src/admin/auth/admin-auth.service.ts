import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import type { AdminRole } from '@hemato/persistence';
import { AuditService } from '../audit/audit.service';
import { AdminUsersRepository, type SessionUser } from './admin-users.repository';
import { dummyHash, verifyPassword } from './password';

export const SESSION_COOKIE = 'hb_admin_session';

export type LoginResult =
  | { ok: true; token: string; expiresAt: Date; user: { id: string; email: string; role: AdminRole } }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; lockedUntil: Date };

/** Only refresh a session's expiry when it was last touched this long ago (one write per minute, not per request). */
const TOUCH_EVERY_MS = 60_000;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

/** Sign-in with lock-out, sessions by opaque cookie token. */
@Injectable()
export class AdminAuthService {
  constructor(
    private readonly users: AdminUsersRepository,
    private readonly audit: AuditService,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'dashboard'>,
  ) {}

  get ttlMs(): number {
    return this.config.dashboard.ADMIN_SESSION_TTL_MS;
  }

  async login(
    email: string,
    password: string,
    ctx: { ip: string | null; userAgent: string | null },
  ): Promise<LoginResult> {
    const cfg = this.config.dashboard;
    const user = await this.users.findByEmail(email);
    if (!user || user.disabled) {
      // Same work as for a real account, so response time does not tell which e-mails exist.
      await verifyPassword(password, await dummyHash());
      await this.audit.record({
        userId: null,
        userEmail: email,
        action: 'auth.login',
        outcome: 'failed',
        detail: { reason: 'unknown user' },
        ip: ctx.ip,
      });
      return { ok: false, reason: 'invalid' };
    }
    if (user.lockedUntil && user.lockedUntil.getTime() > Date.now()) {
      await this.audit.record({
        userId: user.id,
        userEmail: user.email,
        action: 'auth.login',
        outcome: 'denied',
        detail: { reason: 'locked' },
        ip: ctx.ip,
      });
      return { ok: false, reason: 'locked', lockedUntil: user.lockedUntil };
    }
    if (!(await verifyPassword(password, user.passwordHash))) {
      const { attempts, lockedUntil } = await this.users.recordFailure(
        user.id,
        cfg.ADMIN_LOCKOUT_THRESHOLD,
        cfg.ADMIN_LOCKOUT_MS,
      );
      const locked = lockedUntil !== null && lockedUntil.getTime() > Date.now();
      await this.audit.record({
        userId: user.id,
        userEmail: user.email,
        action: locked ? 'auth.lockout' : 'auth.login',
        outcome: 'failed',
        detail: { reason: 'wrong password', attempts },
        ip: ctx.ip,
      });
      return locked ? { ok: false, reason: 'locked', lockedUntil } : { ok: false, reason: 'invalid' };
    }
    await this.users.recordSuccess(user.id);
    const token = randomBytes(32).toString('base64url');
    const expiresAt = new Date(Date.now() + this.ttlMs);
    await this.users.createSession({
      userId: user.id,
      tokenHash: hashToken(token),
      expiresAt,
      ip: ctx.ip,
      userAgent: ctx.userAgent?.slice(0, 300) ?? null,
    });
    await this.audit.record({ userId: user.id, userEmail: user.email, action: 'auth.login', ip: ctx.ip });
    // Sessions expired long ago are of no use to anyone; clear them on the way.
    void this.users.deleteExpiredSessions().catch(() => undefined);
    return { ok: true, token, expiresAt, user: { id: user.id, email: user.email, role: user.role } };
  }

  /** The signed-in user for a cookie token, sliding the expiry forward. */
  async authenticate(token: string | undefined): Promise<SessionUser | null> {
    if (!token || token.length > 200) return null;
    const s = await this.users.findSession(hashToken(token));
    if (!s) return null;
    if (Date.now() - s.lastSeenAt.getTime() > TOUCH_EVERY_MS) {
      await this.users.touchSession(s.sessionId, new Date(Date.now() + this.ttlMs));
    }
    return s;
  }

  async logout(user: SessionUser, ip: string | null): Promise<void> {
    await this.users.deleteSession(user.sessionId);
    await this.audit.record({ userId: user.userId, userEmail: user.email, action: 'auth.logout', ip });
  }
}
