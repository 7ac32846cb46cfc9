import { isIP } from 'node:net';

/** Whether a URL's host is on the allow-list (exact names or IP literals, or `*.example.org` for names under it). */
export function isHostAllowed(url: URL, allowedHosts: string[]): boolean {
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return allowedHosts.some((h) => {
    const rule = h.toLowerCase().trim();
    if (rule.startsWith('*.')) return host.endsWith(rule.slice(1)) && isIP(host) === 0;
    return host === rule;
  });
}

/** Why an image URL will not be fetched, judged on the URL alone. */
export interface ImageUrlProblem {
  /** `invalid`: not a URL, or not http(s); `host`: its host is not on IMAGE_URL_ALLOWED_HOSTS. */
  kind: 'invalid' | 'host';
  /** Names the scheme or the host, never the whole URL (its path or credentials). */
  reason: string;
}

/**
 * The reason an image URL would be refused by the fetcher whatever its server answers (not a URL, not
 * http(s), a host not on `allowedHosts`), or null. Intake (HL7 OBX RP, FHIR Attachment.url) refuses such a
 * URL with the order; the worker checks again when it fetches (its configuration may differ).
 */
export function imageUrlProblem(raw: string, allowedHosts: string[]): ImageUrlProblem | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { kind: 'invalid', reason: 'Image URL is not a valid URL' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { kind: 'invalid', reason: `Image URL scheme ${url.protocol} is not allowed` };
  }
  if (url.hostname === '') return { kind: 'invalid', reason: 'Image URL has no host' };
  if (!isHostAllowed(url, allowedHosts)) {
    return { kind: 'host', reason: `Image host ${url.hostname} is not in IMAGE_URL_ALLOWED_HOSTS` };
  }
  return null;
}

/**
 * What an order declared an image's bytes to be (FHIR Attachment.size, and Attachment.hash as hex SHA-1),
 * to check them against; absent fields are not checked.
 */
export interface DeclaredContent {
  size?: number;
  sha1?: string;
}
