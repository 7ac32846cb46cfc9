import { NestFactory } from '@nestjs/core';
import { PinoNestLogger, createLogger } from '@hemato/common';
import type { INestApplicationContext } from '@nestjs/common';
import { WorkerModule, type WorkerConfig } from './worker.module';

/** Starts the worker (no HTTP): BullMQ consumers only. Returns the Nest context to close on shutdown. */
export async function bootstrapWorker(config: WorkerConfig): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: new PinoNestLogger(),
  });
  app.enableShutdownHooks();
  createLogger('worker').info('worker started');
  return app;
}
