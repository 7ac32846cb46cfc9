import { Controller, Get, Header, Inject, Req, UnauthorizedException } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import type { Request } from 'express';
import { sameSecret } from '../common/api-key.guard';
import { MetricsService } from './metrics.service';
import { renderMetrics } from './prometheus-text';

/** Prometheus scrape endpoint: order, delivery and queue gauges, MLLP counters, process figures. */
@ApiExcludeController()
@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'dashboard'>,
  ) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async scrape(@Req() req: Request): Promise<string> {
    const token = this.config.dashboard.METRICS_TOKEN;
    if (token) {
      const header = req.headers.authorization ?? '';
      const given = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
      if (!given || !sameSecret(token, given)) {
        throw new UnauthorizedException('METRICS_TOKEN is set: send Authorization: Bearer <METRICS_TOKEN>');
      }
    }
    return renderMetrics(await this.metrics.collect());
  }
}
