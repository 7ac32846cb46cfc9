import { Injectable } from '@nestjs/common';
import { JobName, type OrderJobData } from '@hemato/common';
import type { Job } from 'bullmq';
import { HandlesJob, type JobHandler } from '../jobs/job-handler';
import { DeliverFhirService } from './deliver-fhir.service';

/** `deliveries.fhir`: writes one report to the EHR (data: orderId + deliveryId). Transient failures throw to retry. */
@Injectable()
@HandlesJob(JobName.DeliverFhir)
export class DeliverFhirHandler implements JobHandler<OrderJobData> {
  constructor(private readonly service: DeliverFhirService) {}

  async handle(job: Job<OrderJobData>) {
    if (!job.data.deliveryId) return { status: 'skipped' };
    // The last attempt records a transient failure as the delivery's end, with the EHR's words (see failed()).
    const finalAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    return { status: await this.service.deliver(job.data.orderId, job.data.deliveryId, { finalAttempt }) };
  }
}
