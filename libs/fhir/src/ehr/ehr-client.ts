import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createLogger, parseRetryAfter, type AppConfig } from '@hemato/common';
import type { Bundle, OperationOutcome, Resource } from '@medplum/fhirtypes';
import type { Client as FhirKitClient, RequestOptions } from 'fhir-kit-client';
import type { ResourceResolver } from '../intake/resource-resolver';
import { outcomeText } from '../results/transaction-response';
import { DEFAULT_EHR_TIMEOUT_MS, SmartAuthError, SmartBackendAuth } from './smart-backend-auth';

/** An error answer from the EHR: status and body (often an OperationOutcome). */
export class EhrHttpError extends Error {
  constructor(
    message: string,
    public readonly status: number | null,
    public readonly body: unknown,
    /** No answer within the timeout (FHIR_EHR_TIMEOUT_MS). */
    public readonly timedOut = false,
    /** How long the EHR asked us to wait before trying again (its `Retry-After`, on a 429 or 503). */
    public readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'EhrHttpError';
  }

  /**
   * Worth retrying: network failure or timeout, 408, 409 (a conflict with a concurrent write: our writes are
   * conditional on identifiers, not versions, so the next try meets the other writer's result), 429, 5xx,
   * or a 2xx whose body we could not read (our writes are idempotent, so sending again is safe).
   */
  get transient(): boolean {
    const s = this.status;
    return s === null || s === 408 || s === 409 || s === 429 || s >= 500 || (s >= 200 && s < 300);
  }
}

/** The EHR's answer to a transaction: its HTTP status and body, whatever that body is. */
export interface EhrAnswer {
  status: number;
  body: unknown;
}

export type EhrAuth = { kind: 'none' } | { kind: 'bearer'; token: string } | { kind: 'smart'; smart: SmartBackendAuth };

const log = createLogger('ehr-client');

type FhirKitModule = typeof import('fhir-kit-client');

// A real dynamic import: fhir-kit-client 2.x is ESM-only (exports has only an `import` condition).
let clientModule: Promise<FhirKitModule> | undefined;
function loadFhirKit(): Promise<FhirKitModule> {
  clientModule ??= import('fhir-kit-client').catch(async (err: unknown) => {
    // A CommonJS resolver (Jest's) does not match the `import`-only exports map; load the entry file
    // by path instead, which such a loader transforms like any other file.
    const entry = fhirKitEntry();
    if (!entry) throw err;
    return (await import(entry)) as FhirKitModule;
  });
  return clientModule;
}

