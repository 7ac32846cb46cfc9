import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import type { AppConfig } from '@hemato/common';
import { createLogger } from '@hemato/common';
import type { Heartbeat, LoginResults } from '@hemato/hemato-client';
import { type AuthVerdict, type Principal, SandboxAuth } from './auth';
import { Directory, readPublicKey, sha256Hex, stableId } from './directory';
import { checkOutboundUrl, checkTasks, Engine } from './engine';
import { Faults } from './faults';
import { FileProblem, fileTypeOf } from './files';
import { AnalysisPool } from './analysis-pool';
import {
  delta,
  HttpError,
  isRecord,
  loseAnswer,
  readJsonBody,
  sendEnvelope,
  sendJson,
  SANDBOX_VERSION,
} from './http-kit';
import { type LoggedCallback, type LoggedRequest, Ring, safeHeaders } from './request-log';
import { type Run, type Study, StudyStore } from './store';

type SandboxConfig = Pick<AppConfig, 'core' | 'sandbox'>;

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  path: string;
  started: bigint;
  entry?: LoggedRequest;
  /** The client sent `Expect: 100-continue` and waits for our go before sending the body. */
  continuePending?: boolean;
}

const STUDY_PATH = /^\/pbs\/([^/]+)\/(files|tasks|status|report)$/;
const UPLOAD_PATH = /^\/pbs\/[^/]+\/files$/;
const ADMIN_STUDY_PATH = /^\/_sandbox\/pbs\/([^/]+)(\/revise)?$/;

/**
 * The sandbox's HTTP service: the Hemato.AI API of the reference plus sandbox-only `/_sandbox/*`
 * endpoints (request log, callbacks, faults, revisions). Plain node:http: uploads are streamed and
 * hashed as they arrive, and nothing sits between a request and its handler.
 */
export class SandboxServer {
  readonly server: Server;
  readonly directory: Directory;
  readonly auth: SandboxAuth;
  readonly faults = new Faults();
  readonly store: StudyStore;
  readonly engine: Engine;
  readonly requests: Ring<LoggedRequest>;
  readonly callbacks: Ring<LoggedCallback>;
  readonly pool = new AnalysisPool();
  private readonly log = createLogger('hemato-sandbox');
  /** Wake-ups of injected-latency sleeps, so close() need not wait them out. */
  private readonly sleepers = new Set<() => void>();

  constructor(private readonly config: SandboxConfig) {
    const sb = config.sandbox;
    this.directory = Directory.fromConfig(sb);
    const dataDir = sb.SANDBOX_DATA_DIR;
    let sessionSecret: Uint8Array | undefined;
    if (dataDir) {
      mkdirSync(dataDir, { recursive: true });
      const secretFile = path.join(dataDir, 'session-secret');
      if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
      sessionSecret = Buffer.from(readFileSync(secretFile, 'utf8').trim(), 'hex');
    }
    this.auth = new SandboxAuth({
      directory: this.directory,
      audience: sb.SANDBOX_REGION_HOST,
      sessionTtlS: sb.SANDBOX_SESSION_TTL_S,
      sessionSecret,
    });
    if (this.directory.fileFaults) this.faults.set(this.directory.fileFaults);
    if (sb.SANDBOX_FAULTS) this.faults.set(JSON.parse(sb.SANDBOX_FAULTS) as unknown);
    this.store = new StudyStore(dataDir ? path.join(dataDir, 'studies') : undefined);
    this.requests = new Ring<LoggedRequest>(sb.SANDBOX_REQUEST_LOG_MAX);
    this.callbacks = new Ring<LoggedCallback>(sb.SANDBOX_REQUEST_LOG_MAX);
    this.engine = new Engine(
      this.store,
      this.faults,
      this.callbacks,
      this.pool,
      {
        processingMs: sb.SANDBOX_PROCESSING_MS,
        maxFileBytes: sb.SANDBOX_MAX_FILE_BYTES,
        httpHosts: sb.SANDBOX_HTTP_HOSTS,
      },
      this.log,
    );
    this.engine.resume();
    this.server = createServer(
      { keepAliveTimeout: 65_000, requestTimeout: 0 },
      (req, res) => void this.handle(req, res),
    );
    // `Expect: 100-continue` (curl does this for bodies over 1 MB): refuse a bad upload before its body is sent.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res, true));
  }

