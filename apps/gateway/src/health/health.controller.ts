import { Controller, Get, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ReadinessService } from './readiness.service';

@Controller('health')
export class HealthController {
  constructor(private readonly readiness: ReadinessService) {}

  /** The process is up and serving HTTP. */
  @Get('live')
  live() {
    return { status: 'ok' };
  }

  /** PostgreSQL and Redis answer (and the S3 bucket with IMAGE_STORE=s3); 503 names the part that does not. */
  @Get('ready')
  async ready(@Res() res: Response) {
    const report = await this.readiness.check();
    res.status(report.status === 'ok' ? 200 : 503).json(report);
  }
}
