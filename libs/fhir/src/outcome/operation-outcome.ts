import { DomainErrorCode, type DomainError } from '@hemato/common';
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

/** FHIR issue-type codes we answer with (http://hl7.org/fhir/issue-type). */
export type IssueType = OperationOutcomeIssue['code'];

/** An OperationOutcome with a single issue. `expression` is a FHIRPath pointing at the offending element. */
export function operationOutcome(
  severity: OperationOutcomeIssue['severity'],
  code: IssueType,
  diagnostics: string,
  expression?: string | string[],
): OperationOutcome {
  const issue: OperationOutcomeIssue = { severity, code, diagnostics };
  if (expression) issue.expression = Array.isArray(expression) ? expression : [expression];
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

/** The informational outcome sent with successful writes. */
export function allOk(diagnostics = 'All OK'): OperationOutcome {
  return operationOutcome('information', 'informational', diagnostics);
}

/**
 * A failure that a FHIR endpoint answers with an `OperationOutcome` and an HTTP status. Thrown by the
 * parsers in this lib; the gateway's exception filter renders it.
 */
export class FhirOperationError extends Error {
  constructor(
    public readonly status: number,
    public readonly outcome: OperationOutcome,
  ) {
    super(outcome.issue?.[0]?.diagnostics ?? `FHIR error ${status}`);
    this.name = 'FhirOperationError';
  }

  /** 400: not a valid resource (structure, required element, bad value). */
  static invalid(diagnostics: string, expression?: string, code: IssueType = 'invalid'): FhirOperationError {
    return new FhirOperationError(400, operationOutcome('error', code, diagnostics, expression));
  }

  /** 400 with issue type `required`. */
  static required(expression: string, diagnostics = `${expression} is required`): FhirOperationError {
    return FhirOperationError.invalid(diagnostics, expression, 'required');
  }

  /** 422: a valid resource that breaks a business rule (unmapped code, wrong status, unknown patient). */
  static unprocessable(
    diagnostics: string,
    expression?: string,
    code: IssueType = 'business-rule',
  ): FhirOperationError {
    return new FhirOperationError(422, operationOutcome('error', code, diagnostics, expression));
  }

  static unauthorized(diagnostics = 'Authentication required'): FhirOperationError {
    return new FhirOperationError(401, operationOutcome('error', 'login', diagnostics));
  }

  static forbidden(diagnostics = 'Forbidden'): FhirOperationError {
    return new FhirOperationError(403, operationOutcome('error', 'forbidden', diagnostics));
  }

  static notFound(diagnostics: string): FhirOperationError {
    return new FhirOperationError(404, operationOutcome('error', 'not-found', diagnostics));
  }
}

/** Maps a domain error to its FHIR form; the switch is exhaustive over DomainErrorCode. */
export function fromDomainError(err: DomainError): FhirOperationError {
  const expr = err.location;
  switch (err.code) {
    case DomainErrorCode.Invalid:
      return new FhirOperationError(400, operationOutcome('error', 'invalid', err.message, expr));
    case DomainErrorCode.RequiredMissing:
      return new FhirOperationError(400, operationOutcome('error', 'required', err.message, expr));
    case DomainErrorCode.UnmappedCode:
      return new FhirOperationError(422, operationOutcome('error', 'code-invalid', err.message, expr));
    case DomainErrorCode.Unsupported:
      return new FhirOperationError(422, operationOutcome('error', 'not-supported', err.message, expr));
    case DomainErrorCode.PhiLeak:
      return new FhirOperationError(422, operationOutcome('error', 'security', err.message, expr));
    case DomainErrorCode.NotFound:
      return new FhirOperationError(404, operationOutcome('error', 'not-found', err.message, expr));
    case DomainErrorCode.Conflict:
      return new FhirOperationError(409, operationOutcome('error', 'conflict', err.message, expr));
    case DomainErrorCode.Unauthorized:
      return new FhirOperationError(401, operationOutcome('error', 'login', err.message, expr));
    case DomainErrorCode.Forbidden:
      return new FhirOperationError(403, operationOutcome('error', 'forbidden', err.message, expr));
    case DomainErrorCode.TooLarge:
      return new FhirOperationError(413, operationOutcome('error', 'too-costly', err.message, expr));
    case DomainErrorCode.Unavailable:
      return new FhirOperationError(503, operationOutcome('error', 'transient', err.message, expr));
  }
}

/** True when a value looks like an OperationOutcome (e.g. an EHR's error body). */
export function isOperationOutcome(value: unknown): value is OperationOutcome {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { resourceType?: unknown }).resourceType === 'OperationOutcome'
  );
}

/**
 * A TypeError from reading a resource of the wrong shape (a string where R4 has an array, null in an array):
 * the client's malformed resource (400), not our failure. Matched by name too, as Node's own errors (e.g.
 * Buffer.from(5)) may come from another realm; a failed fetch (undici's TypeError carries a cause) is not.
 */
export function isShapeTypeError(err: unknown): boolean {
  const e = err as { name?: unknown; cause?: unknown } | null;
  return (err instanceof TypeError || e?.name === 'TypeError') && !e?.cause;
}

/** 400 `structure`: the resource does not have the shape FHIR R4 defines. */
export function wrongShape(expression: string): FhirOperationError {
  return FhirOperationError.invalid(
    'The resource does not have the structure FHIR R4 defines: an element has the wrong JSON type',
    expression,
    'structure',
  );
}
