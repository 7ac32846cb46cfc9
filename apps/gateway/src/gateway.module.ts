import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, QueueModule, type AppConfig } from '@hemato/common';
import { OrdersModule } from '@hemato/orders';
import { PersistenceModule } from '@hemato/persistence';
import { AdminModule } from './admin/admin.module';
import { FhirModule } from './fhir/fhir.module';
import { HealthModule } from './health/health.module';
import { HematoCallbacksModule } from './hemato-callbacks/hemato-callbacks.module';
import { ImagesModule } from './images/images.module';
import { Hl7Module } from './hl7/hl7.module';
import { MetricsModule } from './metrics/metrics.module';

export type GatewayConfig = AppConfig;

/** HTTP (health, metrics, FHIR intake, callbacks, admin API, dashboard) and the MLLP listener. */
@Module({})
export class GatewayModule {
  static forRoot(config: GatewayConfig): DynamicModule {
    return {
      module: GatewayModule,
      imports: [
        ConfigModule.forRoot(config),
        PersistenceModule.forRoot({ url: config.database.DATABASE_URL, poolSize: config.database.DATABASE_POOL_SIZE }),
        QueueModule.forRoot({ redisUrl: config.redis.REDIS_URL, prefix: config.redis.QUEUE_PREFIX }),
        OrdersModule,
        HealthModule,
        HematoCallbacksModule,
        ImagesModule,
        FhirModule,
        Hl7Module,
        AdminModule,
        MetricsModule,
      ],
    };
  }
}
