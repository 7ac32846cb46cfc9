import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getStatus, matchesSearchRequest, parseSearchRequest } from '@medplum/core';
import { FhirRouter, MemoryRepository, type FhirRequest, type HttpMethod } from '@medplum/fhir-router';
import type {
  Bundle,
  BundleLink,
  Extension,
  OperationOutcome,
  Parameters,
  Resource,
  Subscription,
} from '@medplum/fhirtypes';
import { decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import { loadMedplumDefinitions } from './medplum-definitions';

/** How the server delivers rest-hook notifications for a Subscription that is not Backport-profiled. */
export type RestHookStyle = 'medplum' | 'hapi';

export const BACKPORT_PROFILE =
  'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription';
const BACKPORT_PAYLOAD_EXT =
  'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content';
const MEDPLUM_SECRET_EXT = 'https://www.medplum.com/fhir/StructureDefinition/subscription-secret';

export interface SmartClientRegistration {
  clientId: string;
  /** Public keys the client signs its assertions with (with `kid` and `alg`). */
  jwks: JWK[];
  /** Scopes the client may be granted. Default: any requested. */
  allowedScopes?: string[];
}

export interface TestFhirServerOptions {
  /** `none` (default), a static bearer token, or SMART Backend Services with these clients. */
  auth?:
    | { kind: 'none' }
    | { kind: 'bearer'; token: string }
    | { kind: 'smart'; clients: SmartClientRegistration[]; expiresIn?: number };
  /** Style for plain rest-hook subscriptions (default `medplum`). */
  restHookStyle?: RestHookStyle;
}

/** One notification the server sent. */
export interface HookDelivery {
  subscriptionId: string;
  style: 'empty' | 'medplum' | 'hapi' | 'backport';
  kind?: 'handshake' | 'heartbeat' | 'event-notification';
  eventNumber?: number;
  url: string;
  method: string;
  status: number | null;
  error?: string;
  /** The body sent (string), for replaying. */
  body?: string;
  headers: Record<string, string>;
}

/** A write the server handled (for assertions on what the client sent). */
export interface LoggedRequest {
  method: string;
  path: string;
  status: number;
  authorization?: string;
  /** When the request arrived (ms since the epoch). */
  at: number;
}

/**
 * A stand-in EHR for tests: @medplum/fhir-router's MemoryRepository behind node:http (create, read,
 * search, conditional create/update, transactions with urn:uuid references), a `/metadata` of its own,
 * a SMART Backend Services token endpoint (client_credentials + private_key_jwt, verified with jose),
 * and rest-hook delivery after writes: Medplum style (POST the resource, X-Signature), HAPI style
 * (PUT {endpoint}/{type}/{id}), empty POST (no payload) and R4 Backport notification Bundles with
 * event numbers, handshake and heartbeat.
 */
export class TestFhirServer {
  readonly repo = new MemoryRepository();
  private readonly router = new FhirRouter();
  private server!: Server;
  baseUrl = '';
  /** Access tokens issued (SMART), newest last. */
  readonly tokensIssued: Array<{ token: string; clientId: string; scope: string; expiresIn: number }> = [];
  readonly requests: LoggedRequest[] = [];
  readonly hookDeliveries: HookDelivery[] = [];
  private readonly validTokens = new Map<string, number>();
  private readonly usedJtis = new Set<string>();
  private readonly eventCounters = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();
  /** Next N FHIR writes are processed, then answered 500 (a response lost after commit). */
  failAfterCommit = 0;
  /** Next N FHIR requests are answered 503 without processing. */
  failBeforeProcessing = 0;
  private readonly rejections: Array<{ status: number; code: string; diagnostics: string }> = [];
  /** Run before the next PUT of a resource of that type is processed (a concurrent edit, say). */
  private readonly updateHooks = new Map<string, (id: string) => Promise<void>>();
  private readonly transactionAnswers: Array<{
    status: number;
    body: string;
    contentType: string;
    headers: Record<string, string>;
  }> = [];
  /** Changes the next processed transaction's response before it is sent (see {@link editNextTransactionResponse}). */
  private readonly transactionResponseEdits: Array<(b: Bundle) => Bundle> = [];
  /** Token endpoint `expires_in` (seconds), changeable between tests. */
  tokenExpiresIn: number;
  /** Style for plain rest-hook subscriptions, changeable between tests. */
  restHookStyle: RestHookStyle;

  private constructor(private readonly opts: TestFhirServerOptions) {
    this.tokenExpiresIn = opts.auth?.kind === 'smart' ? (opts.auth.expiresIn ?? 300) : 300;
    this.restHookStyle = opts.restHookStyle ?? 'medplum';
  }

  static async start(opts: TestFhirServerOptions = {}): Promise<TestFhirServer> {
    loadMedplumDefinitions();
    const s = new TestFhirServer(opts);
    s.server = createServer((req, res) => {
      s.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) s.send(res, 500, outcome('exception', String((err as Error)?.message ?? err)));
      });
    });
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    const port = (s.server.address() as AddressInfo).port;
    s.baseUrl = `http://127.0.0.1:${port}/fhir/R4`;
    return s;
  }

  get tokenUrl(): string {
    return this.baseUrl.replace(/\/fhir\/R4$/, '/auth/token');
  }

  async close(): Promise<void> {
    await this.settled();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Waits for every rest-hook delivery started so far. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /**
   * Before the next `PUT {type}/{id}` is processed, `edit(id)` runs: someone else changing the resource
   * between the client's read and its update (its If-Match, if any, then no longer matches).
   */
  onNextUpdate(resourceType: string, edit: (id: string) => Promise<void>): void {
    this.updateHooks.set(resourceType, edit);
  }

  /** The next write is refused, unprocessed, with this status and an OperationOutcome. */
  rejectNextWrite(status: number, diagnostics: string, code = 'business-rule'): void {
    this.rejections.push({ status, code, diagnostics });
  }

  /**
   * The next transaction/batch POST (to the base URL) is answered with this status and body, unprocessed:
   * an object is sent as JSON, a string as is (HTML, garbage, '' for an empty body); `headers` go along
   * (e.g. `retry-after` with a 429).
   */
  answerNextTransaction(
    status: number,
    body: unknown,
    contentType = 'application/fhir+json',
    headers: Record<string, string> = {},
  ): void {
    this.transactionAnswers.push({
      status,
      body: typeof body === 'string' ? body : JSON.stringify(body),
      contentType,
      headers,
    });
  }

  /**
   * The next transaction/batch POST is processed as usual (everything is written), but its response Bundle
   * goes through `edit` first: an EHR whose answer leaves out locations or resources, say.
   */
  editNextTransactionResponse(edit: (response: Bundle) => Bundle): void {
    this.transactionResponseEdits.push(edit);
  }

  /** Invalidate every access token issued (the next FHIR call with one gets 401). */
  revokeTokens(): void {
    this.validTokens.clear();
  }

  /** Creates a resource as if another user wrote it in the EHR (fires subscriptions). */
  async create<T extends Resource>(resource: T): Promise<T & { id: string }> {
    const saved = await this.repo.createResource(resource);
    this.afterWrite([saved]);
    return saved as T & { id: string };
  }

  async update<T extends Resource>(resource: T & { id: string }): Promise<T & { id: string }> {
    const saved = await this.repo.updateResource(resource);
    this.afterWrite([saved]);
    return saved as T & { id: string };
  }

  async search<T extends Resource>(resourceType: T['resourceType'], query: Record<string, string> = {}): Promise<T[]> {
    const bundle = await this.repo.search(parseSearchRequest(resourceType, query));
    return (bundle.entry ?? []).map((e) => e.resource as T);
  }

  /** Sends a Backport heartbeat for a subscription. */
  async sendHeartbeat(subscriptionId: string): Promise<HookDelivery> {
    const sub = await this.repo.readResource<Subscription>('Subscription', subscriptionId);
    return this.deliverBackport(sub, 'heartbeat', []);
  }

  /** Sends a delivery again, byte for byte (a duplicate notification). */
  async replay(delivery: HookDelivery): Promise<HookDelivery> {
    return this.send_(
      delivery.subscriptionId,
      delivery.style,
      delivery.url,
      delivery.method,
      delivery.body,
      delivery.headers,
      delivery,
    );
  }

  /** Skips event numbers for a Backport subscription (the next event arrives after a gap). */
  skipEvents(subscriptionId: string, n: number): void {
    this.eventCounters.set(subscriptionId, (this.eventCounters.get(subscriptionId) ?? 0) + n);
  }

  // ---- HTTP ------------------------------------------------------------------------------------

  private send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  }

  private async readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const text = await this.readBody(req);
    if (url.pathname === '/auth/token' && req.method === 'POST') return this.token(text, res);
    if (!url.pathname.startsWith('/fhir/R4')) return this.send(res, 404, outcome('not-found', 'Not found'));
    const path = url.pathname.slice('/fhir/R4'.length) || '/';
    if (path === '/.well-known/smart-configuration') {
      return this.send(res, 200, {
        token_endpoint: this.tokenUrl,
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
        token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
        grant_types_supported: ['client_credentials'],
        scopes_supported: ['system/*.read', 'system/*.write'],
        capabilities: ['client-confidential-asymmetric'],
      });
    }
    if (path === '/metadata') return this.send(res, 200, this.capabilityStatement());

    const authz = req.headers.authorization;
    if (!this.authorized(authz)) {
      this.requests.push({ method: req.method ?? 'GET', path, status: 401, authorization: authz, at: Date.now() });
      return this.send(res, 401, outcome('login', 'Unauthorized'), { 'www-authenticate': 'Bearer' });
    }
    if (this.failBeforeProcessing > 0) {
      this.failBeforeProcessing--;
      this.requests.push({ method: req.method ?? 'GET', path, status: 503, authorization: authz, at: Date.now() });
      return this.send(res, 503, outcome('transient', 'Service temporarily unavailable'));
    }
    const rejection = req.method !== 'GET' ? this.rejections.shift() : undefined;
    if (rejection) {
      this.requests.push({
        method: req.method ?? 'GET',
        path,
        status: rejection.status,
        authorization: authz,
        at: Date.now(),
      });
      return this.send(res, rejection.status, outcome(rejection.code, rejection.diagnostics));
    }

    const put = req.method === 'PUT' ? /^\/([A-Za-z]+)\/([^/?]+)$/.exec(path) : null;
    const hook = put ? this.updateHooks.get(put[1]!) : undefined;
    if (put && hook) {
      this.updateHooks.delete(put[1]!);
      await hook(put[2]!);
    }
    const canned = req.method === 'POST' && path === '/' ? this.transactionAnswers.shift() : undefined;
    if (canned) {
      this.requests.push({ method: 'POST', path, status: canned.status, authorization: authz, at: Date.now() });
      res.writeHead(canned.status, { ...canned.headers, 'content-type': canned.contentType });
      res.end(canned.body);
      return;
    }

    const query: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const fhirReq: FhirRequest = {
      method: (req.method ?? 'GET') as HttpMethod,
      url: path + url.search,
      pathname: '',
      body: text ? JSON.parse(text) : undefined,
      params: {},
      query,
      headers: req.headers,
    };
    delete (fhirReq as Partial<FhirRequest>).pathname;
    const [oc, answered] = await this.router.handleRequest(fhirReq, this.repo);
    let resource = answered;
    const editResponse =
      req.method === 'POST' && path === '/' && resource?.resourceType === 'Bundle'
        ? this.transactionResponseEdits.shift()
        : undefined;
    let status = getStatus(oc);
    const write = req.method !== 'GET' && req.method !== 'HEAD' && status < 400;
    if (write) this.afterWrite(writtenBy(resource));
    if (editResponse) resource = editResponse(structuredClone(resource as Bundle));
    if (write && this.failAfterCommit > 0) {
      this.failAfterCommit--;
      status = 500;
      this.requests.push({ method: req.method ?? 'GET', path, status, authorization: authz, at: Date.now() });
      return this.send(res, 500, outcome('exception', 'Lost the response after commit'));
    }
    this.requests.push({ method: req.method ?? 'GET', path, status, authorization: authz, at: Date.now() });
    if (req.method === 'GET' && status === 200) this.addPageLinks(resource, path, url);
    const headers: Record<string, string> = {};
    if (status === 201 && resource?.id) headers.location = `${this.baseUrl}/${resource.resourceType}/${resource.id}`;
    this.send(res, status, resource ?? oc, headers);
  }

  /**
   * Paging links on a search result, as real FHIR servers give them (the in-memory repository gives none):
   * `self`, and `next` (absolute, under the base URL, with `_offset`) while more matches remain.
   */
  private addPageLinks(resource: Resource | undefined, path: string, url: URL): void {
    const bundle = resource as Bundle | undefined;
    if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'searchset') return;
    const count = Number(url.searchParams.get('_count') ?? 20);
    const offset = Number(url.searchParams.get('_offset') ?? 0);
    const links: BundleLink[] = [{ relation: 'self', url: `${this.baseUrl}${path}${url.search}` }];
    if (bundle.total !== undefined && offset + count < bundle.total) {
      const next = new URLSearchParams(url.searchParams);
      next.set('_offset', String(offset + count));
      links.push({ relation: 'next', url: `${this.baseUrl}${path}?${next.toString()}` });
    }
    bundle.link = links;
  }

  private authorized(header: string | undefined): boolean {
    const auth = this.opts.auth ?? { kind: 'none' };
    if (auth.kind === 'none') return true;
    const token = /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1];
    if (!token) return false;
    if (auth.kind === 'bearer') return token === auth.token;
    const exp = this.validTokens.get(token);
    return exp !== undefined && exp > Date.now();
  }

  private async token(text: string, res: ServerResponse): Promise<void> {
    const auth = this.opts.auth;
    if (auth?.kind !== 'smart') return this.send(res, 404, { error: 'not_found' });
    const form = new URLSearchParams(text);
    const fail = (error: string, description: string) =>
      this.send(
        res,
        error === 'invalid_client' ? 401 : 400,
        { error, error_description: description },
        { 'content-type': 'application/json' },
      );
    if (form.get('grant_type') !== 'client_credentials')
      return fail('unsupported_grant_type', 'client_credentials only');
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
      return fail('invalid_client', 'client_assertion_type must be jwt-bearer');
    }
    const assertion = form.get('client_assertion') ?? '';
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(assertion);
    } catch {
      return fail('invalid_client', 'malformed client_assertion');
    }
    if (header.alg !== 'RS384' && header.alg !== 'ES384') return fail('invalid_client', 'alg must be RS384 or ES384');
    if (!header.kid) return fail('invalid_client', 'kid is required');
    for (const client of auth.clients) {
      const jwk = client.jwks.find((k) => k.kid === header.kid);
      if (!jwk) continue;
      try {
        const key = await importJWK(jwk, header.alg);
        const { payload } = await jwtVerify(assertion, key, {
          issuer: client.clientId,
          subject: client.clientId,
          audience: this.tokenUrl,
          algorithms: [header.alg],
        });
        if (!payload.jti || this.usedJtis.has(payload.jti)) return fail('invalid_client', 'jti missing or reused');
        this.usedJtis.add(payload.jti);
      } catch (err) {
        return fail('invalid_client', (err as Error).message);
      }
      const requested = (form.get('scope') ?? '').split(/\s+/).filter(Boolean);
      const granted = client.allowedScopes ? requested.filter((s) => client.allowedScopes!.includes(s)) : requested;
      if (granted.length === 0 || granted.some((s) => !s.startsWith('system/'))) {
        return fail('invalid_scope', 'system/ scopes required');
      }
      const token = randomBytes(24).toString('base64url');
      this.validTokens.set(token, Date.now() + this.tokenExpiresIn * 1000);
      this.tokensIssued.push({
        token,
        clientId: client.clientId,
        scope: granted.join(' '),
        expiresIn: this.tokenExpiresIn,
      });
      return this.send(
        res,
        200,
        { access_token: token, token_type: 'bearer', expires_in: this.tokenExpiresIn, scope: granted.join(' ') },
        { 'content-type': 'application/json', 'cache-control': 'no-store' },
      );
    }
    return fail('invalid_client', 'unknown kid');
  }

  private capabilityStatement() {
    const smart =
      this.opts.auth?.kind === 'smart'
        ? {
            security: {
              service: [
                {
                  coding: [
                    { system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' },
                  ],
                },
              ],
              extension: [
                {
                  url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
                  extension: [{ url: 'token', valueUri: this.tokenUrl }],
                },
              ],
            },
          }
        : {};
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: new Date().toISOString(),
      kind: 'instance',
      fhirVersion: '4.0.1',
      format: ['json'],
      software: { name: 'hemato-bridge test EHR (@medplum/fhir-router MemoryRepository)' },
      rest: [{ mode: 'server', ...smart, interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
    };
  }

  // ---- subscriptions ---------------------------------------------------------------------------

  private afterWrite(resources: Resource[]): void {
    const p = this.notify(resources).catch(() => undefined);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async notify(resources: Resource[]): Promise<void> {
    for (const r of resources) {
      if (r.resourceType === 'Subscription') {
        await this.activate(r as Subscription & { id: string });
        continue;
      }
      const subs = await this.repo.searchResources<Subscription>(
        parseSearchRequest('Subscription', { status: 'active' }),
      );
      for (const sub of subs) {
        if (sub.channel?.type !== 'rest-hook' || !sub.channel.endpoint || !sub.criteria) continue;
        const [type] = sub.criteria.split('?');
        if (type !== r.resourceType) continue;
        if (!matchesSearchRequest(r, parseSearchRequest(sub.criteria))) continue;
        await this.deliver(sub, r);
      }
    }
  }

  private isBackport(sub: Subscription): boolean {
    return (sub.meta?.profile ?? []).includes(BACKPORT_PROFILE);
  }

  private async activate(sub: Subscription & { id: string }): Promise<void> {
    if (sub.status !== 'requested') return;
    let status: Subscription['status'] = 'active';
    if (this.isBackport(sub)) {
      const d = await this.deliverBackport(sub, 'handshake', []);
      if (d.status === null || d.status >= 300) status = 'error';
    }
    await this.repo.updateResource({ ...sub, status });
  }

  private headersOf(sub: Subscription): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const h of sub.channel?.header ?? []) {
      const i = h.indexOf(':');
      if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    return headers;
  }

  private async deliver(sub: Subscription & { id?: string }, r: Resource): Promise<void> {
    const endpoint = sub.channel!.endpoint!;
    const headers = this.headersOf(sub);
    if (this.isBackport(sub)) {
      await this.deliverBackport(sub, 'event-notification', [r]);
      return;
    }
    if (!sub.channel?.payload) {
      await this.send_(sub.id!, 'empty', endpoint, 'POST', undefined, headers);
      return;
    }
    const body = JSON.stringify(r);
    headers['content-type'] = 'application/fhir+json';
    if (this.restHookStyle === 'hapi') {
      await this.send_(
        sub.id!,
        'hapi',
        `${endpoint.replace(/\/$/, '')}/${r.resourceType}/${r.id}`,
        'PUT',
        body,
        headers,
      );
      return;
    }
    const secret = sub.extension?.find((e) => e.url === MEDPLUM_SECRET_EXT)?.valueString;
    if (secret) headers['x-signature'] = createHmac('sha256', secret).update(body).digest('hex');
    await this.send_(sub.id!, 'medplum', endpoint, 'POST', body, headers);
  }

  private async deliverBackport(
    sub: Subscription,
    kind: 'handshake' | 'heartbeat' | 'event-notification',
    focus: Resource[],
  ): Promise<HookDelivery> {
    const payload =
      sub.channel?.extension?.find((e) => e.url === BACKPORT_PAYLOAD_EXT)?.valueCode ??
      (sub.channel as { _payload?: { extension?: Extension[] } } | undefined)?._payload?.extension?.find(
        (e) => e.url === BACKPORT_PAYLOAD_EXT,
      )?.valueCode ??
      'id-only';
    let count = this.eventCounters.get(sub.id!) ?? 0;
    const events: Array<{ n: number; r: Resource }> = [];
    if (kind === 'event-notification') for (const r of focus) events.push({ n: ++count, r });
    this.eventCounters.set(sub.id!, count);
    const params: Parameters = {
      resourceType: 'Parameters',
      meta: {
        profile: ['http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4'],
      },
      parameter: [
        { name: 'subscription', valueReference: { reference: `${this.baseUrl}/Subscription/${sub.id}` } },
        { name: 'topic', valueCanonical: 'http://hemato-bridge.test/SubscriptionTopic/service-request' },
        { name: 'status', valueCode: 'active' },
        { name: 'type', valueCode: kind },
        { name: 'events-since-subscription-start', valueString: String(count) },
        ...events.map((e) => ({
          name: 'notification-event',
          part: [
            { name: 'event-number', valueString: String(e.n) },
            { name: 'timestamp', valueInstant: new Date().toISOString() },
            ...(payload === 'empty'
              ? []
              : [{ name: 'focus', valueReference: { reference: `${this.baseUrl}/${e.r.resourceType}/${e.r.id}` } }]),
          ],
        })),
      ],
    };
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'history',
      timestamp: new Date().toISOString(),
      entry: [
        {
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: params,
          request: { method: 'GET', url: `Subscription/${sub.id}/$status` },
          response: { status: '200' },
        },
        ...(payload === 'full-resource'
          ? events.map((e) => ({
              fullUrl: `${this.baseUrl}/${e.r.resourceType}/${e.r.id}`,
              resource: e.r,
              request: { method: 'PUT' as const, url: `${e.r.resourceType}/${e.r.id}` },
              response: { status: '200' },
            }))
          : []),
      ],
    };
    const headers = { ...this.headersOf(sub), 'content-type': 'application/fhir+json' };
    const d = await this.send_(sub.id!, 'backport', sub.channel!.endpoint!, 'POST', JSON.stringify(bundle), headers);
    d.kind = kind;
    d.eventNumber = events.at(-1)?.n;
    return d;
  }

  private async send_(
    subscriptionId: string,
    style: HookDelivery['style'],
    url: string,
    method: string,
    body: string | undefined,
    headers: Record<string, string>,
    like?: HookDelivery,
  ): Promise<HookDelivery> {
    const d: HookDelivery = {
      subscriptionId,
      style,
      url,
      method,
      body,
      headers,
      status: null,
      kind: like?.kind,
      eventNumber: like?.eventNumber,
    };
    try {
      const res = await fetch(url, { method, headers, body });
      await res.arrayBuffer();
      d.status = res.status;
    } catch (err) {
      d.error = (err as Error).message;
    }
    this.hookDeliveries.push(d);
    return d;
  }
}

function outcome(code: string, diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: code as never, diagnostics }] };
}

/** The resources a write produced: the resource itself, or a transaction/batch response's entries. */
function writtenBy(resource: Resource | undefined): Resource[] {
  if (!resource) return [];
  if (resource.resourceType === 'Bundle' && /-response$/.test((resource as Bundle).type ?? '')) {
    return ((resource as Bundle).entry ?? []).map((e) => e.resource).filter((r): r is Resource => !!r);
  }
  return [resource];
}
