import { BullModule } from '@nestjs/bullmq';
import { Module, type DynamicModule } from '@nestjs/common';
import { DEFAULT_JOB_OPTIONS, QueueName } from './queue-names';

/** BullMQ on Redis, every queue registered with the default job options. Used by gateway and worker alike. */
@Module({})
export class QueueModule {
  static forRoot(opts: { redisUrl: string; prefix: string }): DynamicModule {
    const queues = Object.values(QueueName).map((name) => ({ name }));
    return {
      module: QueueModule,
      global: true,
      imports: [
        BullModule.forRoot({
          connection: { url: opts.redisUrl, maxRetriesPerRequest: null },
          prefix: opts.prefix,
          defaultJobOptions: DEFAULT_JOB_OPTIONS,
        }),
        BullModule.registerQueue(...queues),
      ],
      exports: [BullModule],
    };
  }
}
