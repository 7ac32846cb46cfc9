import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ConfigModule, QueueModule, type AppConfig } from '@hemato/common';
import { OrdersModule } from '@hemato/orders';
import { PersistenceModule } from '@hemato/persistence';
import { JobRegistry } from './jobs/job-registry';
import { DeliveriesProcessor, MaintenanceProcessor, OrdersProcessor } from './jobs/processors';
import { EchoHandler } from './maintenance/echo.handler';
import { MaintenanceScheduler } from './maintenance/maintenance-scheduler';
import { RetentionHandler } from './maintenance/retention.handler';
import { StartOrderHandler } from './lifecycle/start-order.handler';
import { STEP_HANDLERS } from './lifecycle/step.handlers';
import { ImageWatcher } from './images/image-watcher';
import { DeliverHl7Handler } from './delivery-hl7/deliver-hl7.handler';
import { DeliverHl7Service } from './delivery-hl7/deliver-hl7.service';
import { DeliverFhirHandler } from './delivery-fhir/deliver-fhir.handler';
import { DeliverFhirService } from './delivery-fhir/deliver-fhir.service';

export type WorkerConfig = AppConfig;

/** BullMQ processors that move orders through their lifecycle. */
@Module({})
export class WorkerModule {
  static forRoot(config: WorkerConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        DiscoveryModule,
        ConfigModule.forRoot(config),
        PersistenceModule.forRoot({ url: config.database.DATABASE_URL, poolSize: config.database.DATABASE_POOL_SIZE }),
        QueueModule.forRoot({ redisUrl: config.redis.REDIS_URL, prefix: config.redis.QUEUE_PREFIX }),
        OrdersModule,
      ],
      providers: [
        JobRegistry,
        OrdersProcessor,
        DeliveriesProcessor,
        MaintenanceProcessor,
        EchoHandler,
        StartOrderHandler,
        ...STEP_HANDLERS,
        MaintenanceScheduler,
        RetentionHandler,
        ImageWatcher,
        DeliverHl7Service,
        DeliverHl7Handler,
        DeliverFhirService,
        DeliverFhirHandler,
      ],
    };
  }
}
