/**
 * What went wrong, in broad strokes, so callers can branch without parsing messages.
 * - `http`: the service answered with a non-2xx status (see `status`, `error`, `user_message`).
 * - `network`: no answer (connection refused/reset, DNS, TLS).
 * - `timeout`: the per-call timeout elapsed.
 * - `aborted`: the caller's `AbortSignal` fired.
 * - `file_id_mismatch`: the service answered an upload with a `file_id` other than the sha224 we computed.
 * - `study_mismatch`: the service answered a study's report with another study's (never to be taken).
 * - `unsupported_file_type`: an upload refused locally, before any network call.
 * - `insecure_url`: a plain `http://` URL to a non-loopback host.
 * - `invalid_response`: a 2xx answer whose body is not what the reference describes.
 * - `invalid_argument`: a call refused locally because an argument is malformed.
 * - `config`: the client options or environment are incomplete.
 */
export type HematoErrorKind =
  | 'http'
  | 'network'
  | 'timeout'
  | 'aborted'
  | 'file_id_mismatch'
  | 'study_mismatch'
  | 'unsupported_file_type'
  | 'insecure_url'
  | 'invalid_response'
  | 'invalid_argument'
  | 'config';

/** Fields of a {@link HematoApiError}; only `kind` and `message` are required. */
export interface HematoApiErrorInit {
  kind: HematoErrorKind;
  message: string;
  /** HTTP status of the answer; 0 when there was no answer. */
  status?: number;
  /** The envelope's `error` (for operators). */
  error?: string;
  /** The envelope's `user_message` (may be shown to end users). */
  user_message?: string;
  /** The envelope's `debug_info`. */
  debug_info?: Record<string, unknown>;
  method?: string;
  /** Request path without the query string. */
  path?: string;
  /** Whether trying the same call again later may succeed. */
  retryable?: boolean;
  /**
   * The service refused our credentials: a 401/403 to `/auth/login` (wrong user or password), or a 401 that
   * a fresh login / freshly signed token did not cure. Retrying repeats the refusal (and repeated wrong
   * logins may lock the account): treat it as permanent.
   */
  authRefused?: boolean;
  /** How many HTTP attempts were made. */
  attempts?: number;
  /** The server's `Retry-After`, in milliseconds, when it sent one. */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * The one error type of the Hemato.AI client. It carries the envelope fields of the answer
 * (`status`, `error`, `user_message`, `debug_info`) and the request's `method` and `path`,
 * never a token, a password hash or a request/response body, so it is safe to log as is.
 */
export class HematoApiError extends Error {
  readonly kind: HematoErrorKind;
  readonly status: number;
  readonly error?: string;
  readonly user_message?: string;
  readonly debug_info?: Record<string, unknown>;
  readonly method: string;
  readonly path: string;
  readonly retryable: boolean;
  readonly authRefused: boolean;
  readonly attempts: number;
  readonly retryAfterMs?: number;

  constructor(init: HematoApiErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'HematoApiError';
    this.kind = init.kind;
    this.status = init.status ?? 0;
    this.error = init.error;
    this.user_message = init.user_message;
    this.debug_info = init.debug_info;
    this.method = init.method ?? '';
    this.path = init.path ?? '';
    this.retryable = init.retryable ?? false;
    this.authRefused = init.authRefused ?? false;
    this.attempts = init.attempts ?? 0;
    this.retryAfterMs = init.retryAfterMs;
  }

  /** A plain object for structured logs (no stack, no cause chain). */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      kind: this.kind,
      message: this.message,
      status: this.status,
      error: this.error,
      user_message: this.user_message,
      debug_info: this.debug_info,
      method: this.method,
      path: this.path,
      retryable: this.retryable,
      authRefused: this.authRefused,
      attempts: this.attempts,
      retryAfterMs: this.retryAfterMs,
    };
  }
}

/** True when `e` is a {@link HematoApiError}, optionally of one of the given kinds. */
export function isHematoApiError(e: unknown, ...kinds: HematoErrorKind[]): e is HematoApiError {
  return e instanceof HematoApiError && (kinds.length === 0 || kinds.includes(e.kind));
}
