import { Injectable } from '@nestjs/common';
import { JobName } from '@hemato/common';
import { RetentionService } from '@hemato/orders';
import { HandlesJob, type JobHandler } from '../jobs/job-handler';

/** Erases patient data past RETENTION_DAYS; the counts are the job's result (ids and values never are). */
@Injectable()
@HandlesJob(JobName.Retention)
export class RetentionHandler implements JobHandler {
  constructor(private readonly retention: RetentionService) {}
  handle() {
    return this.retention.purge();
  }
}
