import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Subject } from 'rxjs';
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

/** How many unknown e-mails' failed sign-ins are remembered at most. */
const MAX_UNKNOWN_TRACKED = 10_000;

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

  /**
   * Failed sign-ins of e-mails without an (enabled) account, counted like a real account's
   * (`admin_users.failed_attempts`), so that these e-mails lock too. In memory, at most
   * {@link MAX_UNKNOWN_TRACKED} e-mails (the oldest forgotten first).
   */
  private readonly unknownLocks = new Map<string, { attempts: number; lockedUntil: Date | null }>();

  /** Counts one failure for an unknown e-mail; the end of its lock when this one reached the threshold. */
  private recordUnknownFailure(key: string, threshold: number, lockMs: number): Date | null {
    const now = Date.now();
    const prev = this.unknownLocks.get(key);
    // An expired lock starts a fresh count, as recordFailure does for a real account.
    const attempts = prev && !(prev.lockedUntil && prev.lockedUntil.getTime() <= now) ? prev.attempts + 1 : 1;
    const lockedUntil = attempts >= threshold ? new Date(now + lockMs) : null;
    this.unknownLocks.delete(key);
    if (this.unknownLocks.size >= MAX_UNKNOWN_TRACKED) {
      const oldest = this.unknownLocks.keys().next().value;
      if (oldest !== undefined) this.unknownLocks.delete(oldest);
    }
    this.unknownLocks.set(key, { attempts, lockedUntil });
    return lockedUntil;
  }

  /** How long a session lasts without activity. */
  get ttlMs(): number {
    return this.config.dashboard.ADMIN_SESSION_TTL_MS;
  }

  /** How long a session lasts at most from sign-in, however active (the cookie's Max-Age). */
  get maxAgeMs(): number {
    return this.config.dashboard.ADMIN_SESSION_MAX_MS;
  }

  async login(
    email: string,
    password: string,
    ctx: { ip: string | null; userAgent: string | null },
  ): Promise<LoginResult> {
    const cfg = this.config.dashboard;
    const user = await this.users.findByEmail(email);
    if (!user || user.disabled) {
      // Answered as a real account would be, lock-out included (a real one answers 423 after the threshold),
      // and with the same work, so neither the answers nor their time tell which e-mails exist.
      const key = email.toLowerCase();
      const held = this.unknownLocks.get(key)?.lockedUntil;
      // Locked already: refused without the password work, as a locked real account is.
      const stillLocked = held && held.getTime() > Date.now() ? held : null;
      let lockedUntil = stillLocked;
      if (!stillLocked) {
        await verifyPassword(password, await dummyHash());
        lockedUntil = this.recordUnknownFailure(key, cfg.ADMIN_LOCKOUT_THRESHOLD, cfg.ADMIN_LOCKOUT_MS);
      }
      await this.audit.record({
        userId: null,
        userEmail: email,
        action: 'auth.login',
        outcome: stillLocked ? 'denied' : 'failed',
        detail: { reason: 'unknown user' },
        ip: ctx.ip,
      });
      return lockedUntil ? { ok: false, reason: 'locked', lockedUntil } : { ok: false, reason: 'invalid' };
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
    const expiresAt = new Date(Date.now() + Math.min(this.ttlMs, this.maxAgeMs));
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
    const s = await this.users.findSession(hashToken(token), this.maxAgeMs);
    if (!s) return null;
    if (Date.now() - s.lastSeenAt.getTime() > TOUCH_EVERY_MS) {
      await this.users.touchSession(s.sessionId, new Date(Date.now() + this.ttlMs), this.maxAgeMs);
    }
    return s;
  }

  /** Ids of sessions signed out in this process (open event streams of them end at once). */
  readonly signedOut = new Subject<string>();

  /** Whether a session still signs its user in, without sliding its expiry (for long-lived streams). */
  sessionValid(sessionId: string): Promise<boolean> {
    return this.users.sessionValid(sessionId, this.maxAgeMs);
  }

  async logout(user: SessionUser, ip: string | null): Promise<void> {
    await this.users.deleteSession(user.sessionId);
    this.signedOut.next(user.sessionId);
    await this.audit.record({ userId: user.userId, userEmail: user.email, action: 'auth.logout', ip });
  }
}
