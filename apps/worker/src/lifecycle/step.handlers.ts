import { Injectable } from '@nestjs/common';
import { DomainError, DomainErrorCode, JobName } from '@hemato/common';
import {
  CheckStatusStep,
  CreateStudyStep,
  FetchReportStep,
  Reconciler,
  RequestTasksStep,
  UploadImagesStep,
  classifyStepError,
  type StepJobData,
} from '@hemato/orders';
import type { Job } from 'bullmq';
import { HandlesJob, type JobHandler } from '../jobs/job-handler';

/**
 * Each handler is thin: the step lives in `@hemato/orders`; errors are sorted into retry / give up.
 * A Conflict means another job (a callback, a poll, the reconciler) moved the order on first: this
 * job has nothing left to do.
 */
async function run(fn: () => Promise<void>): Promise<{ ok: true; skipped?: string }> {
  try {
    await fn();
    return { ok: true };
  } catch (err) {
    if (err instanceof DomainError && err.code === DomainErrorCode.Conflict) return { ok: true, skipped: err.message };
    throw classifyStepError(err);
  }
}

@Injectable()
@HandlesJob(JobName.OrderCreateStudy)
export class CreateStudyHandler implements JobHandler<StepJobData> {
  constructor(private readonly step: CreateStudyStep) {}
  handle(job: Job<StepJobData>) {
    return run(() => this.step.execute(job.data.orderId));
  }
}

@Injectable()
@HandlesJob(JobName.OrderUploadImages)
export class UploadImagesHandler implements JobHandler<StepJobData> {
  constructor(private readonly step: UploadImagesStep) {}
  handle(job: Job<StepJobData>) {
    return run(() => this.step.execute(job.data.orderId));
  }
}

@Injectable()
@HandlesJob(JobName.OrderRequestTasks)
export class RequestTasksHandler implements JobHandler<StepJobData> {
  constructor(private readonly step: RequestTasksStep) {}
  handle(job: Job<StepJobData>) {
    return run(() => this.step.execute(job.data.orderId));
  }
}

@Injectable()
@HandlesJob(JobName.OrderCheckStatus)
export class CheckStatusHandler implements JobHandler<StepJobData> {
  constructor(private readonly step: CheckStatusStep) {}
  handle(job: Job<StepJobData>) {
    return run(() => this.step.execute(job.data.orderId, job.data.poll));
  }
}

@Injectable()
@HandlesJob(JobName.OrderFetchReport)
export class FetchReportHandler implements JobHandler<StepJobData> {
  constructor(private readonly step: FetchReportStep) {}
  handle(job: Job<StepJobData>) {
    return run(() => this.step.execute(job.data.orderId));
  }
}

@Injectable()
@HandlesJob(JobName.Reconcile)
export class ReconcileHandler implements JobHandler {
  constructor(private readonly reconciler: Reconciler) {}
  handle() {
    return this.reconciler.run();
  }
}

export const STEP_HANDLERS = [
  CreateStudyHandler,
  UploadImagesHandler,
  RequestTasksHandler,
  CheckStatusHandler,
  FetchReportHandler,
  ReconcileHandler,
];
