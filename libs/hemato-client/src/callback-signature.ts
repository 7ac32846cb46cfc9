import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Per-study callback URLs carrying an expiring HMAC signature, as the reference recommends
 * ("a timestamped cryptographic signature valid only for this PBS_STUDY_ID").
 *
 * Shape: `<publicBaseUrl>/hemato/callback/<studyId>/<expires>/<signature>` where `expires` is Unix
 * seconds and `signature` is base64url(HMAC-SHA256(secret, "hemato-callback:v1:<studyId>:<expires>")).
 * The gateway mounts `POST /hemato/callback/:studyId/:expires/:signature` and calls
 * {@link verifyCallbackSignature} before reading the body, so forged or stale calls are dropped early.
 */

/** Path prefix the gateway mounts callbacks under. */
export const CALLBACK_PATH_PREFIX = '/hemato/callback';

/** Route pattern for the gateway (Express/Nest syntax). */
export const CALLBACK_ROUTE = `${CALLBACK_PATH_PREFIX}/:studyId/:expires/:signature`;

/** Default lifetime of a callback URL: long enough for slow studies and the workflow-2 download. */
export const DEFAULT_CALLBACK_TTL_SECONDS = 7 * 24 * 3600;

const MIN_SECRET_LENGTH = 32;

function assertSecret(secret: string | Buffer): void {
  if (secret.length < MIN_SECRET_LENGTH)
    throw new Error(`the callback signing secret must be >= ${MIN_SECRET_LENGTH} characters`);
}

function toSeconds(expiresAt: Date | number): number {
  return expiresAt instanceof Date ? Math.floor(expiresAt.getTime() / 1000) : Math.floor(expiresAt);
}

function mac(secret: string | Buffer, studyId: string, expires: number): Buffer {
  return createHmac('sha256', secret).update(`hemato-callback:v1:${studyId}:${expires}`).digest();
}

/**
 * The signed callback path for a study: `/hemato/callback/<studyId>/<expires>/<signature>`.
 * @param secret HMAC key (CALLBACK_SIGNING_SECRET, >= 32 characters).
 * @param expiresAt When the URL stops being valid: a Date or Unix seconds.
 */
export function signCallbackPath(secret: string | Buffer, studyId: string, expiresAt: Date | number): string {
  assertSecret(secret);
  if (!studyId) throw new Error('studyId is required');
  const expires = toSeconds(expiresAt);
  const sig = mac(secret, studyId, expires).toString('base64url');
  return `${CALLBACK_PATH_PREFIX}/${encodeURIComponent(studyId)}/${expires}/${sig}`;
}

/**
 * The full signed callback URL: `publicBaseUrl` (e.g. PUBLIC_BASE_URL, a path prefix is kept)
 * followed by {@link signCallbackPath}. Expires `ttlSeconds` from `now` (default 7 days).
 */
export function buildCallbackUrl(
  publicBaseUrl: string,
  secret: string | Buffer,
  studyId: string,
  opts: { ttlSeconds?: number; now?: number } = {},
): string {
  const base = new URL(publicBaseUrl);
  const expires = Math.floor((opts.now ?? Date.now()) / 1000) + (opts.ttlSeconds ?? DEFAULT_CALLBACK_TTL_SECONDS);
  return base.origin + base.pathname.replace(/\/+$/, '') + signCallbackPath(secret, studyId, expires);
}

/** Why a callback signature was refused. */
export type CallbackRejection = 'malformed' | 'expired' | 'bad_signature';

/** Outcome of {@link verifyCallbackSignature}. */
export type CallbackVerification =
  { ok: true; studyId: string; expiresAt: Date } | { ok: false; reason: CallbackRejection };

/**
 * Verifies the three path parameters of a callback in constant time (with respect to the
 * signature). `expires` and `signature` are the raw path segments; `now` defaults to `Date.now()`.
 */
export function verifyCallbackSignature(
  secret: string | Buffer,
  studyId: string,
  expires: string | number,
  signature: string,
  now: number = Date.now(),
): CallbackVerification {
  assertSecret(secret);
  const exp = typeof expires === 'number' ? expires : /^\d{1,12}$/.test(expires) ? Number(expires) : NaN;
  if (!studyId || !Number.isSafeInteger(exp) || !/^[A-Za-z0-9_-]{1,128}$/.test(signature)) {
    return { ok: false, reason: 'malformed' };
  }
  const expected = mac(secret, studyId, exp);
  const given = Buffer.from(signature, 'base64url');
  // Compare equal-length buffers only; a wrong length still costs one comparison.
  const same =
    given.length === expected.length ? timingSafeEqual(given, expected) : !timingSafeEqual(expected, expected);
  if (!same) return { ok: false, reason: 'bad_signature' };
  // Checked after the MAC so an attacker learns nothing about expiry from an unsigned URL.
  if (exp * 1000 <= now) return { ok: false, reason: 'expired' };
  return { ok: true, studyId, expiresAt: new Date(exp * 1000) };
}

/**
 * Splits a callback path (`/hemato/callback/<studyId>/<expires>/<signature>`, with or without a
 * leading base path) into its parameters, or undefined when it does not have that shape.
 */
export function parseCallbackPath(path: string): { studyId: string; expires: string; signature: string } | undefined {
  const clean = path.split('?')[0]!;
  const at = clean.lastIndexOf(CALLBACK_PATH_PREFIX + '/');
  if (at < 0) return undefined;
  const parts = clean.slice(at + CALLBACK_PATH_PREFIX.length + 1).split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  try {
    return { studyId: decodeURIComponent(parts[0]!), expires: parts[1]!, signature: parts[2]! };
  } catch {
    return undefined;
  }
}
