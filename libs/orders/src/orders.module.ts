import { Global, Module } from '@nestjs/common';
import { PrivacyModule } from '@hemato/privacy';
import { OrderActionsService } from './actions/order-actions.service';
import { OrderCodeTable } from './codes/order-code-table';
import { orderCodeTableProvider } from './codes/order-code-table.provider';
import { HematoClientHolder } from './hemato/hemato-client.provider';
import { OrderHolds } from './holds/order-holds.service';
import { FILE_STORE, fileStoreProvider } from './images/file-store.provider';
import { ImageIntakeService } from './images/image-intake.service';
import { OrderIntakeService } from './intake/order-intake.service';
import { DeliveryCompletion } from './lifecycle/delivery-completion.service';
import { LifecycleQueue } from './lifecycle/lifecycle-queue';
import { OrderTransitions } from './lifecycle/order-transitions.service';
import { Reconciler } from './lifecycle/reconciler.service';
import { StartOrderUseCase } from './lifecycle/start-order.use-case';
import { StepFailure } from './lifecycle/step-failure.service';
import { CheckStatusStep } from './lifecycle/steps/check-status.step';
import { CreateStudyStep } from './lifecycle/steps/create-study.step';
import { FetchReportStep } from './lifecycle/steps/fetch-report.step';
import { RequestTasksStep } from './lifecycle/steps/request-tasks.step';
import { StepContext } from './lifecycle/steps/step-context';
import { UploadImagesStep } from './lifecycle/steps/upload-images.step';
import { RetentionService } from './retention/retention.service';

const services = [
  OrderIntakeService,
  OrderTransitions,
  LifecycleQueue,
  HematoClientHolder,
  ImageIntakeService,
  StartOrderUseCase,
  StepContext,
  CreateStudyStep,
  UploadImagesStep,
  RequestTasksStep,
  CheckStatusStep,
  FetchReportStep,
  DeliveryCompletion,
  StepFailure,
  Reconciler,
  OrderActionsService,
  OrderHolds,
  RetentionService,
];

/** The order lifecycle's shared services, for gateway (intake, callbacks, actions) and worker (steps) alike. */
@Global()
@Module({
  imports: [PrivacyModule],
  providers: [orderCodeTableProvider, fileStoreProvider, ...services],
  exports: [OrderCodeTable, FILE_STORE, ...services],
})
export class OrdersModule {}
