/**
 * A small Hemato.AI stand-in for the client's integration tests, written from the reference
 * (shared/spec/hemato-ai-api.md + reading notes): the envelope, status codes, sha224 file ids,
 * session tokens that expire, self-signed JWTs checked claim by claim, and switches to inject
 * faults (5xx, 429 + Retry-After, delays, a wrong file id). Independent of apps/hemato-sandbox.
 */
import { createHash, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { request } from 'undici';

export interface RegisteredKey {
  publicKey: KeyObject;
  issuer: string;
  subject: string;
}

export interface Fault {
  method: string;
  path: RegExp;
  status: number;
  retryAfter?: string;
  /** Answer after this many ms instead of an error status (status is then ignored). */
  delayMs?: number;
  times: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  status: number;
  auth?: 'session' | 'key';
  jti?: string;
  contentType?: string;
  bytes?: number;
  /** How the Authorization header was sent. */
  authScheme?: 'raw' | 'bearer';
}

interface Study {
  id: string;
  tags: Record<string, string>;
  files: Map<string, number>;
  closed: boolean;
  tasks: string[];
  callbackUrl?: string;
  tasksAt?: number;
  reports: number;
}

export interface LocalHematoOptions {
  /** JWT audience expected (the region host). */
  audience?: string;
  users?: Record<string, string>;
  sessionTtlMs?: number;
  processingMs?: number;
  tls?: { key: string; cert: string };
}

const ACCEPTED_TYPES = new Set(['image/jpeg', 'image/png', 'application/zip']);
const EXT_TYPES: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  zip: 'application/zip',
};

export class LocalHematoServer {
  readonly audience: string;
  readonly users = new Map<string, { passHash: string; id: string }>();
  readonly keys = new Map<string, RegisteredKey>();
  readonly sessions = new Map<string, { user: string; expiresAt: number }>();
  readonly studies = new Map<string, Study>();
  readonly log: LoggedRequest[] = [];
  readonly callbacksSent: { url: string; status: number }[] = [];
  faults: Fault[] = [];
  /** Answer the next upload with a file id that is not the hash of the bytes. */
  wrongFileIdNext = false;
  /** Issue session tokens that the server then refuses (a broken login). */
  refuseNewSessions = false;
  sessionTtlMs: number;
  processingMs: number;
  private server!: Server;
  private readonly pending = new Set<NodeJS.Timeout>();
  url = '';

  constructor(private readonly opts: LocalHematoOptions = {}) {
    this.audience = opts.audience ?? 'dev.api.hemato.ai';
    this.sessionTtlMs = opts.sessionTtlMs ?? 3_600_000;
    this.processingMs = opts.processingMs ?? 0;
    for (const [user, password] of Object.entries(opts.users ?? { 'lab@example.com': 'correct horse battery' })) {
      this.addUser(user, password);
    }
  }

  addUser(user: string, password: string): void {
    this.users.set(user, { passHash: createHash('sha256').update(password).digest('hex'), id: randomUUID() });
  }

  registerKey(kid: string, key: RegisteredKey): void {
    this.keys.set(kid, key);
  }

  expireAllSessions(): void {
    for (const s of this.sessions.values()) s.expiresAt = 0;
  }

  fail(method: string, path: RegExp, status: number, times = 1, retryAfter?: string): void {
    this.faults.push({ method, path, status, times, retryAfter });
  }

  delay(method: string, path: RegExp, delayMs: number, times = 1): void {
    this.faults.push({ method, path, status: 0, delayMs, times });
  }

  count(method: string, path: RegExp): number {
    return this.log.filter((r) => r.method === method && path.test(r.path)).length;
  }

