import { Injectable } from '@nestjs/common';
import { JobName, type OrderJobData } from '@hemato/common';
import { StartOrderUseCase } from '@hemato/orders';
import type { Job } from 'bullmq';
import { HandlesJob, type JobHandler } from '../jobs/job-handler';

@Injectable()
@HandlesJob(JobName.OrderStart)
export class StartOrderHandler implements JobHandler<OrderJobData> {
  constructor(private readonly useCase: StartOrderUseCase) {}

  async handle(job: Job<OrderJobData>) {
    return { status: await this.useCase.execute(job.data.orderId) };
  }
}
