import { Injectable } from '@nestjs/common';
import { JobName } from '@hemato/common';
import type { Job } from 'bullmq';
import { HandlesJob, type JobHandler } from '../jobs/job-handler';

/** Diagnostics: answers with what it was given, proving the worker consumes from Redis. */
@Injectable()
@HandlesJob(JobName.Echo)
export class EchoHandler implements JobHandler<{ value: unknown }> {
  async handle(job: Job<{ value: unknown }>) {
    return { echoed: job.data.value, by: process.pid };
  }
}
