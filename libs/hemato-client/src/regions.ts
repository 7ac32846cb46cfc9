import { isIP } from 'node:net';
import { HEMATO_REGION_HOSTS, type HematoRegion } from './contract';
import { HematoApiError } from './errors';

/** Region names as the reference's table writes them, mapped to our short codes. */
export const HEMATO_REGION_NAMES: Record<string, HematoRegion> = {
  dev: 'dev',
  qa: 'qa',
  us: 'us',
  usa: 'us',
  ca: 'ca',
  canada: 'ca',
  eu: 'eu',
};

/** Where the client sends its calls and which audience its JWTs carry. */
export interface HematoEndpoint {
  /** Base URL without a trailing slash, e.g. `https://us.api.hemato.ai`. */
  baseUrl: string;
  /** `scheme://host[:port]`, what the connection pool is keyed by. */
  origin: string;
  /** Path prefix of the base URL ('' for none), prepended to every call. */
  basePath: string;
  /** JWT `aud`: the region host (`us.api.hemato.ai`). */
  audience: string;
  region?: HematoRegion;
}

/** Parses a region given as `dev|qa|us|ca|eu` or `DEV|QA|USA|Canada|EU`. */
export function parseRegion(name: string): HematoRegion {
  const region = HEMATO_REGION_NAMES[name.trim().toLowerCase()];
  if (!region) {
    throw new HematoApiError({
      kind: 'config',
      message: `unknown Hemato.AI region "${name}": use one of DEV, QA, USA, Canada, EU`,
    });
  }
  return region;
}

/** The base URL of a region, e.g. `https://eu.api.hemato.ai`. */
export function regionBaseUrl(region: HematoRegion): string {
  return `https://${HEMATO_REGION_HOSTS[region]}`;
}

/** True for `localhost`, `*.localhost`, 127.0.0.0/8 and ::1: traffic that never leaves the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const ipVersion = isIP(host);
  if (ipVersion === 4) return host.startsWith('127.');
  if (ipVersion === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(host);
  return false;
}

/**
 * Refuses a URL the client must not talk to: anything but http(s), and plain `http://` to a host
 * that is not loopback (the reference serves only TLS; PHI-free or not, tokens travel in headers).
 * `allowInsecureHttp` lifts the second rule for closed networks such as a Compose file with the sandbox.
 */
export function assertSecureUrl(url: URL, what: string, allowInsecureHttp = false): void {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new HematoApiError({ kind: 'insecure_url', message: `${what} must be an https:// URL, got ${url.protocol}` });
  }
  if (url.protocol === 'http:' && !allowInsecureHttp && !isLoopbackHost(url.hostname)) {
    throw new HematoApiError({
      kind: 'insecure_url',
      message:
        `${what} ${url.protocol}//${url.host} is plain HTTP to a non-loopback host; Hemato.AI requires TLS: ` +
        `use https:// (plain http:// is only allowed for localhost / 127.0.0.1 / ::1)`,
    });
  }
}

/**
 * Resolves where to call: a custom `baseUrl` (the sandbox, a proxy) wins over `region`; the region
 * (default `dev`) fixes the JWT audience unless `audience` is given.
 */
export function resolveEndpoint(opts: {
  region?: HematoRegion | string;
  baseUrl?: string;
  audience?: string;
  allowInsecureHttp?: boolean;
}): HematoEndpoint {
  const region = opts.region === undefined ? undefined : parseRegion(opts.region);
  const raw = opts.baseUrl ?? regionBaseUrl(region ?? 'dev');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new HematoApiError({ kind: 'config', message: `Hemato.AI base URL is not a valid URL` });
  }
  assertSecureUrl(url, 'Hemato.AI base URL', opts.allowInsecureHttp);
  if (url.search || url.hash) {
    throw new HematoApiError({ kind: 'config', message: 'Hemato.AI base URL must not carry a query or fragment' });
  }
  const basePath = url.pathname.replace(/\/+$/, '');
  const audience =
    opts.audience ?? (region ? HEMATO_REGION_HOSTS[region] : opts.baseUrl ? url.hostname : HEMATO_REGION_HOSTS.dev);
  return { baseUrl: url.origin + basePath, origin: url.origin, basePath, audience, region: region ?? undefined };
}
