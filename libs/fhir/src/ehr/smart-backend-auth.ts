import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLogger } from '@hemato/common';
import { SignJWT, importJWK, importPKCS8, type CryptoKey, type JWK } from 'jose';

const log = createLogger('smart-auth');

export type SmartAlg = 'RS384' | 'ES384';

/** How long a request to the EHR may take by default (`FHIR_EHR_TIMEOUT_MS`). */
export const DEFAULT_EHR_TIMEOUT_MS = 30_000;

/** How to get a token from an EHR with SMART Backend Services (client_credentials + private_key_jwt). */
export interface SmartBackendAuthOptions {
  /** The EHR's FHIR base URL; `.well-known/smart-configuration` is read below it. */
  fhirBaseUrl: string;
  clientId: string;
  /** The private key: a CryptoKey, a PKCS#8 PEM or a private JWK (JSON). */
  privateKey: CryptoKey | string | JWK;
  keyId: string;
  alg: SmartAlg;
  /** Space-separated `system/` scopes. */
  scopes: string;
  /** Skip discovery and use this token endpoint. */
  tokenEndpoint?: string;
  /** Discovery and token requests give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Clock, for tests; default Date.now. */
  now?: () => number;
}

/** The part of `.well-known/smart-configuration` we use. */
export interface SmartConfiguration {
  token_endpoint: string;
  token_endpoint_auth_methods_supported?: string[];
  token_endpoint_auth_signing_alg_values_supported?: string[];
  grant_types_supported?: string[];
  scopes_supported?: string[];
}

interface CachedToken {
  accessToken: string;
  /** When to stop using it and fetch a new one (before it expires). */
  renewAt: number;
  expiresAt: number;
}

/** Error from the token endpoint, with its HTTP status. */
export class SmartAuthError extends Error {
  constructor(
    message: string,
    public readonly status?: number,
  ) {
    super(message);
    this.name = 'SmartAuthError';
  }
}

/**
 * SMART Backend Services client: discovers the token endpoint, signs a `private_key_jwt` client
 * assertion (RS384 or ES384, with `kid`), asks for a `client_credentials` token with `system/`
 * scopes, caches it and renews it before `expires_in` runs out. Concurrent callers share one
 * token request.
 */
export class SmartBackendAuth {
  private config?: SmartConfiguration;
  private key?: CryptoKey;
  private token?: CachedToken;
  private inflight?: Promise<CachedToken>;
  private readonly now: () => number;
  /** Tokens fetched so far (diagnostics). */
  tokensFetched = 0;

