import { Injectable } from '@nestjs/common';
import { createLogger } from '@hemato/common';
import { AuditLogEntity } from '@hemato/persistence';
import { DataSource } from 'typeorm';

const log = createLogger('admin-audit');

export interface AuditEntry {
  userId: string | null;
  userEmail: string;
  action: string;
  targetType?: string | null;
  targetId?: string | null;
  outcome?: 'ok' | 'denied' | 'failed';
  /** Never patient data: ids, reasons, outcomes. */
  detail?: Record<string, unknown>;
  ip?: string | null;
}

export interface AuditQuery {
  targetType?: string;
  targetId?: string;
  action?: string;
  limit: number;
  beforeId?: string;
}

/** Writes and reads the append-only audit log (who, what, when). */
@Injectable()
export class AuditService {
  constructor(private readonly ds: DataSource) {}

  /** Written before the data leaves: if the audit row cannot be written, the caller fails too. */
  async record(e: AuditEntry): Promise<void> {
    await this.ds.query(
      `INSERT INTO audit_log (user_id, user_email, action, target_type, target_id, outcome, detail, ip)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        e.userId,
        e.userEmail,
        e.action,
        e.targetType ?? null,
        e.targetId ?? null,
        e.outcome ?? 'ok',
        JSON.stringify(e.detail ?? {}),
        e.ip ?? null,
      ],
    );
    log.info(
      { action: e.action, user: e.userId, targetType: e.targetType, targetId: e.targetId, outcome: e.outcome ?? 'ok' },
      'audit',
    );
  }

  async list(q: AuditQuery): Promise<AuditLogEntity[]> {
    const qb = this.ds.getRepository(AuditLogEntity).createQueryBuilder('a').orderBy('a.id', 'DESC').limit(q.limit);
    if (q.targetType) qb.andWhere('a.target_type = :tt', { tt: q.targetType });
    if (q.targetId) qb.andWhere('a.target_id = :tid', { tid: q.targetId });
    if (q.action) qb.andWhere('a.action = :action', { action: q.action });
    if (q.beforeId) qb.andWhere('a.id < :before', { before: q.beforeId });
    return qb.getMany();
  }
}
