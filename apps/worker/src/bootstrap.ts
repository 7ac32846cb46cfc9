import { NestFactory } from '@nestjs/core';
import { PinoNestLogger, createLogger, rootLogger } from '@hemato/common';
import type { INestApplicationContext } from '@nestjs/common';
import { WorkerModule, type WorkerConfig } from './worker.module';

/** Starts the worker (no HTTP): BullMQ consumers only. Returns the Nest context to close on shutdown. */
export async function bootstrapWorker(config: WorkerConfig): Promise<INestApplicationContext> {
  rootLogger().level = config.core.LOG_LEVEL;
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: new PinoNestLogger(),
    // Throw on a failed start (the caller decides), instead of Nest exiting the process.
    abortOnError: false,
  });
  app.enableShutdownHooks();
  createLogger('worker').info('worker started');
  return app;
}
