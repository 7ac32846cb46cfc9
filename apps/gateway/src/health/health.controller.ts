import { Controller, Get, Res } from '@nestjs/common';
import { createLogger } from '@hemato/common';
import type { Response } from 'express';
import { ReadinessService } from './readiness.service';

const log = createLogger('health');

@Controller('health')
export class HealthController {
  constructor(private readonly readiness: ReadinessService) {}

  /** The process is up and serving HTTP. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }

  /**
   * PostgreSQL and Redis answer (and the S3 bucket with IMAGE_STORE=s3); 503 names the part that does not.
   * Open to anyone (probes carry no credential), so it names the part but not its error, which can tell
   * addresses, user and bucket names: that is logged, and shown on the dashboard's Health page.
   */
  @Get('ready')
  async ready(@Res() res: Response) {
    const report = await this.readiness.check();
    const checks = Object.fromEntries(
      Object.entries(report.checks).map(([name, { ok, ms, error }]) => {
        if (error !== undefined) log.warn({ check: name, err: error }, 'readiness check failed');
        return [name, { ok, ms }];
      }),
    );
    res.status(report.status === 'ok' ? 200 : 503).json({ ...report, checks });
  }
}
