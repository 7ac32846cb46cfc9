import { randomUUID } from 'node:crypto';
import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { DomainError, createLogger } from '@hemato/common';
import { FhirOperationError, fromDomainError, operationOutcome } from '@hemato/fhir';
import type { Response } from 'express';
import { sendFhir } from './fhir-response';

const log = createLogger('fhir-http');

/** Every error on /fhir answers as an OperationOutcome; a 5xx hides internals and names a correlation id. */
@Catch()
export class FhirExceptionFilter implements ExceptionFilter {
  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    let e: FhirOperationError;
    if (err instanceof FhirOperationError) e = err;
    else if (err instanceof DomainError) e = fromDomainError(err);
    else if (err instanceof HttpException) {
      const status = err.getStatus();
      // express's body parser: malformed JSON is a 400 here.
      const code =
        status === 400 ? 'structure' : status === 404 ? 'not-found' : status === 413 ? 'too-costly' : 'processing';
      e = new FhirOperationError(status, operationOutcome('error', code, err.message));
    } else if ((err as { type?: string; status?: number })?.type === 'entity.parse.failed') {
      e = new FhirOperationError(400, operationOutcome('error', 'structure', 'Body is not valid JSON'));
    } else {
      const correlationId = randomUUID();
      log.error({ correlationId, err: err instanceof Error ? err.message : String(err) }, 'FHIR request failed');
      e = new FhirOperationError(
        500,
        operationOutcome('error', 'exception', `Internal error; correlation id ${correlationId}`),
      );
    }
    if (e.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="hemato-bridge"');
    sendFhir(res, e.status, e.outcome);
  }
}