  constructor(private readonly opts: SmartBackendAuthOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Reads the private key from a PEM or JWK file. */
  static async loadKey(file: string): Promise<string | JWK> {
    const text = (await readFile(file, 'utf8')).trim();
    return text.startsWith('{') ? (JSON.parse(text) as JWK) : text;
  }

  /** `.well-known/smart-configuration` of the EHR (cached). */
  async discover(): Promise<SmartConfiguration> {
    if (this.config) return this.config;
    if (this.opts.tokenEndpoint) return (this.config = { token_endpoint: this.opts.tokenEndpoint });
    const url = `${this.opts.fhirBaseUrl.replace(/\/$/, '')}/.well-known/smart-configuration`;
    const { res, text } = await this.fetchText('SMART discovery', url, { headers: { accept: 'application/json' } });
    if (!res.ok) throw new SmartAuthError(`SMART discovery failed: HTTP ${res.status} from ${url}`, res.status);
    const body = JSON.parse(text) as SmartConfiguration;
    if (!body.token_endpoint) throw new SmartAuthError(`SMART discovery: no token_endpoint at ${url}`);
    const methods = body.token_endpoint_auth_methods_supported;
    if (methods && !methods.includes('private_key_jwt')) {
      throw new SmartAuthError('The EHR does not support private_key_jwt client authentication');
    }
    const algs = body.token_endpoint_auth_signing_alg_values_supported;
    if (algs && !algs.includes(this.opts.alg)) {
      log.warn({ alg: this.opts.alg, supported: algs }, 'EHR does not list our signing algorithm');
    }
    this.config = body;
    return body;
  }

  /** A valid access token: the cached one, or a new one when it is due for renewal. */
  async getToken(): Promise<string> {
    if (this.token && this.now() < this.token.renewAt) return this.token.accessToken;
    this.inflight ??= this.fetchToken().finally(() => (this.inflight = undefined));
    this.token = await this.inflight;
    return this.token.accessToken;
  }

  /** Forget the cached token (after the EHR answered 401 with it). */
  invalidate(): void {
    this.token = undefined;
  }

  private async signingKey(): Promise<CryptoKey> {
    if (this.key) return this.key;
    const k = this.opts.privateKey;
    if (typeof k === 'string') this.key = await importPKCS8(k, this.opts.alg);
    else if ('type' in k && typeof (k as CryptoKey).algorithm === 'object') this.key = k as CryptoKey;
    else this.key = (await importJWK(k as JWK, this.opts.alg)) as CryptoKey;
    return this.key;
  }

  /** A fetch and its body within `timeoutMs`: a silent token endpoint would otherwise hang every EHR call behind it. */
  private async fetchText(what: string, url: string, init: RequestInit): Promise<{ res: Response; text: string }> {
    const ms = this.opts.timeoutMs ?? DEFAULT_EHR_TIMEOUT_MS;
    const signal = AbortSignal.timeout(ms);
    try {
      const res = await fetch(url, { ...init, signal });
      return { res, text: await res.text() };
    } catch (err) {
      // No status: EhrClient counts it as transient, so the caller retries later.
      if (signal.aborted)
        throw new SmartAuthError(`${what}: the EHR did not answer within ${ms} ms (FHIR_EHR_TIMEOUT_MS)`);
      throw err;
    }
  }

  private async fetchToken(): Promise<CachedToken> {
    const { token_endpoint } = await this.discover();
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: this.opts.alg, kid: this.opts.keyId, typ: 'JWT' })
      .setIssuer(this.opts.clientId)
      .setSubject(this.opts.clientId)
      .setAudience(token_endpoint)
      .setJti(randomUUID())
      // Claims use the wall clock (the EHR checks them against its own); `now` only drives renewal.
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(await this.signingKey());
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      scope: this.opts.scopes,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    const { res, text } = await this.fetchText('SMART token request', token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: form.toString(),
      // Not followed: a 307/308 would send the signed client assertion on to wherever it points, and take
      // that server's token for the EHR's.
      redirect: 'manual',
    });
    if (res.status >= 300 && res.status < 400) {
      const to = res.headers.get('location');
      let where = 'elsewhere';
      try {
        where = to ? new URL(to, token_endpoint).origin : where;
      } catch {
        // an unreadable Location: named as elsewhere
      }
      throw new SmartAuthError(
        `SMART token request failed: HTTP ${res.status}, a redirect to ${where}: not followed (the token_endpoint of the EHR's smart-configuration must answer itself)`,
        res.status,
      );
    }
    if (!res.ok) {
      let reason = text.slice(0, 200);
      try {
        const j = JSON.parse(text) as { error?: string; error_description?: string };
        reason = [j.error, j.error_description].filter(Boolean).join(': ') || reason;
      } catch {
        // not JSON: keep the text
      }
      throw new SmartAuthError(`SMART token request failed: HTTP ${res.status} ${reason}`, res.status);
    }
    const body = JSON.parse(text) as { access_token?: string; expires_in?: number; token_type?: string };
    if (!body.access_token) throw new SmartAuthError('SMART token response has no access_token');
    const lifetimeMs = Math.max(1, Number(body.expires_in ?? 300)) * 1000;
    // Renew a minute early (or at half-life for short tokens) so a request never carries a token that expires in flight.
    const margin = Math.min(60_000, lifetimeMs / 2);
    const issued = this.now();
    this.tokensFetched++;
    log.info({ clientId: this.opts.clientId, expiresIn: lifetimeMs / 1000 }, 'SMART access token obtained');
    return { accessToken: body.access_token, renewAt: issued + lifetimeMs - margin, expiresAt: issued + lifetimeMs };
  }
}