function fhirKitEntry(): string | undefined {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'node_modules', 'fhir-kit-client', 'package.json');
    if (existsSync(pkg)) {
      const json = JSON.parse(readFileSync(pkg, 'utf8')) as { exports?: { '.'?: { import?: string } } };
      return path.join(path.dirname(pkg), json.exports?.['.']?.import ?? 'dist/index.js');
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/**
 * The EHR's FHIR API through fhir-kit-client, with bearer or SMART Backend Services auth. A 401
 * with a SMART token drops the token and retries once with a fresh one. Every request gives up after
 * `timeoutMs` (an EhrHttpError without status, so transient).
 */
export class EhrClient implements ResourceResolver {
  private client?: Promise<FhirKitClient>;
  readonly timeoutMs: number;

  constructor(
    readonly baseUrl: string,
    private readonly auth: EhrAuth,
    opts: { timeoutMs?: number } = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_EHR_TIMEOUT_MS;
  }

  /** From `FHIR_EHR_*` config; null when no EHR is configured. */
  static async fromConfig(cfg: AppConfig['fhir']): Promise<EhrClient | null> {
    const base = cfg.FHIR_EHR_BASE_URL;
    if (!base) return null;
    const opts = { timeoutMs: cfg.FHIR_EHR_TIMEOUT_MS };
    switch (cfg.FHIR_EHR_AUTH) {
      case 'none':
        return new EhrClient(base, { kind: 'none' }, opts);
      case 'bearer':
        if (!cfg.FHIR_EHR_TOKEN) throw new Error('FHIR_EHR_AUTH=bearer needs FHIR_EHR_TOKEN');
        return new EhrClient(base, { kind: 'bearer', token: cfg.FHIR_EHR_TOKEN }, opts);
      case 'smart': {
        if (!cfg.FHIR_SMART_CLIENT_ID || !cfg.FHIR_SMART_KEY_FILE || !cfg.FHIR_SMART_KEY_ID) {
          throw new Error('FHIR_EHR_AUTH=smart needs FHIR_SMART_CLIENT_ID, FHIR_SMART_KEY_FILE and FHIR_SMART_KEY_ID');
        }
        const smart = new SmartBackendAuth({
          fhirBaseUrl: base,
          clientId: cfg.FHIR_SMART_CLIENT_ID,
          privateKey: await SmartBackendAuth.loadKey(cfg.FHIR_SMART_KEY_FILE),
          keyId: cfg.FHIR_SMART_KEY_ID,
          alg: cfg.FHIR_SMART_ALG,
          scopes: cfg.FHIR_SMART_SCOPES,
          timeoutMs: cfg.FHIR_EHR_TIMEOUT_MS,
        });
        return new EhrClient(base, { kind: 'smart', smart }, opts);
      }
    }
  }

  /** The SMART client, when that is the auth in use. */
  get smart(): SmartBackendAuth | undefined {
    return this.auth.kind === 'smart' ? this.auth.smart : undefined;
  }

  private async kit(): Promise<FhirKitClient> {
    this.client ??= loadFhirKit().then(({ Client }) => {
      const auth = this.auth;
      return new Client({
        baseUrl: this.baseUrl,
        requestSigner: async (_url: string, init: RequestInit) => {
          const headers = init.headers as Headers;
          if (auth.kind === 'bearer') headers.set('authorization', `Bearer ${auth.token}`);
          else if (auth.kind === 'smart') headers.set('authorization', `Bearer ${await auth.smart.getToken()}`);
        },
      });
    });
    return this.client;
  }

  private async call<T>(fn: (c: FhirKitClient, options: RequestOptions) => Promise<unknown>): Promise<T> {
    const c = await this.kit();
    // One deadline per request, covering the SMART token it waits for, the answer and its body.
    const once = async (): Promise<T> => {
      const signal = AbortSignal.timeout(this.timeoutMs);
      try {
        // A redirect is not followed: fetch would send the request (a report, with a 307/308 its body) to
        // wherever the answer points, possibly another server. It answers as the error it is (see toEhrError).
        return (await fn(c, { signal, redirect: 'manual' })) as T;
      } catch (err) {
        if (signal.aborted) {
          throw new EhrHttpError(
            `the EHR did not answer within ${this.timeoutMs} ms (FHIR_EHR_TIMEOUT_MS)`,
            null,
            undefined,
            true,
          );
        }
        throw toEhrError(err);
      }
    };
    try {
      return await once();
    } catch (err) {
      const e = err as EhrHttpError;
      if (e.status !== 401 || this.auth.kind !== 'smart') throw e;
      this.auth.smart.invalidate();
      return once();
    }
  }

  async read<T extends Resource>(resourceType: T['resourceType'], id: string): Promise<T> {
    return this.call((c, options) => c.read({ resourceType, id, options }));
  }

  async search<T extends Resource>(
    resourceType: T['resourceType'],
    searchParams: Record<string, string | string[]>,
  ): Promise<Bundle<T>> {
    return this.call((c, options) => c.search({ resourceType, searchParams, options }));
  }

  /**
   * The next page of a search result, or undefined on the last page. A `next` link that leaves this
   * EHR's base URL is not followed (it would be sent our token): logged, and the search ends there.
   */
  async nextPage<T extends Resource>(bundle: Bundle<T>): Promise<Bundle<T> | undefined> {
    const link = bundle.link?.find((l) => l.relation === 'next')?.url;
    if (!link) return undefined;
    const base = this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`;
    const url = new URL(link, base);
    if (!url.href.startsWith(base)) {
      log.warn({ linkOrigin: url.origin }, "the EHR's next-page link leaves its base URL: not followed");
      return undefined;
    }
    return this.call(async (c, options) =>
      c.nextPage({ bundle: { ...bundle, link: [{ relation: 'next', url: url.href }] } as never, options }),
    );
  }

  async create<T extends Resource>(resource: T): Promise<T> {
    return this.call((c, options) =>
      c.create({ resourceType: resource.resourceType, body: resource as never, options }),
    );
  }

  /**
   * PUTs the resource. With `ifMatch` (the meta.versionId it was read at) the EHR refuses it (412) if the
   * resource has changed since, rather than overwriting that change.
   */
  async update<T extends Resource>(resource: T & { id: string }, opts: { ifMatch?: string } = {}): Promise<T> {
    return this.call((c, options) =>
      c.update({
        resourceType: resource.resourceType,
        id: resource.id,
        body: resource as never,
        options: opts.ifMatch ? { ...options, headers: { 'If-Match': `W/"${opts.ifMatch}"` } } : options,
      }),
    );
  }

  /**
   * POSTs a transaction Bundle. The body is returned as the EHR sent it (an empty body as `{}`), not
   * assumed to be a transaction-response: the caller checks (see checkTransactionResponse).
   */
  async transaction(bundle: Bundle): Promise<EhrAnswer> {
    const body = await this.call<object>((c, options) => c.transaction({ body: bundle as never, options }));
    // fhir-kit-client hangs the fetch Response on the result under a non-enumerable key.
    const res = (body as { __response?: Response }).__response;
    return { status: res?.status ?? 200, body };
  }

  /**
   * Reads a reference relative to the EHR base (`Patient/1`) or absolute under it. A reference to
   * another server is not followed. 404/410 give undefined.
   */
  async resolve(reference: string): Promise<Resource | undefined> {
    let rel = reference;
    const base = this.baseUrl.replace(/\/$/, '');
    if (/^https?:/i.test(reference)) {
      if (!reference.startsWith(base + '/')) return undefined;
      rel = reference.slice(base.length + 1);
    }
    const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(\/_history\/.*)?$/.exec(rel);
    if (!m) return undefined;
    try {
      return await this.read(m[1] as Resource['resourceType'], m[2]!);
    } catch (err) {
      if (err instanceof EhrHttpError && (err.status === 404 || err.status === 410)) return undefined;
      throw err;
    }
  }
}

/** fhir-kit-client throws `{response: {status, data}}`; network errors have no response. */
export function toEhrError(err: unknown): EhrHttpError {
  if (err instanceof EhrHttpError) return err;
  if (err instanceof SmartAuthError) return new EhrHttpError(err.message, err.status ?? null, undefined);
  const e = err as {
    message?: string;
    response?: { status?: number; data?: unknown };
    config?: { headers?: Headers };
  };
  const status = e?.response?.status ?? null;
  const data = e?.response?.data;
  // A throttled or unavailable EHR may say when to come back; retrying sooner only meets another refusal.
  const retryAfterMs =
    status === 429 || status === 503
      ? parseRetryAfter(e.config?.headers?.get?.('retry-after') ?? undefined)
      : undefined;
  if (status !== null && status >= 300 && status < 400) {
    // Not followed (see EhrClient.call): named, so FHIR_EHR_BASE_URL can be set to where the EHR serves.
    const location = e.config?.headers?.get?.('location');
    let to = 'elsewhere';
    try {
      if (location) to = new URL(location).origin;
    } catch {
      // a relative or broken Location: "elsewhere"
    }
    return new EhrHttpError(
      `the EHR answered HTTP ${status}, a redirect to ${to}: not followed (set FHIR_EHR_BASE_URL to where the EHR serves)`,
      status,
      undefined,
    );
  }
  if (status !== null && typeof data === 'string') {
    // fhir-kit-client keeps a body it could not parse as text (an HTML error or login page, ...).
    const type = e.config?.headers?.get?.('content-type') ?? 'no content-type';
    return new EhrHttpError(
      `the EHR answered HTTP ${status} with a body that is not JSON (${type})`,
      status,
      data,
      false,
      retryAfterMs,
    );
  }
  return new EhrHttpError(e?.message ?? String(err), status, data, false, retryAfterMs);
}

/**
 * What the EHR said about an error it answered: its OperationOutcome's issues as one line (`code: diagnostics`),
 * '' when its body is none. The EHR's own words may name the patient: kept on the delivery row, never logged.
 */
export function ehrOutcomeText(err: EhrHttpError): string {
  const body = err.body as { resourceType?: unknown } | null | undefined;
  return body && typeof body === 'object' && body.resourceType === 'OperationOutcome'
    ? outcomeText(body as OperationOutcome)
    : '';
}
