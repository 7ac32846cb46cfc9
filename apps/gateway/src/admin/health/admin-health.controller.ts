import { Controller, Get, UseGuards } from '@nestjs/common';
import { ApiCookieAuth, ApiTags } from '@nestjs/swagger';
import { AdminAuthGuard } from '../auth/admin-auth.guard';
import { SESSION_COOKIE } from '../auth/admin-auth.service';
import { AdminHealthService } from './admin-health.service';

@ApiTags('admin: health')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin/health')
@UseGuards(AdminAuthGuard)
export class AdminHealthController {
  constructor(private readonly health: AdminHealthService) {}

  /** MLLP listener, queue depths, Hemato.AI heartbeat, EHR reachability, last errors. */
  @Get()
  report() {
    return this.health.report();
  }
}
