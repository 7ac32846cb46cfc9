import {
  buildCallbackUrl,
  parseCallbackPath,
  signCallbackPath,
  verifyCallbackSignature,
  type CallbackVerification,
} from '@hemato/hemato-client';

/**
 * Signed, expiring URLs this gateway hands to Hemato.AI. All use the callback signature scheme of
 * `@hemato/hemato-client` (HMAC over a subject + expiry, checked in constant time), with subjects:
 * - `<studyId>`: the per-study callback (workflow 1),
 * - `order:<orderId>`: the callback of a workflow-2 order (its study id is not known when the list is made),
 * - `files:<orderId>`: the workflow-2 list document and the files it names.
 */

export const STUDY_FILES_PREFIX = '/hemato/studies';

const FILES_TTL_SECONDS = 24 * 3600;

/** Where Hemato.AI reaches this gateway: PUBLIC_BASE_URL, else the gateway's own loopback address. */
export function publicBaseUrl(core: { PUBLIC_BASE_URL?: string; PORT: number }): string {
  return core.PUBLIC_BASE_URL ?? `http://127.0.0.1:${core.PORT}`;
}

/** Callback URL for an order: per study (workflow 1) or per order (workflow 2). */
export function orderCallbackUrl(
  baseUrl: string,
  secret: string,
  subject: { studyId: string } | { orderId: string },
): string {
  return buildCallbackUrl(baseUrl, secret, 'studyId' in subject ? subject.studyId : `order:${subject.orderId}`);
}

/**
 * The callback URL to hand to Hemato.AI, or undefined when it could not call it: the reference requires
 * callbacks over "HTTPS with a valid server certificate", so an `http:` callback goes only to a Hemato.AI
 * reached over plain HTTP itself (the sandbox). Without one the order is polled (`orders.check-status`).
 */
export function usableCallbackUrl(hematoBaseUrl: string, callbackUrl: string): string | undefined {
  const hematoOverTls = new URL(hematoBaseUrl).protocol === 'https:';
  return hematoOverTls && new URL(callbackUrl).protocol !== 'https:' ? undefined : callbackUrl;
}

/**
 * Workflow 2's callback URL, written into the list document: as {@link usableCallbackUrl} decides for
 * workflow 1's `/tasks`, none when Hemato.AI, reached over TLS, would be handed a plain-http one.
 */
export function listCallbackUrl(
  hematoBaseUrl: string,
  baseUrl: string,
  secret: string,
  orderId: string,
): string | undefined {
  return usableCallbackUrl(hematoBaseUrl, orderCallbackUrl(baseUrl, secret, { orderId }));
}

/** `<base>/hemato/studies/<orderId>/<expires>/<signature>`; append `/list.json` or `/files/<imageId>`. */
export function studyFilesBase(baseUrl: string, secret: string, orderId: string, now = Date.now()): string {
  const expires = Math.floor(now / 1000) + FILES_TTL_SECONDS;
  const parsed = parseCallbackPath(signCallbackPath(secret, `files:${orderId}`, expires))!;
  const base = new URL(baseUrl);
  return `${base.origin}${base.pathname.replace(/\/+$/, '')}${STUDY_FILES_PREFIX}/${orderId}/${expires}/${parsed.signature}`;
}

export function verifyStudyFiles(
  secret: string,
  orderId: string,
  expires: string,
  signature: string,
): CallbackVerification {
  return verifyCallbackSignature(secret, `files:${orderId}`, expires, signature);
}
