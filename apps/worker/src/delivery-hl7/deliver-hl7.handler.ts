import { Injectable } from '@nestjs/common';
import { JobName, type OrderJobData } from '@hemato/common';
import type { Job } from 'bullmq';
import { HandlesJob, type JobHandler } from '../jobs/job-handler';
import { DeliverHl7Service, type Hl7DeliveryResult } from './deliver-hl7.service';

/**
 * `deliveries.hl7`: one run sends with a few quick retries; if it still has no AA the job throws and
 * BullMQ retries it with backoff (it survives restarts). The last attempt marks the delivery failed.
 * The return value says how the delivery ended; moving the order on is the lifecycle's business.
 */
@Injectable()
@HandlesJob(JobName.DeliverHl7)
export class DeliverHl7Handler implements JobHandler<OrderJobData, Hl7DeliveryResult> {
  constructor(private readonly service: DeliverHl7Service) {}

  async handle(job: Job<OrderJobData>): Promise<Hl7DeliveryResult> {
    if (!job.data.deliveryId) throw new Error('deliveries.hl7 job without deliveryId');
    const finalAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    return this.service.deliver(job.data.deliveryId, { finalAttempt });
  }
}
