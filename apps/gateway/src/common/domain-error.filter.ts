import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { DomainError, httpStatusOf } from '@hemato/common';
import type { Response } from 'express';

/** Plain HTTP APIs answer a DomainError with its status and a message (FHIR has its own OperationOutcome filter). */
@Catch(DomainError, HttpException)
export class DomainErrorFilter implements ExceptionFilter {
  catch(err: DomainError | HttpException, host: ArgumentsHost) {
    const res = host.switchToHttp().getResponse<Response>();
    if (err instanceof HttpException) {
      const body = err.getResponse();
      res
        .status(err.getStatus())
        .json(typeof body === 'string' ? { statusCode: err.getStatus(), message: body } : body);
      return;
    }
    res
      .status(httpStatusOf(err.code))
      .json({ statusCode: httpStatusOf(err.code), error: err.code, message: err.message });
  }
}
