import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { loadConfig } from '@hemato/common';
import { bootstrapSandbox, type RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';

// Keep test output readable: the sandbox logs at info otherwise.
process.env.LOG_LEVEL ??= 'warn';

export const AUDIENCE = 'dev.api.hemato.ai';

/** Starts a sandbox on a free port with the given sandbox variables. */
export async function startSandbox(env: Record<string, string> = {}): Promise<RunningSandbox> {
  const config = loadConfig(
    { HOST: '127.0.0.1', SANDBOX_PORT: '0', SANDBOX_PROCESSING_MS: '300', LOG_LEVEL: 'silent', ...env },
    ['core', 'sandbox'],
  );
  return bootstrapSandbox(config);
}

export interface Answer {
  status: number;
  headers: Headers;
  /** The parsed JSON answer (the envelope for API calls); loosely typed so tests read fields directly. */
  body: Record<string, any>;
}

/** One HTTP call; the answer body parsed as JSON. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: {
    token?: string;
    json?: unknown;
    body?: BodyInit | Uint8Array;
    headers?: Record<string, string>;
    signal?: AbortSignal;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = options.token;
  let body = options.body as BodyInit | undefined;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, {
    method,
    headers,
    body,
    signal: options.signal,
    duplex: 'half',
  } as RequestInit);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} };
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export async function login(base: string, user = 'ali@example.com', password = 'hemato-sandbox'): Promise<string> {
  const a = await call(base, 'POST', '/auth/login', { json: { user, pass_hash: sha256(password) } });
  if (a.status !== 202) throw new Error(`login failed: ${JSON.stringify(a.body)}`);
  return a.body.results.token.HY_APP_AUTH_v1 as string;
}

export async function createStudy(base: string, token: string, tags: Record<string, string> = {}): Promise<string> {
  const a = await call(base, 'POST', '/pbs', { token, json: { tags } });
  if (a.status !== 201) throw new Error(`create failed: ${JSON.stringify(a.body)}`);
  return a.body.results.pbs_study_id as string;
}

export async function upload(
  base: string,
  token: string,
  id: string,
  bytes: Buffer,
  contentType = 'image/png',
): Promise<Answer> {
  return call(base, 'POST', `/pbs/${id}/files`, { token, body: bytes, headers: { 'content-type': contentType } });
}

/** Polls until the study's status is ready or failed (bounded). */
export async function waitDone(base: string, token: string, id: string): Promise<Answer> {
  for (let i = 0; i < 400; i++) {
    const a = await call(base, 'GET', `/pbs/${id}/status`, { token });
    if (a.body.results?.report_status === 'ready' || a.body.results?.report_status === 'failed') return a;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('study never finished');
}

export interface Received {
  path: string;
  body: any;
  headers: IncomingMessage['headers'];
}

/** A local HTTP server that records what is POSTed to it (callbacks) and serves files (workflow 2). */
export class LocalServer {
  readonly received: Received[] = [];
  readonly files = new Map<string, { type: string; body: Buffer | string }>();
  private waiters: Array<() => void> = [];
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST') {
          const text = Buffer.concat(chunks).toString('utf8');
          this.received.push({ path: req.url ?? '', body: text ? JSON.parse(text) : undefined, headers: req.headers });
          for (const w of this.waiters.splice(0)) w();
          res.writeHead(204).end();
          return;
        }
        const file = this.files.get((req.url ?? '').split('?')[0]);
        if (!file) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': file.type }).end(file.body);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Resolves when `count` POSTs to paths starting with `prefix` have arrived (bounded wait). */
  async waitFor(prefix: string, count = 1, timeoutMs = 15_000): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.received.filter((r) => r.path.startsWith(prefix));
      if (got.length >= count) return got;
      if (Date.now() > deadline) throw new Error(`waited for ${count} callback(s) on ${prefix}, got ${got.length}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface OrgKey {
  privateKey: KeyObject;
  publicPem: string;
}

export function rsaKey(): OrgKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** Signs a key-auth JWT; every field can be changed or removed (undefined) to break one rule at a time. */
export async function signJwt(
  key: KeyObject | Uint8Array,
  opts: {
    alg?: string;
    kid?: string | null;
    /** Where kid goes (default both, as our client sends it). */
    kidIn?: 'header' | 'claims' | 'both';
    /** A different kid in the header than in the claims. */
    headerKid?: string;
    iss?: string;
    sub?: string;
    role?: string;
    aud?: string | string[];
    iatOffsetS?: number;
    expOffsetS?: number;
    omit?: string[];
  } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const iat = now + (opts.iatOffsetS ?? 0);
  const claims: Record<string, unknown> = {
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    iss: opts.iss ?? 'lab.example.org',
    sub: opts.sub ?? 'device-7',
    role: opts.role ?? 'device',
    aud: opts.aud ?? [AUDIENCE],
    iat,
    exp: iat + (opts.expOffsetS ?? 300),
  };
  const kidIn = opts.kidIn ?? 'both';
  if (opts.kid !== null && kidIn !== 'header') claims.kid = opts.kid ?? 'k1';
  for (const k of opts.omit ?? []) delete claims[k];
  const header: Record<string, unknown> = { alg: opts.alg ?? 'RS384', typ: 'JWT' };
  if (opts.kid !== null && kidIn !== 'claims') header.kid = opts.headerKid ?? opts.kid ?? 'k1';
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key);
}
