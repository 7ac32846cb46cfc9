import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { DomainError, DomainErrorCode } from '@hemato/common';
import { request } from 'undici';
import { gateImageType, sniffMediaType, type FileStore, type StoredFile } from './file-store';

export interface FetchPolicy {
  /** Hosts (exact names, or `*.example.org`) images may be fetched from. Empty: none. */
  allowedHosts: string[];
  maxBytes: number;
  /** The whole fetch, headers to last byte (default 300 s). A silent server fails sooner (30 s idle). */
  timeoutMs?: number;
}

/** Whether a URL's host is on the allow-list. Nothing is fetched from a host not named there. */
export function isHostAllowed(url: URL, allowedHosts: string[]): boolean {
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return allowedHosts.some((h) => {
    const rule = h.toLowerCase().trim();
    if (rule.startsWith('*.')) return host.endsWith(rule.slice(1)) && isIP(host) === 0;
    return host === rule;
  });
}

/**
 * Fetches one image by URL into the file store: only http(s), only allow-listed hosts, no redirects
 * (a redirect could leave the allow-list), at most `maxBytes`, and only JPEG, PNG or zip by content.
 */
export async function fetchImage(
  rawUrl: string,
  store: FileStore,
  policy: FetchPolicy,
): Promise<StoredFile & { mediaType: string }> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new DomainError(DomainErrorCode.Invalid, 'Image URL is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DomainError(DomainErrorCode.Invalid, `Image URL scheme ${url.protocol} is not allowed`);
  }
  if (!isHostAllowed(url, policy.allowedHosts)) {
    throw new DomainError(DomainErrorCode.Forbidden, `Image host ${url.hostname} is not in IMAGE_URL_ALLOWED_HOSTS`);
  }
  // A server may answer and then trickle bytes forever (no idle timeout ever fires): the whole fetch has
  // a deadline, after which the connection is dropped and nothing is kept.
  const totalMs = policy.timeoutMs ?? 300_000;
  const deadline = AbortSignal.timeout(totalMs);
  const tooSlow = () =>
    new DomainError(DomainErrorCode.Unavailable, `Image URL: not delivered within ${Math.round(totalMs / 1000)} s`);
  try {
    // undici's request does not follow redirects: a 3xx is refused below like any non-200.
    const res = await request(url, {
      method: 'GET',
      headersTimeout: Math.min(30_000, totalMs),
      bodyTimeout: Math.min(30_000, totalMs),
      signal: deadline,
    });
    if (res.statusCode !== 200) {
      res.body.destroy();
      throw new DomainError(DomainErrorCode.Unavailable, `Image URL answered HTTP ${res.statusCode}`);
    }
    const declared = Number(res.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > policy.maxBytes) {
      res.body.destroy();
      throw new DomainError(
        DomainErrorCode.TooLarge,
        `Image is ${declared} bytes, over the limit of ${policy.maxBytes}`,
      );
    }
    // The type is checked on the first bytes, before the store keeps anything.
    const body = res.body as unknown as Readable;
    const stored = await store.put(
      gateImageType(body, 'Image URL did not return a JPEG, PNG or zip', 'destroy'),
      policy.maxBytes,
    );
    const mediaType = sniffMediaType(stored.head);
    return { ...stored, mediaType: mediaType ?? 'application/octet-stream' };
  } catch (err) {
    if (deadline.aborted && !(err instanceof DomainError)) throw tooSlow();
    throw err;
  }
}
