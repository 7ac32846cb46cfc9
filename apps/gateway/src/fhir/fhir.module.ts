import { Module, type MiddlewareConsumer, type NestModule, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { operationOutcome, servedMethods, unacceptableFormat } from '@hemato/fhir';
import type { NextFunction, Request, Response } from 'express';
import { ehrClientProvider, EHR_CLIENT } from './ehr-client.provider';
import { FhirAuthGuard, FhirAuthService } from './fhir-auth.guard';
import { FhirController } from './fhir.controller';
import { FhirOrderIntakeUseCase } from './fhir-order-intake.use-case';
import { FhirOrdersRepository } from './fhir-orders.repository';
import { FhirReadService } from './fhir-read.service';
import { sendFhir } from './fhir-response';
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
export class FhirModule implements OnModuleInit, NestModule {
  constructor(private readonly adapter: HttpAdapterHost) {}

  /**
   * We answer JSON only: a request whose `_format` (which overrides Accept) or Accept admits no JSON type
   * (XML, say) answers 406 with a JSON OperationOutcome, before anything else, rather than JSON it did not
   * ask for. Not on the Subscription hook, whose answer the EHR does not read.
   */
  configure(consumer: MiddlewareConsumer): void {
    consumer
      .apply((req: Request, res: Response, next: NextFunction) => {
        const why = unacceptableFormat(req.query._format as string | string[] | undefined, req.headers.accept);
        if (!why) return next();
        sendFhir(res, 406, operationOutcome('error', 'not-supported', why));
      })
      .forRoutes(FhirController);
  }

  /**
   * What no route answers on /fhir is answered as FHIR too (OperationOutcome, application/fhir+json), not
   * with Nest's JSON: both handlers are registered after the routes (onModuleInit runs once they are).
   */
  onModuleInit(): void {
    const app = this.adapter.httpAdapter?.getInstance() as { use?: (fn: unknown) => void } | undefined;
    // A request no route took: 405 (with Allow) for a type we serve and a method we do not, else 404.
    app?.use?.((req: Request, res: Response, next: NextFunction) => {
      const m = /^\/fhir(?:\/(.*))?$/.exec(req.path);
      if (!m) return next();
      const segments = (m[1] ?? '').split('/').filter(Boolean);
      const allowed =
        segments.length === 0
          ? ['POST'] // the base takes transaction/batch Bundles only
          : segments.length <= 2
            ? servedMethods(segments[0]!, segments.length === 1 ? 'type' : 'instance')
            : undefined;
      const status = allowed?.length ? 405 : 404;
      if (allowed?.length) res.setHeader('Allow', allowed.join(', '));
      sendFhir(
        res,
        status,
        status === 405
          ? operationOutcome(
              'error',
              'not-supported',
              `${req.method} is not supported here; allowed: ${allowed!.join(', ')}`,
            )
          : operationOutcome('error', 'not-found', `No FHIR endpoint for ${req.method} here (see GET /fhir/metadata)`),
      );
    });
    // A body that is not JSON fails in the body parser, before any route.
    app?.use?.((err: { type?: string; status?: number }, req: Request, res: Response, next: NextFunction) => {
      if (!req.path.startsWith('/fhir') || res.headersSent || !err || (err.status ?? 500) >= 500) return next(err);
      // A charset or content coding we cannot read (415) is not a malformed body: FHIR bodies are UTF-8.
      const code = err.type === 'entity.too.large' ? 'too-costly' : err.status === 415 ? 'not-supported' : 'structure';
      const text =
        err.type === 'entity.parse.failed'
          ? 'Body is not valid JSON'
          : err.type === 'charset.unsupported'
            ? 'The body must be UTF-8 (Content-Type: application/fhir+json; charset=utf-8)'
            : err.type === 'encoding.unsupported'
              ? 'Unsupported Content-Encoding: send the body uncompressed, gzip, deflate or br'
              : 'Request body could not be read';
      sendFhir(res, err.status ?? 400, operationOutcome('error', code, text));
    });
  }
}
