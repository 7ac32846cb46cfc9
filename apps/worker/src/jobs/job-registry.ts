import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, Reflector } from '@nestjs/core';
import { JobName, createLogger } from '@hemato/common';
import type { Job } from 'bullmq';
import { JOB_HANDLER, type JobHandler } from './job-handler';

/** Finds every `@HandlesJob` provider at boot and dispatches jobs to them by name. */
@Injectable()
export class JobRegistry implements OnModuleInit {
  private readonly handlers = new Map<string, JobHandler>();
  private readonly log = createLogger('job-registry');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly reflector: Reflector,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const { instance, metatype } = wrapper;
      if (!instance || !metatype) continue;
      const name = this.reflector.get<JobName | undefined>(JOB_HANDLER, metatype);
      if (!name) continue;
      if (this.handlers.has(name)) throw new Error(`Two handlers for job ${name}`);
      this.handlers.set(name, instance as JobHandler);
    }
    const missing = Object.values(JobName).filter((n) => !this.handlers.has(n));
    if (missing.length > 0) {
      // A job nobody handles would sit in Redis forever: refuse to start instead.
      throw new Error(`Worker refuses to start: no handler for job name(s) ${missing.join(', ')}`);
    }
    this.log.info({ jobs: [...this.handlers.keys()] }, 'job handlers registered');
  }

  async dispatch(job: Job): Promise<unknown> {
    const handler = this.handlers.get(job.name);
    if (!handler) throw new Error(`No handler for job ${job.name}`);
    return handler.handle(job);
  }
}
