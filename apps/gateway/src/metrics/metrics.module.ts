import { Module } from '@nestjs/common';
import { HealthModule } from '../health/health.module';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';

/** `GET /metrics` in the Prometheus text format (needs the global config, persistence and queue modules). */
@Module({ imports: [HealthModule], controllers: [MetricsController], providers: [MetricsService] })
export class MetricsModule {}
