import { Module, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { operationOutcome } from '@hemato/fhir';
import type { NextFunction, Request, Response } from 'express';
import { ehrClientProvider, EHR_CLIENT } from './ehr-client.provider';
import { FhirAuthGuard, FhirAuthService } from './fhir-auth.guard';
import { FhirController } from './fhir.controller';
import { FhirOrderIntakeUseCase } from './fhir-order-intake.use-case';
import { FhirOrdersRepository } from './fhir-orders.repository';
import { FhirReadService } from './fhir-read.service';
import { FhirSubscriptionController } from './fhir-subscription.controller';
import { FhirSubscriptionManager } from './fhir-subscription-manager.service';
import { SubscriptionEventsRepository } from './subscription-events.repository';
import { SubscriptionNotificationService } from './subscription-notification.service';

/** FHIR R4: order intake (REST and Subscription), CapabilityStatement, Task/DiagnosticReport read API. */
@Module({
  controllers: [FhirSubscriptionController, FhirController],
  providers: [
    ehrClientProvider,
    FhirAuthService,
    FhirAuthGuard,
    FhirOrdersRepository,
    FhirOrderIntakeUseCase,
    FhirReadService,
    SubscriptionEventsRepository,
    SubscriptionNotificationService,
    FhirSubscriptionManager,
  ],
  exports: [EHR_CLIENT, FhirSubscriptionManager],
})
export class FhirModule implements OnModuleInit {
  constructor(private readonly adapter: HttpAdapterHost) {}

  /**
   * A body that is not JSON fails in the body parser, before any route: answer it on /fhir with an
   * OperationOutcome too. Registered after the routes, so only errors reach it.
   */
  onModuleInit(): void {
    const app = this.adapter.httpAdapter?.getInstance() as { use?: (fn: unknown) => void } | undefined;
    app?.use?.((err: { type?: string; status?: number }, req: Request, res: Response, next: NextFunction) => {
      if (!req.path.startsWith('/fhir') || res.headersSent || !err || (err.status ?? 500) >= 500) return next(err);
      const code = err.type === 'entity.too.large' ? 'too-costly' : 'structure';
      const text = err.type === 'entity.parse.failed' ? 'Body is not valid JSON' : 'Request body could not be read';
      res
        .status(err.status ?? 400)
        .type('application/fhir+json')
        .send(JSON.stringify(operationOutcome('error', code, text)));
    });
  }
}
