import { Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { Pool, type Dispatcher } from 'undici';
import { createLogger, parseRetryAfter, type Logger } from '@hemato/common';
import {
  type CreateStudyRequest,
  type CreateStudyResults,
  type Heartbeat,
  type ListStudiesResults,
  type HematoEnvelope,
  type HematoRegion,
  type LoginRequest,
  type LoginResults,
  type ReportResults,
  type RequestTasksRequest,
  type RequestTasksResults,
  type StatusResults,
  type SubmitListRequest,
  type UploadFileResults,
} from './contract';
import { KeyAuth, SessionAuth, type HematoAuthOptions, type HematoAuthProvider } from './auth';
import { HematoApiError } from './errors';

/** Moved to @hemato/common (the EHR client needs it too); still exported here for this lib's users. */
export { parseRetryAfter };
import { assertSecureUrl, resolveEndpoint, type HematoEndpoint } from './regions';
import {
  parseHeartbeat,
  parseListStudy,
  parseLogin,
  parseReport,
  parseStatus,
  parseStudies,
  parseStudy,
  parseTasks,
  parseUpload,
  serviceText,
  type HematoHeartbeat,
  type HematoHello,
  type HematoListStudy,
  type HematoLoginInfo,
  type HematoReport,
  type HematoStudy,
  type HematoStudyStatus,
  type HematoStudySummary,
  type HematoTasks,
  type HematoUploadedFile,
} from './results';
import { prepareUpload, type HematoFileTypeInput, type HematoUploadSource, type PreparedUpload } from './upload-source';

const LOGIN_PATH = '/auth/login';

/** Retry policy for idempotent calls. */
export interface HematoRetryOptions {
  /** Retries after the first attempt (default 3, so at most 4 attempts). 0 disables retries. */
  retries?: number;
  /** First backoff step (default 250 ms); doubles each retry, with jitter. */
  baseDelayMs?: number;
  /** Cap of one backoff step (default 10 s). */
  maxDelayMs?: number;
  /** A `Retry-After` longer than this is not waited for: the call fails with `retryAfterMs` set (default 60 s). */
  maxRetryAfterMs?: number;
}

/** What the `beforeRequest` hook sees of an outgoing call. Never the token. */
export interface HematoRequestInfo {
  method: 'GET' | 'POST';
  /** Path relative to the base URL, without the query string, e.g. `/pbs/<id>/files`. */
  path: string;
  /** Full URL including the query string. */
  url: string;
  /** Headers to be sent, without `authorization`. */
  headers: Record<string, string>;
  /** The JSON body, for JSON calls. Uploads stream bytes and carry none. */
  jsonBody?: unknown;
  /** The study tags, for `createStudy`. */
  tags?: Record<string, string>;
}

/** Passed to `onRetry` before the client waits and tries again. */
export interface HematoRetryEvent {
  method: string;
  path: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  /** How long the client waits before the next attempt. */
  delayMs: number;
  reason: 'network' | 'timeout' | 'status';
  status?: number;
  /** The server's Retry-After, when it sent one. */
  retryAfterMs?: number;
}

/** Options of {@link HematoClient}. */
export interface HematoClientOptions {
  /** `dev|qa|us|ca|eu` (or `DEV|QA|USA|Canada|EU`); fixes the JWT audience. Default `dev`. */
  region?: HematoRegion | string;
  /** Custom base URL (the sandbox, a proxy); wins over `region` for where calls go. */
  baseUrl?: string;
  /** JWT `aud`; default the region host (`us.api.hemato.ai`), else the base URL host. */
  audience?: string;
  /**
   * Allow plain `http://` to a non-loopback host (a closed network such as Compose with the sandbox).
   * Off by default: Hemato.AI is TLS-only and the client refuses such URLs.
   */
  allowInsecureHttp?: boolean;
  /** Session or key authentication. */
  auth: HematoAuthOptions;
  /** Per-attempt timeout of every call but uploads (default 30 s). */
  timeoutMs?: number;
  /** Per-attempt timeout of a file upload (default 10 min). */
  uploadTimeoutMs?: number;
  retry?: HematoRetryOptions;
  /**
   * Runs before each call is sent (once per call, not per retry). Throwing refuses the call: nothing
   * is sent and the hook's error reaches the caller unchanged. The order lifecycle's PHI guard.
   * Not called for the login itself (credentials, no study data).
   */
  beforeRequest?: (info: HematoRequestInfo) => void | Promise<void>;
  /** Observes retries (metrics, tests). */
  onRetry?: (event: HematoRetryEvent) => void;
  /** Keep-alive connections to the API host (default 8). */
  connections?: number;
  /** Idle keep-alive time of a connection (default 30 s). */
  keepAliveTimeoutMs?: number;
  /** TLS options for the connection (e.g. `ca` for a private CA). */
  tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;
  /** Use this undici dispatcher instead of the client's own pool (the client then does not close it). */
  dispatcher?: Dispatcher;
  /** Logger (default `createLogger('hemato-client')`). Lines carry method, path, status, never bodies. */
  logger?: Logger;
  /** `User-Agent` header (default `hemato-bridge`). */
  userAgent?: string;
  /**
   * After Hemato.AI refused our credentials at login, how long every further login is refused here
   * without asking it again (default 10 min): a burst of orders must not become a burst of wrong logins
   * that locks the account. New credentials (`login(user, password)`) or a restart end the hold.
   */
  loginRefusalHoldMs?: number;
}

/** Per-call overrides. */
export interface HematoCallOptions {
  /** Aborts the call (including waits between retries). */
  signal?: AbortSignal;
  /** Per-attempt timeout of this call. */
  timeoutMs?: number;
}

interface CallSpec {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string>;
  json?: unknown;
  upload?: PreparedUpload;
  idempotent: boolean;
  auth: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
  tags?: Record<string, string>;
  /** `/heartbeat` is not wrapped in the envelope. */
  bare?: boolean;
  /** Statuses returned to the caller instead of thrown (hello). */
  accept?: (status: number) => boolean;
  /** Skip the `beforeRequest` hook (login). */
  skipHook?: boolean;
}

interface CallResult {
  status: number;
  body: unknown;
  envelope: HematoEnvelope<unknown>;
  attempts: number;
  /** What the last attempt streamed, for uploads. */
  uploaded?: { fileId: string; bytes: number };
}

/** Network error codes after which the request provably never reached the server. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

function encodeId(id: string, what: string): string {
  if (typeof id !== 'string' || id.trim() === '') {
    throw new HematoApiError({ kind: 'invalid_argument', message: `${what} is required` });
  }
  return encodeURIComponent(id);
}

function assertTasks(tasks: string[]): void {
  if (!Array.isArray(tasks) || tasks.length === 0 || tasks.some((t) => typeof t !== 'string' || t.trim() === '')) {
    throw new HematoApiError({ kind: 'invalid_argument', message: 'at least one diagnostic task is required' });
  }
}

/** Study tags are string pairs (the reference); anything else is refused before a call is made. */
function assertTags(tags: Record<string, string> | undefined): void {
  if (tags === undefined) return;
  for (const [k, v] of Object.entries(tags)) {
    if (typeof v !== 'string') {
      throw new HematoApiError({ kind: 'invalid_argument', message: `tag "${k}" must be a string` });
    }
  }
}

/**
 * Typed client for the Hemato.AI Diagnostic API (`shared/spec/hemato-ai-api.md`): both auth methods,
 * every endpoint, streamed uploads checked by content hash, retries for idempotent calls.
 *
 * ```ts
 * const hemato = new HematoClient({ region: 'eu', auth: { method: 'key', privateKey, keyId, issuer, subject } });
 * const { studyId } = await hemato.createStudy({ patient_proxy_id: proxyId });
 * await hemato.uploadFile(studyId, '/images/smear-1.jpg', 'image/jpeg');
 * await hemato.requestTasks(studyId, ['pbs_v1'], callbackUrl);
 * ```
 */
export class HematoClient {
  /** Where calls go and the JWT audience. */
  readonly endpoint: HematoEndpoint;
  private auth: HematoAuthProvider;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly uploadTimeoutMs: number;
  private readonly retry: Required<HematoRetryOptions>;
  private lastLogin?: HematoLoginInfo;
  /** The last login refusal (see `loginRefusalHoldMs`). */
  private loginRefused?: { at: number; error: HematoApiError };

  constructor(private readonly options: HematoClientOptions) {
    this.endpoint = resolveEndpoint(options);
    this.auth = this.makeAuth(options.auth);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.uploadTimeoutMs = options.uploadTimeoutMs ?? 600_000;
    this.retry = {
      retries: options.retry?.retries ?? 3,
      baseDelayMs: options.retry?.baseDelayMs ?? 250,
      maxDelayMs: options.retry?.maxDelayMs ?? 10_000,
      maxRetryAfterMs: options.retry?.maxRetryAfterMs ?? 60_000,
    };
    this.log = options.logger ?? createLogger('hemato-client');
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher =
      options.dispatcher ??
      new Pool(this.endpoint.origin, {
        connections: options.connections ?? 8,
        pipelining: 1,
        keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
        keepAliveMaxTimeout: Math.max(options.keepAliveTimeoutMs ?? 30_000, 60_000),
        connect: options.tls ? { ...options.tls } : undefined,
      });
  }

  /** The auth method in use. */
  get authMethod(): 'session' | 'key' {
    return this.auth.method;
  }

  /** The user of the last session login, if any. */
  get loginInfo(): HematoLoginInfo | undefined {
    return this.lastLogin;
  }

  private makeAuth(auth: HematoAuthOptions): HematoAuthProvider {
    switch (auth.method) {
      case 'session':
        return new SessionAuth(auth, (user, passHash) => this.loginCall(user, passHash));
      case 'key':
        return new KeyAuth(auth, this.endpoint.audience);
    }
  }

  /**
   * Session auth: logs in now (`POST /auth/login`, sending only the sha256 of the password) and keeps
   * the token for later calls. With `user` and `password`, these replace the configured credentials.
   * Other calls log in by themselves when needed; this is for checking credentials up front.
   */
  async login(user?: string, password?: string): Promise<HematoLoginInfo> {
    if (user !== undefined) {
      this.auth = this.makeAuth({ method: 'session', user, password });
      this.loginRefused = undefined;
    }
    if (!(this.auth instanceof SessionAuth)) {
      throw new HematoApiError({ kind: 'config', message: 'login() needs session auth' });
    }
    await this.auth.loginNow();
    return this.lastLogin!;
  }

  private async loginCall(user: string, passHash: string): Promise<string> {
    const held = this.loginRefused;
    const holdMs = this.options.loginRefusalHoldMs ?? 10 * 60_000;
    if (held && Date.now() - held.at < holdMs) {
      const e = held.error;
      throw new HematoApiError({
        kind: e.kind,
        status: e.status,
        error: e.error,
        user_message: e.user_message,
        method: e.method,
        path: e.path,
        retryable: false,
        authRefused: true,
        attempts: 0,
        message: `${e.message} (at ${new Date(held.at).toISOString()}; no new login is tried for ${Math.round(holdMs / 1000)} s after a refusal)`,
      });
    }
    const body: LoginRequest = { user, pass_hash: passHash };
    let res: Awaited<ReturnType<HematoClient['call']>>;
    try {
      res = await this.call({
        method: 'POST',
        path: LOGIN_PATH,
        json: body,
        idempotent: true,
        auth: false,
        skipHook: true,
        timeoutMs: this.timeoutMs,
      });
    } catch (err) {
      if (err instanceof HematoApiError && err.authRefused) {
        this.loginRefused = { at: Date.now(), error: err };
        this.log.warn({ status: err.status }, 'Hemato.AI refused our credentials: no login is tried again for a while');
      }
      throw err;
    }
    this.loginRefused = undefined;
    const results = res.envelope.results as LoginResults | undefined;
    const token = results?.token?.HY_APP_AUTH_v1;
    if (typeof token !== 'string' || token === '') {
      throw new HematoApiError({
        kind: 'invalid_response',
        message: 'Hemato.AI login answer without results.token.HY_APP_AUTH_v1',
        status: res.status,
        method: 'POST',
        path: '/auth/login',
      });
    }
    this.lastLogin = parseLogin(results);
    this.log.debug({ version: res.envelope.debug_info?.version, delta: res.envelope.debug_info?.delta }, 'logged in');
    return token;
  }

  /**
   * `POST /auth/hello` with the current token (logging in or signing one first): what the service says
   * about it. Never throws for a rejected token (`accepted: false` with the reason); no re-login.
   */
  async hello(opts: HematoCallOptions = {}): Promise<HematoHello> {
    const res = await this.call({
      method: 'POST',
      path: '/auth/hello',
      idempotent: true,
      auth: true,
      accept: (s) => s === 401 || s === 403,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    return {
      accepted: res.status >= 200 && res.status < 300,
      status: res.status,
      error: serviceText(res.envelope.error),
      userMessage: serviceText(res.envelope.user_message),
      results: res.envelope.results,
      debugInfo: res.envelope.debug_info,
    };
  }

  /** `GET /heartbeat` (no auth, no envelope). */
  async heartbeat(opts: HematoCallOptions = {}): Promise<HematoHeartbeat> {
    const res = await this.call({
      method: 'GET',
      path: '/heartbeat',
      idempotent: true,
      auth: false,
      bare: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    return parseHeartbeat(res.body as Partial<Heartbeat>);
  }

  /**
   * `POST /pbs`: a new study (workflow 1). Tags are string pairs and must carry no PII/PHI (proxy ids
   * only). Not retried: a retry after a lost answer would create a second study.
   */
  async createStudy(tags?: Record<string, string>, opts: HematoCallOptions = {}): Promise<HematoStudy> {
    assertTags(tags);
    const body: CreateStudyRequest = tags === undefined ? {} : { tags };
    const res = await this.call({
      method: 'POST',
      path: '/pbs',
      json: body,
      tags,
      idempotent: false,
      auth: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    return parseStudy(res.envelope.results as CreateStudyResults | undefined);
  }

  /**
   * `GET /pbs?tag.<key>=<value>`: this account's studies carrying every one of `tags` (oldest first). How a
   * caller finds the study a `createStudy` or `submitFromList` made when its answer was lost.
   */
  async findStudies(tags: Record<string, string>, opts: HematoCallOptions = {}): Promise<HematoStudySummary[]> {
    const entries = Object.entries(tags);
    if (entries.length === 0 || entries.some(([, v]) => typeof v !== 'string')) {
      throw new HematoApiError({ kind: 'invalid_argument', message: 'findStudies needs at least one string tag' });
    }
    const res = await this.call({
      method: 'GET',
      path: '/pbs',
      query: Object.fromEntries(entries.map(([k, v]) => [`tag.${k}`, v])),
      tags,
      idempotent: true,
      auth: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    return parseStudies(res.envelope.results as ListStudiesResults | undefined, tags);
  }

  /**
   * `POST /pbs` with a list URL (workflow 2): Hemato.AI downloads the files the document names.
   * Not retried, like {@link createStudy}. `tags` go with the list as with `createStudy` (the reference: tags
   * may accompany `POST /pbs`), no PII/PHI: they let {@link findStudies} find the study when the answer is lost.
   */
  async submitFromList(
    listUrl: string,
    tasks: string[],
    tags?: Record<string, string>,
    opts: HematoCallOptions = {},
  ): Promise<HematoListStudy> {
    assertTasks(tasks);
    assertTags(tags);
    let url: URL;
    try {
      url = new URL(listUrl);
    } catch {
      throw new HematoApiError({ kind: 'invalid_argument', message: 'listUrl is not an absolute URL' });
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new HematoApiError({ kind: 'invalid_argument', message: 'listUrl must be an http(s) URL' });
    }
    const body: SubmitListRequest = { list_url: listUrl, tasks, ...(tags === undefined ? {} : { tags }) };
    const res = await this.call({
      method: 'POST',
      path: '/pbs',
      json: body,
      tags,
      idempotent: false,
      auth: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    return parseListStudy(res.envelope.results as CreateStudyResults | undefined);
  }

  /**
   * `POST /pbs/{id}/files?content_type=<type>`: streams one file (a path, bytes, or a stream; never read whole
   * into memory) as the raw body with its Content-Type. Refuses anything but JPEG, PNG or a ZIP of them before any
   * network call. Computes the `sha224-i-` id while streaming and fails with `file_id_mismatch` when the
   * service answers another. Retried like other idempotent calls when the source can be replayed
   * (paths, buffers); a stream is sent once.
   */
  async uploadFile(
    studyId: string,
    source: HematoUploadSource,
    type: HematoFileTypeInput,
    opts: HematoCallOptions = {},
  ): Promise<HematoUploadedFile> {
    const id = encodeId(studyId, 'studyId');
    let res: CallResult;
    try {
      const upload = await prepareUpload(source, type);
      res = await this.call({
        method: 'POST',
        path: `/pbs/${id}/files`,
        // The reference: "this endpoint expects either "file_name" or "content_type" query parameters";
        // the same type also goes in the Content-Type header.
        query: { content_type: upload.type },
        upload,
        idempotent: true,
        auth: true,
        timeoutMs: opts.timeoutMs ?? this.uploadTimeoutMs,
        signal: opts.signal,
      });
    } catch (e) {
      // A stream we were handed and did not finish (refused, failed) must not keep its file open.
      if (source instanceof Readable && !source.readableEnded) source.destroy();
      throw e;
    }
    const answer = parseUpload(res.envelope.results as UploadFileResults | undefined);
    const mine = res.uploaded!;
    if (answer.fileId !== mine.fileId) {
      throw new HematoApiError({
        kind: 'file_id_mismatch',
        message: `Hemato.AI answered file_id ${answer.fileId} but the bytes sent hash to ${mine.fileId}`,
        status: res.status,
        method: 'POST',
        path: `/pbs/${id}/files`,
        attempts: res.attempts,
      });
    }
    if (answer.studyId !== studyId) {
      throw new HematoApiError({
        kind: 'invalid_response',
        message: 'Hemato.AI answered the upload for another study',
        status: res.status,
        method: 'POST',
        path: `/pbs/${id}/files`,
      });
    }
    return { studyId, fileId: mine.fileId, bytes: mine.bytes };
  }

  /**
   * `POST /pbs/{id}/tasks`: closes the study to uploads and starts the diagnostic tasks; the service
   * POSTs to `callbackUrl` when the report is ready (see `buildCallbackUrl`). Not retried (only if the
   * connection was refused): asked again after a lost answer, the service runs the tasks a second time (a
   * report version 2) or answers 409 while the first run is under way. The caller reads `getStatus` to
   * learn whether the request got through.
   */
  async requestTasks(
    studyId: string,
    tasks: string[],
    callbackUrl?: string,
    opts: HematoCallOptions = {},
  ): Promise<HematoTasks> {
    const id = encodeId(studyId, 'studyId');
    assertTasks(tasks);
    if (callbackUrl !== undefined) {
      let url: URL;
      try {
        url = new URL(callbackUrl);
      } catch {
        throw new HematoApiError({ kind: 'invalid_argument', message: 'callbackUrl is not an absolute URL' });
      }
      assertSecureUrl(url, 'callbackUrl', true);
    }
    const body: RequestTasksRequest = {
      diagnostic_tasks: tasks,
      ...(callbackUrl ? { callback_url: callbackUrl } : {}),
    };
    const res = await this.call({
      method: 'POST',
      path: `/pbs/${id}/tasks`,
      json: body,
      idempotent: false,
      auth: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    return parseTasks(res.envelope.results as RequestTasksResults | undefined, studyId, tasks);
  }

  /** `GET /pbs/{id}/status`. */
  async getStatus(studyId: string, opts: HematoCallOptions = {}): Promise<HematoStudyStatus> {
    const res = await this.call({
      method: 'GET',
      path: `/pbs/${encodeId(studyId, 'studyId')}/status`,
      idempotent: true,
      auth: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    const status = parseStatus(res.envelope.results as StatusResults | undefined);
    const userMessage = serviceText(res.envelope.user_message);
    return userMessage ? { ...status, userMessage } : status;
  }

  /** `GET /pbs/{id}/report[?version=N]`: the latest report, or revision `version` (from 1). */
  async getReport(studyId: string, version?: number, opts: HematoCallOptions = {}): Promise<HematoReport> {
    if (version !== undefined && (!Number.isInteger(version) || version < 1)) {
      throw new HematoApiError({ kind: 'invalid_argument', message: 'report version must be an integer >= 1' });
    }
    const res = await this.call({
      method: 'GET',
      path: `/pbs/${encodeId(studyId, 'studyId')}/report`,
      query: version === undefined ? undefined : { version: String(version) },
      idempotent: true,
      auth: true,
      timeoutMs: opts.timeoutMs ?? this.timeoutMs,
      signal: opts.signal,
    });
    const report = parseReport(res.envelope.results as ReportResults | undefined);
    // Another study's report is another patient's: never taken for this one's, whatever caused the mix-up.
    if (report.studyId !== studyId) {
      throw new HematoApiError({
        kind: 'study_mismatch',
        message: `Hemato.AI answered GET /pbs/${studyId}/report with the report of another study`,
        status: res.status,
        method: 'GET',
        path: `/pbs/${encodeId(studyId, 'studyId')}/report`,
        attempts: res.attempts,
      });
    }
    return report;
  }

  /** Closes the keep-alive connections (only those of the client's own pool). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  private backoff(attempt: number): number {
    const step = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    // "Equal jitter": at least half the step, so retries spread out without collapsing to zero.
    return Math.round(step / 2 + Math.random() * (step / 2));
  }

  private async call(spec: CallSpec): Promise<CallResult> {
    const qs = spec.query ? '?' + new URLSearchParams(spec.query).toString() : '';
    const fullPath = this.endpoint.basePath + spec.path + qs;
    const headers: Record<string, string> = {
      accept: 'application/json',
      'user-agent': this.options.userAgent ?? 'hemato-bridge',
    };
    let jsonBytes: Buffer | undefined;
    if (spec.json !== undefined) {
      jsonBytes = Buffer.from(JSON.stringify(spec.json));
      headers['content-type'] = 'application/json';
    } else if (spec.upload) {
      headers['content-type'] = spec.upload.type;
      if (spec.upload.size !== undefined) headers['content-length'] = String(spec.upload.size);
    }
    if (!spec.skipHook && this.options.beforeRequest) {
      await this.options.beforeRequest({
        method: spec.method,
        path: spec.path,
        url: this.endpoint.baseUrl + spec.path + qs,
        headers: { ...headers },
        ...(spec.json !== undefined ? { jsonBody: spec.json } : {}),
        ...(spec.tags !== undefined ? { tags: spec.tags } : {}),
      });
    }

    const errorBase = { method: spec.method, path: spec.path };
    let attempt = 0; // counts against the retry budget
    let sent = 0; // every HTTP attempt, including the one after a re-login
    let renewed = false;
    for (;;) {
      attempt++;
      sent++;
      const token = spec.auth ? await this.auth.token() : undefined;
      const reqHeaders = token ? { ...headers, authorization: token } : headers;
      let body: Buffer | Readable | AsyncIterable<Buffer> | undefined = jsonBytes;
      let opened: ReturnType<PreparedUpload['open']> | undefined;
      if (spec.upload) {
        opened = spec.upload.open();
        body = opened.body;
      }
      const replayable = !spec.upload || spec.upload.replayable;
      const canRetry = (idempotentOnly: boolean) =>
        attempt <= this.retry.retries && replayable && (spec.idempotent || !idempotentOnly);

      const timeout = AbortSignal.timeout(spec.timeoutMs);
      const signal = spec.signal ? AbortSignal.any([timeout, spec.signal]) : timeout;
      const started = Date.now();
      let status: number;
      let text: string;
      let resHeaders: Record<string, string | string[] | undefined>;
      try {
        const res = await this.dispatcher.request({
          origin: this.endpoint.origin,
          path: fullPath,
          method: spec.method,
          headers: reqHeaders,
          // undici streams async iterables (documented) though its typings list only Readable.
          body: body as Buffer | undefined,
          signal,
          headersTimeout: spec.timeoutMs,
          bodyTimeout: spec.timeoutMs,
        });
        status = res.statusCode;
        resHeaders = res.headers;
        const len = Number(res.headers['content-length'] ?? 0);
        if (len > MAX_RESPONSE_BYTES) {
          await res.body.dump();
          throw new HematoApiError({ ...errorBase, kind: 'invalid_response', message: 'answer too large', status });
        }
        text = await res.body.text();
      } catch (e) {
        // A file stream undici did not finish must not keep its descriptor open.
        if (body instanceof Readable && !body.destroyed) body.destroy();
        if (e instanceof HematoApiError) throw e;
        if (spec.signal?.aborted) {
          throw new HematoApiError({
            ...errorBase,
            kind: 'aborted',
            message: `Hemato.AI ${spec.method} ${spec.path}: aborted`,
            attempts: sent,
            cause: e,
          });
        }
        const rawCode = (e as { code?: unknown }).code;
        const code = typeof rawCode === 'string' ? rawCode : '';
        const timedOut =
          timeout.aborted ||
          code === 'UND_ERR_HEADERS_TIMEOUT' ||
          code === 'UND_ERR_BODY_TIMEOUT' ||
          code === 'ETIMEDOUT';
        const kind = timedOut ? 'timeout' : 'network';
        // A certificate problem does not heal by itself: fail at once.
        const tlsFailure = /CERT|SSL|TLS|SIGNATURE|ALTNAME/.test(code);
        // A non-idempotent call is only retried when the request provably never left.
        const retry = !tlsFailure && canRetry(!NOT_SENT.has(code));
        this.log.debug({ ...errorBase, attempt, code, kind, ms: Date.now() - started }, 'hemato call failed');
        if (retry) {
          const delayMs = this.backoff(attempt);
          this.options.onRetry?.({ ...errorBase, attempt, delayMs, reason: kind });
          this.log.warn({ ...errorBase, attempt, delayMs, code }, 'retrying hemato call');
          await this.wait(delayMs, spec, sent);
          continue;
        }
        throw new HematoApiError({
          ...errorBase,
          kind,
          message: `Hemato.AI ${spec.method} ${spec.path}: ${timedOut ? `no answer within ${spec.timeoutMs} ms` : `network error ${code || (e as Error).message}`}`,
          retryable: !tlsFailure,
          attempts: sent,
          cause: e,
        });
      }

      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const envelope: HematoEnvelope<unknown> =
        !spec.bare && typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
          ? (parsed as HematoEnvelope<unknown>)
          : {};
      this.log.debug({ ...errorBase, status, attempt, ms: Date.now() - started }, 'hemato call');

      if (status >= 200 && status < 300) {
        if (!spec.bare && (typeof parsed !== 'object' || parsed === null)) {
          throw new HematoApiError({
            ...errorBase,
            kind: 'invalid_response',
            message: `Hemato.AI ${spec.method} ${spec.path}: ${status} without a JSON envelope`,
            status,
            attempts: sent,
          });
        }
        // A 2xx to an upload means the service read the whole body: the hash is final.
        return { status, body: parsed, envelope, attempts: sent, uploaded: opened?.result() };
      }
      if (spec.accept?.(status)) return { status, body: parsed, envelope, attempts: sent };
      if (body instanceof Readable && !body.destroyed) body.destroy();

      // A body that cannot be sent again (a stream): this call ends here, but the refused token must not
      // stay in use, or every later try (the order's next attempt, a new stream of the same file) is refused too.
      let renewedForNextCall = false;
      if (status === 401 && spec.auth && token !== undefined && !renewed) {
        renewed = true;
        if (!replayable) {
          renewedForNextCall = await this.auth.renew(token);
        } else if (await this.auth.renew(token)) {
          attempt--; // the re-login retry does not use up the retry budget
          continue;
        }
      }

      const retryAfterMs = parseRetryAfter(resHeaders['retry-after']);
      const serviceError = serviceText(envelope.error);
      const error = new HematoApiError({
        ...errorBase,
        kind: 'http',
        message: `Hemato.AI ${spec.method} ${spec.path}: ${status}${serviceError ? ` ${serviceError}` : ''}`,
        status,
        error: serviceError,
        user_message: serviceText(envelope.user_message),
        debug_info: envelope.debug_info,
        retryable: RETRYABLE_STATUS.has(status) || renewedForNextCall,
        authRefused:
          (spec.path === LOGIN_PATH && (status === 401 || status === 403)) ||
          (status === 401 && renewed && !renewedForNextCall),
        attempts: sent,
        retryAfterMs,
      });
      if (RETRYABLE_STATUS.has(status) && canRetry(true)) {
        if (retryAfterMs !== undefined && retryAfterMs > this.retry.maxRetryAfterMs) throw error;
        const delayMs = retryAfterMs ?? this.backoff(attempt);
        this.options.onRetry?.({ ...errorBase, attempt, delayMs, reason: 'status', status, retryAfterMs });
        this.log.warn({ ...errorBase, attempt, status, delayMs }, 'retrying hemato call');
        await this.wait(delayMs, spec, sent);
        continue;
      }
      throw error;
    }
  }

  private async wait(ms: number, spec: CallSpec, attempts: number): Promise<void> {
    try {
      await sleep(ms, spec.signal);
    } catch (e) {
      throw new HematoApiError({
        method: spec.method,
        path: spec.path,
        kind: 'aborted',
        message: `Hemato.AI ${spec.method} ${spec.path}: aborted`,
        attempts,
        cause: e,
      });
    }
  }
}
