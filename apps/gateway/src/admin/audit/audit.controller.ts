import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { ApiCookieAuth, ApiQuery, ApiTags } from '@nestjs/swagger';
import { AdminAuthGuard, RequireRole } from '../auth/admin-auth.guard';
import { SESSION_COOKIE } from '../auth/admin-auth.service';
import { AuditService } from './audit.service';

/** The audit log, newest first (admins only). */
@ApiTags('admin: audit')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin/audit')
@UseGuards(AdminAuthGuard)
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @RequireRole('admin')
  @ApiQuery({ name: 'targetType', required: false })
  @ApiQuery({ name: 'targetId', required: false })
  @ApiQuery({ name: 'action', required: false })
  @ApiQuery({ name: 'before', required: false, description: 'id: entries older than this one' })
  @ApiQuery({ name: 'limit', required: false })
  async list(@Query() q: Record<string, string | undefined>) {
    const limit = Math.min(500, Math.max(1, Number(q.limit ?? 100) || 100));
    const items = await this.audit.list({
      targetType: q.targetType || undefined,
      targetId: q.targetId || undefined,
      action: q.action || undefined,
      beforeId: q.before && /^\d+$/.test(q.before) ? q.before : undefined,
      limit,
    });
    return { items };
  }
}
