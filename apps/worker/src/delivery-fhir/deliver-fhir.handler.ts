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
    return { status: await this.service.deliver(job.data.orderId, job.data.deliveryId) };
  }
}