  private async handle(req: IncomingMessage, res: ServerResponse, continuePending = false): Promise<void> {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'http://sandbox.local');
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const ctx: Ctx = { req, res, url, path: p, started, continuePending };
    // Only uploads decide late (after auth, type and size checks) whether they want the body.
    if (continuePending && !UPLOAD_PATH.test(p)) {
      res.writeContinue();
      ctx.continuePending = false;
    }
    const admin = p.startsWith('/_sandbox');
    if (!admin) {
      ctx.entry = this.requests.add({
        at: new Date().toISOString(),
        method: req.method ?? 'GET',
        path: p,
        query: Object.fromEntries(url.searchParams),
        headers: safeHeaders(req.headers),
      });
    }
    try {
      if (admin) {
        await this.routeAdmin(ctx);
      } else {
        const latency = this.faults.latencyFor(p, req.method);
        if (latency > 0) await this.wait(latency);
        const fault = this.faults.forRequest(p, req.method);
        if (fault?.kind === 'rate_limit') {
          if (ctx.entry) ctx.entry.fault = `429 retry-after ${fault.retryAfterS}`;
          throw new HttpError(
            429,
            'too many requests (sandbox fault injection)',
            'The service is busy; please retry later.',
            {
              'retry-after': String(fault.retryAfterS),
            },
          );
        }
        if (fault?.kind === 'error') {
          if (ctx.entry) ctx.entry.fault = `${fault.status}`;
          throw new HttpError(
            fault.status,
            'service unavailable (sandbox fault injection)',
            'The service is temporarily unavailable.',
          );
        }
        if (fault?.kind === 'drop_answer') {
          if (ctx.entry) ctx.entry.fault = 'answer dropped';
          loseAnswer(ctx.res);
        }
        await this.route(ctx);
      }
    } catch (err) {
      this.answerError(ctx, err);
    } finally {
      if (ctx.entry) {
        ctx.entry.status = res.statusCode;
        ctx.entry.duration_ms = Number(process.hrtime.bigint() - started) / 1e6;
      }
    }
  }

  private answerError(ctx: Ctx, err: unknown): void {
    // The client held the body back (Expect: 100-continue): do not reuse a connection it may never send.
    if (ctx.continuePending && !ctx.res.headersSent) ctx.res.setHeader('connection', 'close');
    if (err instanceof HttpError) {
      sendEnvelope(
        ctx.res,
        err.status,
        {},
        { error: err.message, user_message: err.userMessage, headers: err.headers },
        ctx.started,
      );
    } else if (err instanceof FileProblem) {
      sendEnvelope(ctx.res, err.status, {}, { error: err.message, user_message: err.message }, ctx.started);
    } else {
      const id = randomUUID();
      this.log.error({ err: (err as Error).message, correlation_id: id, path: ctx.path }, 'sandbox request failed');
      sendEnvelope(
        ctx.res,
        500,
        {},
        {
          error: `internal error (correlation id ${id})`,
          user_message: 'Something went wrong.',
          debug_info: { correlation_id: id },
        },
        ctx.started,
      );
    }
  }

  private method(ctx: Ctx, ...allowed: string[]): string {
    const m = ctx.req.method ?? 'GET';
    if (!allowed.includes(m)) {
      throw new HttpError(405, `method ${m} not allowed on ${ctx.path}`, '', { allow: allowed.join(', ') });
    }
    return m;
  }

  private async route(ctx: Ctx): Promise<void> {
    const p = ctx.path;
    if (p === '/heartbeat') {
      this.method(ctx, 'GET', 'HEAD');
      const beat: Heartbeat = {
        delta: delta(ctx.started),
        heartbeat: randomBytes(10).toString('hex'),
        request_timestamp: Math.floor(Date.now() / 1000),
        version: SANDBOX_VERSION,
      };
      return sendJson(ctx.res, 200, beat);
    }
    if (p === '/auth/login') {
      this.method(ctx, 'POST');
      return this.login(ctx);
    }
    if (p === '/auth/hello' || p === '/auth/helo') {
      this.method(ctx, 'POST', 'GET');
      return this.hello(ctx);
    }
    const principal = await this.authenticate(ctx);
    if (p === '/pbs') {
      const m = this.method(ctx, 'POST', 'GET');
      return m === 'POST' ? this.createStudy(ctx, principal) : this.listStudies(ctx, principal);
    }
    const match = STUDY_PATH.exec(p);
    if (!match) throw new HttpError(404, `no such endpoint ${p}`, 'Not found.');
    const study = this.studyFor(match[1], principal);
    if (ctx.entry) {
      ctx.entry.pbs_study_id = study.pbs_study_id;
      ctx.entry.tags = study.tags;
    }
    switch (match[2]) {
      case 'files':
        this.method(ctx, 'POST');
        return this.upload(ctx, study);
      case 'tasks':
        this.method(ctx, 'POST');
        return this.tasks(ctx, study);
      case 'status': {
        this.method(ctx, 'GET');
        const status = this.engine.status(study);
        const { user_message, ...results } = status;
        return sendEnvelope(ctx.res, 200, results, { user_message }, ctx.started);
      }
      case 'report':
        this.method(ctx, 'GET');
        return this.report(ctx, study);
      default:
        throw new HttpError(404, `no such endpoint ${p}`);
    }
  }

  private async authenticate(ctx: Ctx): Promise<Principal> {
    const verdict = await this.auth.verify(ctx.req.headers.authorization);
    if (!verdict.valid || !verdict.principal) {
      // As the reference says, auth details are not in debug_info: /auth/hello explains a token.
      throw new HttpError(
        401,
        `unauthorized: ${verdict.reason ?? 'token refused'} (POST /auth/hello explains every check)`,
        'Please sign in again.',
      );
    }
    const pr = verdict.principal;
    if (ctx.entry)
      ctx.entry.principal = pr.method === 'session' ? `session:${pr.subject}` : `key:${pr.organisation}/${pr.subject}`;
    return pr;
  }

  private studyFor(id: string, principal: Principal): Study {
    const study = this.store.get(decodedId(id));
    if (!study || study.owner !== principal.owner) {
      throw new HttpError(404, `no PBS study ${id} for this account`, 'The study was not found.');
    }
    return study;
  }

  private async login(ctx: Ctx): Promise<void> {
    const body = await readJsonBody(ctx.req);
    if (ctx.entry)
      ctx.entry.body = isRecord(body) ? { ...body, pass_hash: body.pass_hash ? '[hidden]' : undefined } : body;
    if (!isRecord(body) || typeof body.user !== 'string' || typeof body.pass_hash !== 'string') {
      throw new HttpError(
        400,
        'the body must be {"user": ..., "pass_hash": sha256-hex of the password}',
        'Please enter your user name and password.',
      );
    }
    if (!/^[0-9a-fA-F]{64}$/.test(body.pass_hash)) {
      throw new HttpError(
        400,
        'pass_hash must be the sha256 hex digest of the password (64 hex digits), not the password',
        'Sign-in failed.',
      );
    }
    const result = await this.auth.login(body.user, body.pass_hash);
    if (!result) throw new HttpError(401, 'wrong user or password', 'The user name or password is not correct.');
    const { user, token } = result;
    const results: LoginResults = {
      login_timestamp: (BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n)).toString(),
      token: { HY_APP_AUTH_v1: token },
      user: { email: user.email, id: user.id, screen_name: user.screen_name, user_name: user.email },
    };
    if (ctx.entry) ctx.entry.principal = `session:${user.id}`;
    sendEnvelope(
      ctx.res,
      202,
      results,
      { debug_info: { session_ttl_s: this.config.sandbox.SANDBOX_SESSION_TTL_S } },
      ctx.started,
    );
  }

  private async hello(ctx: Ctx): Promise<void> {
    // Drain any body (httpie's -f sends an empty form).
    await readJsonBody(ctx.req).catch(() => undefined);
    const verdict: AuthVerdict = await this.auth.verify(ctx.req.headers.authorization);
    const results = {
      valid: verdict.valid,
      method: verdict.method,
      audience: this.config.sandbox.SANDBOX_REGION_HOST,
      checks: verdict.checks,
      failed: verdict.checks.filter((c) => !c.ok).map((c) => c.check),
      reason: verdict.reason,
      principal: verdict.principal,
    };
    sendEnvelope(
      ctx.res,
      verdict.valid ? 200 : 401,
      results,
      verdict.valid
        ? { user_message: 'Hello! Your token is accepted.' }
        : {
            error: `token refused: ${verdict.reason}`,
            user_message: 'Your token is not accepted; see results.checks.',
          },
      ctx.started,
    );
  }

  private async createStudy(ctx: Ctx, principal: Principal): Promise<void> {
    const body = await readJsonBody(ctx.req);
    if (ctx.entry) ctx.entry.body = body;
    if (body !== undefined && !isRecord(body))
      throw new HttpError(400, 'the body must be a JSON object', 'The request could not be read.');
    const tags: Record<string, string> = {};
    if (body?.tags !== undefined) {
      if (!isRecord(body.tags))
        throw new HttpError(400, 'tags must be an object of string values', 'The tags are not valid.');
      for (const [k, v] of Object.entries(body.tags)) {
        if (typeof v !== 'string') throw new HttpError(400, `tag ${k} must be a string`, 'The tags are not valid.');
        tags[k] = v;
      }
    }
    if (ctx.entry) ctx.entry.tags = tags;
    const host = ctx.req.headers.host ?? '127.0.0.1';
    const study: Study = {
      pbs_study_id: randomUUID(),
      owner: principal.owner,
      workflow: body?.list_url !== undefined ? 2 : 1,
      tags,
      created_at: new Date().toISOString(),
      files: [],
      closed: false,
      state: 'open',
      reports: [],
      base_url: `http://${host}`,
    };
    if (study.workflow === 2) {
      if (typeof body?.list_url !== 'string') throw new FileProblem('list_url must be a URL string');
      const listUrl = checkOutboundUrl(body.list_url, 'list_url', this.config.sandbox.SANDBOX_HTTP_HOSTS);
      const tasks = checkTasks(body.tasks ?? body.diagnostic_tasks, 'tasks');
      if (body.callback_url !== undefined) {
        if (typeof body.callback_url !== 'string') throw new FileProblem('callback_url must be a URL string');
        study.callback_url = checkOutboundUrl(
          body.callback_url,
          'callback_url',
          this.config.sandbox.SANDBOX_HTTP_HOSTS,
        ).toString();
      }
      this.store.put(study);
      if (ctx.entry) ctx.entry.pbs_study_id = study.pbs_study_id;
      this.engine.startListDownload(study, listUrl, tasks);
      return sendEnvelope(
        ctx.res,
        201,
        // The reference's answer to a list: the study and its file ids. The files are fetched after this
        // answer, so there are none yet; the files_checked callback names them.
        { pbs_study_id: study.pbs_study_id, file_ids: [] },
        { debug_info: { workflow: 2, tasks } },
        ctx.started,
      );
    }
    this.store.put(study);
    if (ctx.entry) ctx.entry.pbs_study_id = study.pbs_study_id;
    sendEnvelope(ctx.res, 201, { pbs_study_id: study.pbs_study_id }, {}, ctx.started);
  }

  /** Studies of this account, optionally filtered by tags (`?tag.<key>=<value>`), as the reference suggests. */
  private listStudies(ctx: Ctx, principal: Principal): void {
    const wanted = [...ctx.url.searchParams]
      .filter(([k]) => k.startsWith('tag.'))
      .map(([k, v]) => [k.slice(4), v] as const);
    const studies = this.store
      .all()
      .filter((s) => s.owner === principal.owner && wanted.every(([k, v]) => s.tags[k] === v))
      .map((s) => ({
        pbs_study_id: s.pbs_study_id,
        tags: s.tags,
        created_at: s.created_at,
        report_status: this.engine.status(s).report_status,
      }));
    sendEnvelope(ctx.res, 200, { studies }, {}, ctx.started);
  }

  private async upload(ctx: Ctx, study: Study): Promise<void> {
    const { req } = ctx;
    if (study.closed) {
      throw new HttpError(
        409,
        'diagnostic tasks were already requested for this study: no more files can be added',
        'This study no longer accepts files.',
      );
    }
    const q = ctx.url.searchParams;
    const { type, source } = fileTypeOf(req.headers['content-type'], q.get('content_type'), q.get('file_name'));
    const max = this.config.sandbox.SANDBOX_MAX_FILE_BYTES;
    // Close the connection after a 413: the rest of the body is not wanted, and clients that keep
    // streaming into a kept-alive connection after an early answer can get stuck.
    const tooLarge = () =>
      new HttpError(413, `the file is larger than the limit of ${max} bytes`, `The file is larger than ${max} bytes.`);
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > max) throw tooLarge();

    if (ctx.continuePending) {
      // Every check passed: now ask for the body (a refused upload is answered before it is sent).
      ctx.res.writeContinue();
      ctx.continuePending = false;
    }
    // Stream the body: hash as it arrives, hold it once (preallocated when the length is known) for decoding.
    const hash = createHash('sha224');
    let size = 0;
    const chunks: Buffer[] = [];
    const pre = Number.isFinite(declared) && declared > 0 ? Buffer.allocUnsafe(declared) : undefined;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      if (size + chunk.length > max) {
        chunks.length = 0;
        req.resume(); // discard the rest without keeping it
        throw tooLarge();
      }
      hash.update(chunk);
      if (pre) chunk.copy(pre, size);
      else chunks.push(chunk);
      size += chunk.length;
    }
    const bytes = pre ? pre.subarray(0, size) : Buffer.concat(chunks, size);
    const fileId = `sha224-i-${hash.digest('hex')}`;
    if (ctx.entry) ctx.entry.body = { bytes: size, file_id: fileId, content_type: type, type_from: source };
    const results = { pbs_study_id: study.pbs_study_id, file_id: fileId };
    if (study.files.some((f) => f.file_id === fileId)) {
      return sendEnvelope(
        ctx.res,
        201,
        results,
        { debug_info: { duplicate: true, files: study.files.length } },
        ctx.started,
      );
    }
    if (study.closed) {
      throw new HttpError(
        409,
        'diagnostic tasks were requested while this file was uploading',
        'This study no longer accepts files.',
      );
    }
    const images = await this.pool.analyse(fileId, bytes, type);
    if (study.closed && !study.files.some((f) => f.file_id === fileId)) {
      throw new HttpError(
        409,
        'diagnostic tasks were requested while this file was analysed',
        'This study no longer accepts files.',
      );
    }
    if (!study.files.some((f) => f.file_id === fileId)) {
      study.files.push({
        file_id: fileId,
        content_type: type,
        bytes: size,
        uploaded_at: new Date().toISOString(),
        images,
      });
      this.store.save(study);
    }
    sendEnvelope(
      ctx.res,
      201,
      results,
      {
        debug_info: {
          duplicate: false,
          files: study.files.length,
          images: images.length,
          type_from: source,
          worker_threads: this.pool.threaded,
        },
      },
      ctx.started,
    );
  }

  private async tasks(ctx: Ctx, study: Study): Promise<void> {
    const body = await readJsonBody(ctx.req);
    if (ctx.entry) ctx.entry.body = body;
    if (!isRecord(body))
      throw new FileProblem('the body must be {"diagnostic_tasks": ["pbs_v1"], "callback_url": "https://..."}');
    const tasks = checkTasks(body.diagnostic_tasks ?? body.tasks, 'diagnostic_tasks');
    let callbackUrl: string | undefined;
    if (body.callback_url !== undefined && body.callback_url !== null && body.callback_url !== '') {
      if (typeof body.callback_url !== 'string') throw new FileProblem('callback_url must be a URL string');
      callbackUrl = checkOutboundUrl(
        body.callback_url,
        'callback_url',
        this.config.sandbox.SANDBOX_HTTP_HOSTS,
      ).toString();
    }
    if (study.state === 'processing' || study.state === 'downloading') {
      throw new HttpError(
        409,
        'the diagnostic tasks of this study are still running',
        'The study is still being analysed.',
      );
    }
    if (study.files.length === 0) {
      throw new FileProblem('the study has no files: upload at least one image before requesting tasks');
    }
    if (callbackUrl) study.callback_url = callbackUrl;
    const again = study.reports.length > 0 || study.state === 'failed';
    this.engine.startRun(study, tasks, again ? { note: 'tasks requested again' } : {});
    sendEnvelope(
      ctx.res,
      202,
      { pbs_study_id: study.pbs_study_id, tasks },
      { debug_info: { report_version: study.run?.version } },
      ctx.started,
    );
  }

  private report(ctx: Ctx, study: Study): void {
    this.engine.status(study); // finishes a run whose time is up
    const raw = ctx.url.searchParams.get('version');
    if (raw !== null) {
      const v = Number(raw);
      if (!Number.isInteger(v) || v < 1)
        throw new HttpError(400, 'version must be a whole number from 1', 'The report version is not valid.');
      const report = study.reports.find((r) => r.version === v);
      if (!report) {
        throw new HttpError(
          404,
          `report version ${v} does not exist (versions: ${study.reports.length})`,
          'This report version does not exist.',
        );
      }
      return sendEnvelope(ctx.res, 200, report, { debug_info: { versions: study.reports.length } }, ctx.started);
    }
    const latest = study.reports.at(-1);
    if (!latest) {
      const status = this.engine.status(study);
      throw new HttpError(
        409,
        `the report is not available: report_status is ${status.report_status}`,
        status.report_status === 'failed'
          ? (study.user_message ?? 'Processing failed.')
          : 'The report is not ready yet.',
      );
    }
    sendEnvelope(ctx.res, 200, latest, { debug_info: { versions: study.reports.length } }, ctx.started);
  }

  // ---- sandbox-only endpoints -------------------------------------------------------------------

  private async routeAdmin(ctx: Ctx): Promise<void> {
    const p = ctx.path;
    const m = ctx.req.method ?? 'GET';
    const q = ctx.url.searchParams;
    if (p === '/_sandbox/requests') {
      this.method(ctx, 'GET', 'DELETE');
      if (m === 'DELETE') {
        this.requests.clear();
        return sendJson(ctx.res, 200, { cleared: true });
      }
      const since = Number(q.get('since') ?? 0);
      const list = this.requests
        .list()
        .filter(
          (r) =>
            r.seq > since &&
            (!q.get('path') || r.path.startsWith(q.get('path') as string)) &&
            (!q.get('method') || r.method === q.get('method')?.toUpperCase()) &&
            (!q.get('pbs_study_id') || r.pbs_study_id === q.get('pbs_study_id')),
        );
      return sendJson(ctx.res, 200, { requests: list });
    }
    if (p === '/_sandbox/callbacks') {
      this.method(ctx, 'GET', 'DELETE');
      if (m === 'DELETE') {
        this.callbacks.clear();
        return sendJson(ctx.res, 200, { cleared: true });
      }
      const id = q.get('pbs_study_id');
      return sendJson(ctx.res, 200, { callbacks: this.callbacks.list().filter((c) => !id || c.pbs_study_id === id) });
    }
    if (p === '/_sandbox/faults') {
      this.method(ctx, 'GET', 'POST', 'PUT', 'DELETE');
      if (m === 'POST' || m === 'PUT') {
        const body = await readJsonBody(ctx.req);
        try {
          this.faults.set(body ?? {});
        } catch (err) {
          throw new HttpError(400, `invalid faults: ${(err as Error).message}`);
        }
      } else if (m === 'DELETE') {
        this.faults.clear();
      }
      return sendJson(ctx.res, 200, { faults: this.faults.config, counters: this.faults.counters });
    }
    if (p === '/_sandbox/reset') {
      this.method(ctx, 'POST');
      this.requests.clear();
      this.callbacks.clear();
      this.faults.clear();
      return sendJson(ctx.res, 200, { reset: true });
    }
    if (p === '/_sandbox/organisations') {
      this.method(ctx, 'POST', 'GET');
      if (m === 'GET') {
        return sendJson(ctx.res, 200, {
          organisations: [...this.directory.organisations.values()].map((o) => ({
            id: o.id,
            subjects: o.subjects,
            kids: o.keys.map((k) => k.kid),
          })),
        });
      }
      const body = await readJsonBody(ctx.req);
      if (!isRecord(body) || typeof body.id !== 'string' || !Array.isArray(body.keys)) {
        throw new HttpError(
          400,
          'body: {"id": "<iss>", "subjects": ["<sub>", ...], "keys": [{"kid": "...", "public_key": "<PEM or JWK>"}]}',
        );
      }
      try {
        const keys = (body.keys as unknown[]).map((k) => {
          if (!isRecord(k) || typeof k.kid !== 'string') throw new Error('each key needs a kid');
          const pk = typeof k.public_key === 'string' ? k.public_key : JSON.stringify(k.public_key);
          return { kid: k.kid, key: readPublicKey(pk) };
        });
        const subjects = Array.isArray(body.subjects)
          ? body.subjects.filter((s): s is string => typeof s === 'string')
          : [];
        const org = this.directory.addOrganisation(body.id, keys, subjects);
        return sendJson(ctx.res, 201, { id: org.id, subjects: org.subjects, kids: org.keys.map((k) => k.kid) });
      } catch (err) {
        throw new HttpError(400, `invalid organisation: ${(err as Error).message}`);
      }
    }
    if (p === '/_sandbox/users') {
      this.method(ctx, 'POST');
      const body = await readJsonBody(ctx.req);
      if (
        !isRecord(body) ||
        typeof body.email !== 'string' ||
        (typeof body.password !== 'string' && typeof body.pass_hash !== 'string')
      ) {
        throw new HttpError(
          400,
          'body: {"email": "...", "password": "..."} or {"email": "...", "pass_hash": "<sha256 hex>"}',
        );
      }
      const hash = typeof body.pass_hash === 'string' ? body.pass_hash : sha256Hex(body.password as string);
      const id = stableId(body.email);
      this.directory.addUser({
        id,
        email: body.email,
        screen_name: body.email.split('@')[0] ?? body.email,
        pass_hash: hash.toLowerCase(),
      });
      return sendJson(ctx.res, 201, { id, email: body.email });
    }
    if (p === '/_sandbox/pbs') {
      this.method(ctx, 'GET');
      return sendJson(ctx.res, 200, {
        studies: this.store.all().map((s) => ({
          pbs_study_id: s.pbs_study_id,
          workflow: s.workflow,
          tags: s.tags,
          files: s.files.length,
          state: s.state,
          versions: s.reports.length,
        })),
      });
    }
    const sm = ADMIN_STUDY_PATH.exec(p);
    if (sm) {
      const study = this.store.get(decodedId(sm[1]));
      if (!study) throw new HttpError(404, `no PBS study ${sm[1]}`);
      if (!sm[2]) {
        this.method(ctx, 'GET');
        return sendJson(ctx.res, 200, { study, status: this.engine.status(study) });
      }
      this.method(ctx, 'POST');
      return this.revise(ctx, study);
    }
    throw new HttpError(404, `no such sandbox endpoint ${p}`);
  }

  /** Admin: adds a report revision (a new run, so status and callback follow as for /tasks). */
  private async revise(ctx: Ctx, study: Study): Promise<void> {
    const body = (await readJsonBody(ctx.req)) ?? {};
    if (!isRecord(body)) throw new HttpError(400, 'the body must be a JSON object');
    if (study.state === 'processing' || study.state === 'downloading')
      throw new HttpError(409, 'the study is still running');
    if (study.files.length === 0) throw new HttpError(409, 'the study has no files to report on');
    const overrides: NonNullable<Run['overrides']> = {};
    if (typeof body.pathology_report === 'string') overrides.pathology_report = body.pathology_report;
    if (isRecord(body.morphological_findings))
      overrides.morphological_findings = body.morphological_findings as NonNullable<
        Run['overrides']
      >['morphological_findings'];
    if (Array.isArray(body.differential_diagnosis))
      overrides.differential_diagnosis = body.differential_diagnosis as NonNullable<
        Run['overrides']
      >['differential_diagnosis'];
    const note = typeof body.note === 'string' ? body.note : 'revised by the sandbox admin endpoint';
    this.engine.startRun(study, study.run?.tasks ?? ['pbs_v1'], { note, overrides });
    sendJson(ctx.res, 202, {
      pbs_study_id: study.pbs_study_id,
      version: study.run?.version,
      status: this.engine.status(study),
    });
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  async close(): Promise<void> {
    for (const wake of [...this.sleepers]) wake();
    await this.engine.close();
    await this.pool.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.store.flush();
  }
}

/** A study id from the path; a malformed %-escape (`%zz`) names no study rather than failing the request (500). */
function decodedId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
