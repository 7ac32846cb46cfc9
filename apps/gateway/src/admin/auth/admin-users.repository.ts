import { Injectable } from '@nestjs/common';
import { AdminSessionEntity, AdminUserEntity, type AdminRole } from '@hemato/persistence';
import { DataSource } from 'typeorm';

export interface SessionUser {
  sessionId: string;
  userId: string;
  email: string;
  role: AdminRole;
  lastSeenAt: Date;
}

/** Dashboard users and sessions in PostgreSQL. */
/** SQL: the session `s` was signed in less than `$2` milliseconds ago. */
const YOUNGER_THAN_$2 = `s.created_at > now() - $2 * interval '1 millisecond'`;

@Injectable()
export class AdminUsersRepository {
  constructor(private readonly ds: DataSource) {}

  findByEmail(email: string): Promise<AdminUserEntity | null> {
    return this.ds
      .getRepository(AdminUserEntity)
      .createQueryBuilder('u')
      .where('lower(u.email) = lower(:email)', { email })
      .getOne();
  }

  async create(email: string, role: AdminRole, passwordHash: string): Promise<AdminUserEntity> {
    const repo = this.ds.getRepository(AdminUserEntity);
    return repo.save(repo.create({ email, role, passwordHash }));
  }

  async setPassword(id: string, passwordHash: string, role?: AdminRole): Promise<void> {
    await this.ds
      .getRepository(AdminUserEntity)
      .update({ id }, { passwordHash, failedAttempts: 0, lockedUntil: null, ...(role ? { role } : {}) });
  }

  count(): Promise<number> {
    return this.ds.getRepository(AdminUserEntity).count();
  }

  /**
   * Counts one failed sign-in in a single statement (two parallel guesses cannot both slip under the
   * threshold). An expired lock starts a fresh count.
   */
  async recordFailure(
    id: string,
    threshold: number,
    lockMs: number,
  ): Promise<{ attempts: number; lockedUntil: Date | null }> {
    const result: unknown = await this.ds.query(
      `UPDATE admin_users SET
         failed_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= now() THEN 1 ELSE failed_attempts + 1 END,
         locked_until = CASE
           WHEN locked_until IS NOT NULL AND locked_until <= now() THEN NULL
           WHEN failed_attempts + 1 >= $2 THEN now() + ($3::text || ' milliseconds')::interval
           ELSE locked_until END,
         updated_at = now()
       WHERE id = $1
       RETURNING failed_attempts, locked_until`,
      [id, threshold, String(lockMs)],
    );
    // TypeORM answers an UPDATE ... RETURNING as [rows, affected].
    const rows = (Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result) as Array<{
      failed_attempts: number;
      locked_until: Date | null;
    }>;
    return { attempts: rows[0]?.failed_attempts ?? 0, lockedUntil: rows[0]?.locked_until ?? null };
  }

  async recordSuccess(id: string): Promise<void> {
    await this.ds.query(
      `UPDATE admin_users SET failed_attempts = 0, locked_until = NULL, last_login_at = now(), updated_at = now() WHERE id = $1`,
      [id],
    );
  }

  async createSession(s: {
    userId: string;
    tokenHash: string;
    expiresAt: Date;
    ip: string | null;
    userAgent: string | null;
  }): Promise<void> {
    await this.ds.getRepository(AdminSessionEntity).insert(s);
  }

  /**
   * The session of a token: not signed out, not idle past its expiry, not older than `maxAgeMs` however
   * active (a stolen token does not live for ever by being used), of a user not disabled.
   */
  async findSession(tokenHash: string, maxAgeMs: number): Promise<SessionUser | null> {
    const rows: Array<{ session_id: string; user_id: string; email: string; role: AdminRole; last_seen_at: Date }> =
      await this.ds.query(
        `SELECT s.id AS session_id, u.id AS user_id, u.email, u.role, s.last_seen_at
           FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
          WHERE s.token_hash = $1 AND s.expires_at > now() AND ${YOUNGER_THAN_$2} AND NOT u.disabled`,
        [tokenHash, maxAgeMs],
      );
    const r = rows[0];
    return r
      ? {
          sessionId: r.session_id,
          userId: r.user_id,
          email: r.email,
          role: r.role,
          lastSeenAt: new Date(r.last_seen_at),
        }
      : null;
  }

  /** Whether a session still signs its user in (as {@link findSession} finds it); no touch. */
  async sessionValid(sessionId: string, maxAgeMs: number): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `SELECT 1 FROM admin_sessions s JOIN admin_users u ON u.id = s.user_id
        WHERE s.id = $1 AND s.expires_at > now() AND ${YOUNGER_THAN_$2} AND NOT u.disabled`,
      [sessionId, maxAgeMs],
    );
    return rows.length > 0;
  }

  /** Slides the expiry to `expiresAt`, never past the session's `maxAgeMs` from sign-in. */
  async touchSession(sessionId: string, expiresAt: Date, maxAgeMs: number): Promise<void> {
    await this.ds.query(
      `UPDATE admin_sessions SET last_seen_at = now(),
              expires_at = LEAST($2::timestamptz, created_at + $3 * interval '1 millisecond')
        WHERE id = $1`,
      [sessionId, expiresAt, maxAgeMs],
    );
  }

  async deleteSession(sessionId: string): Promise<void> {
    await this.ds.query(`DELETE FROM admin_sessions WHERE id = $1`, [sessionId]);
  }

  async deleteExpiredSessions(): Promise<void> {
    await this.ds.query(`DELETE FROM admin_sessions WHERE expires_at <= now()`);
  }
}
