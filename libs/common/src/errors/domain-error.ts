/**
 * Codes for domain failures. Each transport maps them to its own form (HL7 ERR/ACK code,
 * FHIR OperationOutcome + HTTP status, plain HTTP status) with an exhaustive switch.
 */
export enum DomainErrorCode {
  Invalid = 'invalid',
  RequiredMissing = 'required_missing',
  UnmappedCode = 'unmapped_code',
  Unsupported = 'unsupported',
  NotFound = 'not_found',
  Conflict = 'conflict',
  Unauthorized = 'unauthorized',
  Forbidden = 'forbidden',
  TooLarge = 'too_large',
  Unavailable = 'unavailable',
  PhiLeak = 'phi_leak',
}

export class DomainError extends Error {
  constructor(
    public readonly code: DomainErrorCode,
    message: string,
    /** Where in the input the problem is (HL7 location like `OBR-4`, or a FHIRPath expression). */
    public readonly location?: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** HTTP status for a domain error code. */
export function httpStatusOf(code: DomainErrorCode): number {
  switch (code) {
    case DomainErrorCode.Invalid:
    case DomainErrorCode.RequiredMissing:
      return 400;
    case DomainErrorCode.UnmappedCode:
    case DomainErrorCode.Unsupported:
    case DomainErrorCode.PhiLeak:
      return 422;
    case DomainErrorCode.NotFound:
      return 404;
    case DomainErrorCode.Conflict:
      return 409;
    case DomainErrorCode.Unauthorized:
      return 401;
    case DomainErrorCode.Forbidden:
      return 403;
    case DomainErrorCode.TooLarge:
      return 413;
    case DomainErrorCode.Unavailable:
      return 503;
  }
}