  async start(): Promise<this> {
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((e: Error) => {
        if (!res.headersSent) this.send(res, req, 500, { error: `internal: ${e.message}` });
      });
    };
    this.server = this.opts.tls ? createHttpsServer(this.opts.tls, handler) : createHttpServer(handler);
    // Long uploads must not hit Node's default request timeout.
    this.server.requestTimeout = 0;
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.url = `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const t of this.pending) clearTimeout(t);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private send(
    res: ServerResponse,
    req: IncomingMessage,
    status: number,
    env: Record<string, unknown>,
    extra: Partial<LoggedRequest> = {},
    headers: Record<string, string> = {},
  ) {
    const path = (req.url ?? '').split('?')[0]!;
    const authz = req.headers.authorization;
    const authScheme = authz === undefined ? undefined : authz.startsWith('Bearer ') ? 'bearer' : 'raw';
    this.log.push({ method: req.method ?? '', path, status, authScheme, ...extra });
    const body = JSON.stringify({ status, results: {}, error: '', user_message: '', debug_info: {}, ...env });
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      ...headers,
    });
    res.end(body);
  }

  private async drain(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size <= 1024 * 1024) chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private async json(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
    const raw = await this.drain(req);
    if (raw.length === 0) return {};
    try {
      const v = JSON.parse(raw.toString('utf8')) as unknown;
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Who the Authorization header belongs to, or why it is refused. */
  private async authenticate(
    req: IncomingMessage,
  ): Promise<
    | { ok: true; kind: 'session' | 'key'; sub: string; jti?: string; claims?: Record<string, unknown> }
    | { ok: false; reason: string; jti?: string }
  > {
    let token = req.headers.authorization ?? '';
    if (token.startsWith('Bearer ')) token = token.slice(7);
    if (!token) return { ok: false, reason: 'missing Authorization header' };
    const session = this.sessions.get(token);
    if (session) {
      if (session.expiresAt <= Date.now()) return { ok: false, reason: 'session expired' };
      return { ok: true, kind: 'session', sub: session.user };
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return { ok: false, reason: 'unknown token' };
    }
    if (header.alg !== 'RS384' && header.alg !== 'RS256')
      return { ok: false, reason: `alg ${String(header.alg)} not allowed` };
    if (typeof header.kid !== 'string') return { ok: false, reason: 'kid missing' };
    const key = this.keys.get(header.kid);
    if (!key) return { ok: false, reason: 'unknown kid' };
    let claims: Record<string, unknown>;
    try {
      const { payload } = await compactVerify(token, key.publicKey, { algorithms: ['RS384', 'RS256'] });
      claims = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
    } catch {
      return { ok: false, reason: 'bad signature' };
    }
    const jti = typeof claims.jti === 'string' ? claims.jti : undefined;
    for (const c of ['jti', 'iss', 'iat', 'exp', 'aud', 'sub', 'role']) {
      if (claims[c] === undefined) return { ok: false, reason: `claim ${c} missing`, jti };
    }
    const now = Math.floor(Date.now() / 1000);
    const skew = 5;
    const iat = Number(claims.iat);
    const exp = Number(claims.exp);
    if (iat > now + skew) return { ok: false, reason: 'token issued in the future (iat)', jti };
    if (now - iat > 3600 + skew) return { ok: false, reason: 'token older than 1 hour', jti };
    if (exp <= now - skew) return { ok: false, reason: 'token expired (exp)', jti };
    const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!aud.includes(this.audience)) return { ok: false, reason: `aud must be ${this.audience}`, jti };
    if (claims.iss !== key.issuer) return { ok: false, reason: 'iss does not match the key', jti };
    if (claims.sub !== key.subject) return { ok: false, reason: 'sub not allowed for this key', jti };
    if (!['admin', 'user', 'device', 'service'].includes(String(claims.role)))
      return { ok: false, reason: 'bad role', jti };
    return { ok: true, kind: 'key', sub: String(claims.sub), jti, claims };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    const fault = this.faults.find((f) => f.times > 0 && f.method === method && f.path.test(path));
    if (fault) {
      fault.times--;
      if (fault.delayMs !== undefined) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            this.pending.delete(t);
            resolve();
          }, fault.delayMs);
          this.pending.add(t);
        });
        if (res.destroyed || req.destroyed) {
          this.log.push({ method, path, status: 0 });
          return;
        }
      } else {
        await this.drain(req);
        const headers: Record<string, string> = fault.retryAfter ? { 'retry-after': fault.retryAfter } : {};
        this.send(
          res,
          req,
          fault.status,
          { error: `injected ${fault.status}`, user_message: 'Please try again later' },
          {},
          headers,
        );
        return;
      }
    }

    if (method === 'GET' && path === '/heartbeat') {
      this.log.push({ method, path, status: 200 });
      const body = JSON.stringify({
        delta: '59.078µs',
        heartbeat: randomBytes(10).toString('hex'),
        request_timestamp: Math.floor(Date.now() / 1000),
        version: 'local.1',
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
      return;
    }

    if (method === 'POST' && path === '/auth/login') {
      const body = await this.json(req);
      const user = typeof body?.user === 'string' ? this.users.get(body.user) : undefined;
      if (!body || typeof body.pass_hash !== 'string' || !user || user.passHash !== body.pass_hash) {
        this.send(res, req, 401, { error: 'invalid credentials', user_message: 'Wrong user name or password' });
        return;
      }
      const token = 'sess-' + randomBytes(24).toString('hex');
      this.sessions.set(token, {
        user: String(body.user),
        expiresAt: this.refuseNewSessions ? 0 : Date.now() + this.sessionTtlMs,
      });
      this.send(res, req, 202, {
        results: {
          login_timestamp: (BigInt(Date.now()) * 1_000_000n).toString(),
          token: { HY_APP_AUTH_v1: token },
          user: { email: body.user, id: user.id, screen_name: 'Lab', user_name: body.user },
        },
        debug_info: { delta: '1ms', version: 'local.1' },
      });
      return;
    }

    const who = await this.authenticate(req);
    if (method === 'POST' && (path === '/auth/hello' || path === '/auth/helo')) {
      await this.drain(req);
      if (!who.ok) {
        this.send(res, req, 401, { error: who.reason, user_message: 'Your token was not accepted' }, { jti: who.jti });
        return;
      }
      this.send(
        res,
        req,
        200,
        { results: { accepted: true, method: who.kind, sub: who.sub, claims: who.claims } },
        { auth: who.kind, jti: who.jti },
      );
      return;
    }
    if (!who.ok) {
      await this.drain(req);
      this.send(res, req, 401, { error: who.reason, user_message: 'Please sign in again' }, { jti: who.jti });
      return;
    }
    const logged = { auth: who.kind, jti: who.jti };

    if (method === 'POST' && path === '/pbs') {
      const body = await this.json(req);
      if (!body) {
        this.send(res, req, 400, { error: 'body is not JSON' }, logged);
        return;
      }
      if (body.list_url !== undefined) {
        await this.workflow2(req, res, body, logged);
        return;
      }
      const tags = (body.tags ?? {}) as Record<string, string>;
      const study: Study = { id: randomUUID(), tags, files: new Map(), closed: false, tasks: [], reports: 0 };
      this.studies.set(study.id, study);
      this.send(res, req, 201, { results: { pbs_study_id: study.id } }, logged);
      return;
    }

    const m = /^\/pbs\/([^/]+)\/(files|tasks|status|report)$/.exec(path);
    const study = m ? this.studies.get(decodeURIComponent(m[1]!)) : undefined;
    if (!m) {
      await this.drain(req);
      this.send(res, req, 404, { error: 'no such endpoint' }, logged);
      return;
    }
    if (!study) {
      await this.drain(req);
      this.send(res, req, 404, { error: 'no such study' }, logged);
      return;
    }
    this.advance(study);

    if (method === 'POST' && m[2] === 'files') {
      const ext = (url.searchParams.get('file_name') ?? '').split('.').pop()?.toLowerCase() ?? '';
      const type = (req.headers['content-type'] ?? url.searchParams.get('content_type') ?? EXT_TYPES[ext] ?? '')
        .split(';')[0]!
        .trim();
      if (!type) {
        await this.drain(req);
        this.send(res, req, 400, { error: 'file type cannot be determined' }, logged);
        return;
      }
      if (!ACCEPTED_TYPES.has(type)) {
        await this.drain(req);
        this.send(res, req, 415, { error: `unsupported type ${type}` }, logged);
        return;
      }
      if (study.closed) {
        await this.drain(req);
        this.send(res, req, 409, { error: 'study is closed to uploads' }, logged);
        return;
      }
      const hash = createHash('sha224');
      let bytes = 0;
      for await (const c of req) {
        hash.update(c as Buffer);
        bytes += (c as Buffer).length;
      }
      let fileId = 'sha224-i-' + hash.digest('hex');
      if (this.wrongFileIdNext) {
        this.wrongFileIdNext = false;
        fileId = 'sha224-i-' + createHash('sha224').update('something else').digest('hex');
      }
      study.files.set(fileId, bytes);
      this.send(
        res,
        req,
        201,
        { results: { pbs_study_id: study.id, file_id: fileId } },
        { ...logged, contentType: type, bytes },
      );
      return;
    }

    if (method === 'POST' && m[2] === 'tasks') {
      const body = await this.json(req);
      const tasks = body?.diagnostic_tasks;
      if (!Array.isArray(tasks) || tasks.length === 0) {
        this.send(res, req, 400, { error: 'diagnostic_tasks required' }, logged);
        return;
      }
      if (study.files.size === 0) {
        this.send(res, req, 409, { error: 'no files uploaded' }, logged);
        return;
      }
      if (!study.closed) {
        study.closed = true;
        study.tasks = tasks.map(String);
        study.callbackUrl = typeof body?.callback_url === 'string' ? body.callback_url : undefined;
        study.tasksAt = Date.now();
        this.schedule(study);
      }
      // The reference's example answers without `status`.
      const payload = JSON.stringify({ results: { pbs_study_id: study.id, tasks: study.tasks } });
      this.log.push({ method, path, status: 200, ...logged });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(payload);
      return;
    }

    if (method === 'GET' && m[2] === 'status') {
      const ready = study.reports > 0;
      this.send(
        res,
        req,
        200,
        {
          results: {
            pbs_study_id: study.id,
            report_status: !study.closed ? 'pending' : ready ? 'ready' : 'processing',
            progress: !study.closed ? 0 : ready ? 1.0 : '0.5',
            progress_message: ready ? 'Reports are ready' : 'Working',
            ...(ready ? { report_version: study.reports } : {}),
          },
        },
        logged,
      );
      return;
    }

    if (method === 'GET' && m[2] === 'report') {
      if (study.reports === 0) {
        this.send(res, req, 409, { error: 'report not ready', user_message: 'The report is not ready yet' }, logged);
        return;
      }
      const v = url.searchParams.get('version');
      const version = v === null ? study.reports : Number(v);
      if (!Number.isInteger(version) || version < 1 || version > study.reports) {
        this.send(res, req, 404, { error: 'no such report version' }, logged);
        return;
      }
      this.send(res, req, 200, { results: this.report(study, version) }, logged);
      return;
    }

    await this.drain(req);
    this.send(res, req, 405, { error: 'method not allowed' }, logged);
  }

  /** Adds a report revision to a finished study (a pathologist's amendment). */
  revise(studyId: string): void {
    const s = this.studies.get(studyId);
    if (s && s.reports > 0) s.reports++;
  }

  private advance(study: Study): void {
    if (
      study.closed &&
      study.reports === 0 &&
      study.tasksAt !== undefined &&
      Date.now() >= study.tasksAt + this.processingMs
    ) {
      study.reports = 1;
    }
  }

  private schedule(study: Study): void {
    const t = setTimeout(() => {
      this.pending.delete(t);
      this.advance(study);
      if (study.callbackUrl) {
        const url = study.callbackUrl;
        request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ pbs_stody_id: study.id, report_status: 'ready', progress: 1.0 }),
        })
          .then(async (r) => {
            await r.body.dump();
            this.callbacksSent.push({ url, status: r.statusCode });
          })
          .catch(() => this.callbacksSent.push({ url, status: 0 }));
      }
    }, this.processingMs);
    this.pending.add(t);
  }

  private report(study: Study, version: number) {
    return {
      pbs_study_id: study.id,
      file_ids: [...study.files.keys()],
      version,
      feature_statistics: {
        'rbc-density': { value: '4.52', unit: '10^12/L' },
        'platelet-density': { value: 231, unit: '10^9/L' },
        'blast-density': { value: 'x', unit: 'y' },
      },
      morphological_findings: {
        'ring trophozoite': { count: String(version), heat_map: [{ center: [435, 345], radius: 35 }] },
      },
      diagnostic_report: {
        differential_diagnosis: [
          {
            score: 7,
            confidence: '0.95',
            'clinical-significance': 'D',
            'icd10-code': 'B50',
            'english-long': 'Malaria Infection with Plasmodium Falciparum',
            'english-short': 'Malaria',
          },
        ],
      },
      pathology_report: `Revision ${version}: ring trophozoites seen.`,
    };
  }

  private async workflow2(
    req: IncomingMessage,
    res: ServerResponse,
    body: Record<string, unknown>,
    logged: Partial<LoggedRequest>,
  ) {
    if (typeof body.list_url !== 'string' || !Array.isArray(body.tasks) || body.tasks.length === 0) {
      this.send(res, req, 400, { error: 'list_url and tasks required' }, logged);
      return;
    }
    let list: { files?: unknown; callback_url?: unknown };
    try {
      const r = await request(body.list_url);
      if (r.statusCode !== 200) throw new Error(`list answered ${r.statusCode}`);
      list = (await r.body.json()) as typeof list;
    } catch (e) {
      this.send(res, req, 422, { error: `cannot fetch list_url: ${(e as Error).message}` }, logged);
      return;
    }
    const study: Study = {
      id: randomUUID(),
      tags: {},
      files: new Map(),
      closed: true,
      tasks: body.tasks.map(String),
      reports: 0,
    };
    for (const f of Array.isArray(list.files) ? list.files : []) {
      const r = await request(String(f));
      const hash = createHash('sha224');
      let bytes = 0;
      for await (const c of r.body) {
        hash.update(c as Buffer);
        bytes += (c as Buffer).length;
      }
      study.files.set('sha224-i-' + hash.digest('hex'), bytes);
    }
    study.callbackUrl = typeof list.callback_url === 'string' ? list.callback_url : undefined;
    study.tasksAt = Date.now();
    this.studies.set(study.id, study);
    this.schedule(study);
    this.log.push({ method: 'POST', path: '/pbs', status: 201, ...logged });
    const payload = JSON.stringify({ results: { pbs_study_id: study.id, file_ids: [...study.files.keys()] } });
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(payload);
  }
}

/** Starts a local server on 127.0.0.1 with a random port. */
export async function startLocalHemato(opts: LocalHematoOptions = {}): Promise<LocalHematoServer> {
  return new LocalHematoServer(opts).start();
}
