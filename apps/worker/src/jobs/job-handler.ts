import { SetMetadata } from '@nestjs/common';
import type { JobName } from '@hemato/common';
import type { Job } from 'bullmq';

export const JOB_HANDLER = Symbol('JOB_HANDLER');

/** Marks a provider as the handler of one job name. The worker refuses to start if a name has none. */
export const HandlesJob = (name: JobName) => SetMetadata(JOB_HANDLER, name);

export interface JobHandler<T = unknown, R = unknown> {
  handle(job: Job<T>): Promise<R>;
}
